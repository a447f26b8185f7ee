package tui

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parley-chat/parley/events"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runUI starts Run on pipes and returns the input writer and Run's
// result.
func runUI(t *testing.T, ctx context.Context, f *fakeNode, q *events.Queue) (*io.PipeWriter, *lockedBuffer, <-chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Backend: f, Commands: f, Events: q, Input: pr, Output: out, NoColor: true})
	}()
	return pw, out, done
}

func waitRun(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s")
	}
}

func TestRunExecutesLinesInOrderAndQuits(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakeNode()
	q := events.NewQueue(1024)
	in, out, done := runUI(t, context.Background(), f, q)
	q.Emit(msg("lobby", idAlice, "alice", "hello from the queue", 0))
	// Typed keys, as a terminal sends them: Enter is a carriage return.
	if _, err := io.WriteString(in, "first line\rsecond\r/quit\r"); err != nil {
		t.Fatal(err)
	}
	waitRun(t, done)
	_ = in.Close() // the terminal's reader ends with its input
	f.mu.Lock()
	got := slices.Clone(f.execd)
	f.mu.Unlock()
	if want := []string{"say #lobby first line", "say #lobby second", "/quit"}; !slices.Equal(got, want) {
		t.Fatalf("executed %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "hello from the queue") {
		t.Fatalf("the queued message never reached the screen; output:\n%q", out.String())
	}
}

func TestRunEndsWithTheContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	in, _, done := runUI(t, ctx, newFakeNode(), events.NewQueue(16))
	time.AfterFunc(100*time.Millisecond, cancel)
	waitRun(t, done)
	_ = in.Close()
}

func TestRunDoesNotWaitForeverForASlowCommand(t *testing.T) {
	f := newFakeNode()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.onExec = func(string) error {
		<-release // ignores its context, unlike the node's commands
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	in, _, done := runUI(t, ctx, f, events.NewQueue(16))
	if _, err := io.WriteString(in, "/connect somewhere\r"); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	waitRun(t, done)
	if took := time.Since(start); took > execGrace+2*time.Second {
		t.Fatalf("Run took %v", took)
	}
}

func TestLogSink(t *testing.T) {
	var got []events.Event
	s := NewLogSink(events.EmitterFunc(func(e events.Event) { got = append(got, e) }))
	if _, err := s.Write([]byte("level=WARN msg=one\nlevel=WARN msg=two\n")); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].(LogLine).Text != "level=WARN msg=two" {
		t.Fatalf("emitted %v", got)
	}
	var after bytes.Buffer
	s.Detach(&after)
	if _, err := s.Write([]byte("late\n")); err != nil {
		t.Fatal(err)
	}
	if after.String() != "late\n" || len(got) != 2 {
		t.Fatalf("after Detach: %q, %d events", after.String(), len(got))
	}
}
