// Package proctest runs real parley processes for end-to-end tests: it
// builds the binary once per test binary, starts peers with their own data
// dirs on loopback, reads their --json event streams and kills them when
// the test ends. It only ever signals processes it started.
package proctest

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles ./cmd/parley (relative to the module root found from the
// working directory) into dir and returns the binary's path.
func Build(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "parley")
	// #nosec G204 -- test infrastructure: builds the parley binary for
	// end-to-end tests; never linked into the parley binary.
	cmd := exec.Command("go", "build", "-race", "-o", bin, "./cmd/parley")
	if os.Getenv("PROCTEST_NORACE") != "" {
		cmd = exec.Command("go", "build", "-o", bin, "./cmd/parley") // #nosec G204 -- as above
	}
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Event is one decoded JSON event line.
type Event map[string]any

// Type returns the event's "type" field.
func (e Event) Type() string { s, _ := e["type"].(string); return s }

// Str returns a string field.
func (e Event) Str(k string) string { s, _ := e[k].(string); return s }

// Peer is a running parley process.
type Peer struct {
	t      testing.TB
	Name   string
	Cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan Event
	stderr *lockedBuf

	mu   sync.Mutex
	seen []Event // every event so far
	done chan struct{}
	err  error // process exit, valid after done
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs bin with args (--json is added) and registers cleanup that
// kills it. The process stops by itself at the end of the test at the
// latest.
func Start(t testing.TB, bin, name string, args ...string) *Peer {
	t.Helper()
	return start(t, bin, name, append([]string{"--json"}, args...))
}

// StartCommand is Start for a subcommand (serve, send): `bin sub --json
// args...`.
func StartCommand(t testing.TB, bin, name, sub string, args ...string) *Peer {
	t.Helper()
	return start(t, bin, name, append([]string{sub, "--json"}, args...))
}

func start(t testing.TB, bin, name string, args []string) *Peer {
	t.Helper()
	cmd := exec.Command(bin, args...) // #nosec G204 -- runs the parley binary under test
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	return StartCmd(t, name, cmd)
}

// StartCmd starts cmd, any program that prints JSON events one per line
// on stdout and reads command lines on stdin (such as the js-libp2p peer
// of internal/interop), and registers cleanup that kills it. cmd must not
// have been started and must leave Stdin, Stdout and Stderr unset.
func StartCmd(t testing.TB, name string, cmd *exec.Cmd) *Peer {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Peer{t: t, Name: name, Cmd: cmd, stdin: stdin, events: make(chan Event, 1024), stderr: &lockedBuf{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	return p
}

func (p *Peer) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			e = Event{"type": "_unparsable", "line": sc.Text()}
		}
		p.mu.Lock()
		p.seen = append(p.seen, e)
		p.mu.Unlock()
		p.events <- e
	}
	p.err = p.Cmd.Wait()
	close(p.events)
	close(p.done)
}

// Send writes one command line to the peer's stdin.
func (p *Peer) Send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: write %q: %v", p.Name, line, err)
	}
}

// CloseStdin sends EOF.
func (p *Peer) CloseStdin() { _ = p.stdin.Close() }

// Wait returns the first event, from now on, of type typ for which match
// (if not nil) is true. It fails the test after d.
func (p *Peer) Wait(d time.Duration, typ string, match func(Event) bool) Event {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-p.events:
			if !ok {
				p.t.Fatalf("%s exited (%v) before a %s event; stderr:\n%s", p.Name, p.err, typ, p.stderr.String())
			}
			if e.Type() == typ && (match == nil || match(e)) {
				return e
			}
		case <-timer.C:
			p.t.Fatalf("%s: no %s event within %v", p.Name, typ, d)
		}
	}
}

// Find is Wait that also looks at the events already received (and
// consumed by earlier Waits), for events that may have come before the
// point the test is at, such as joined before ready.
func (p *Peer) Find(d time.Duration, typ string, match func(Event) bool) Event {
	p.t.Helper()
	for _, e := range p.Seen() {
		if e.Type() == typ && (match == nil || match(e)) {
			return e
		}
	}
	return p.Wait(d, typ, match)
}

// Seen returns every event received so far (including those consumed by
// Wait).
func (p *Peer) Seen() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.seen...)
}

// Signal sends sig to the process.
func (p *Peer) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: signal %v: %v", p.Name, sig, err)
	}
}

// Exited waits up to d for the process to exit and returns its error
// (nil for exit code 0). It fails the test if the process is still running.
func (p *Peer) Exited(d time.Duration) error {
	p.t.Helper()
	// Drain events so that the reader is never blocked.
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		select {
		case _, ok := <-p.events:
			if !ok {
				<-p.done
				return p.err
			}
		case <-ctx.Done():
			p.t.Fatalf("%s still running after %v", p.Name, d)
			return nil
		}
	}
}

// Stderr returns what the process wrote to stderr so far.
func (p *Peer) Stderr() string { return p.stderr.String() }

// Loopback are the listen flags for a peer on 127.0.0.1 with a random port.
func Loopback() []string {
	return []string{"--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}
}

// Main builds the parley binary into a temporary directory, stores its path
// in *bin, runs the tests and removes the directory: the body of a test
// package's TestMain. It returns the exit code for os.Exit.
//
// When the test binary only fuzzes (see fuzzing), nothing is built and
// *bin stays empty.
func Main(m *testing.M, bin *string) int {
	flag.Parse()
	if fuzzing() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "parley-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// fuzzing reports whether the test binary only fuzzes: it is a fuzz
// worker, or fuzzes with -run '^$' (as .ci/fuzz does), so that no
// end-to-end test needs the binary.
func fuzzing() bool {
	value := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return value("test.fuzzworker") == "true" || value("test.fuzz") != "" && value("test.run") == "^$"
}
