package testnet

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
)

// fatalTB records a Fatalf and ends the calling goroutine, as testing
// does, without failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs wait against a fatalTB and returns what it failed with.
func fails(t *testing.T, wait func(tb testing.TB)) string {
	t.Helper()
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait(tb)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not give up")
	}
	return tb.msg
}

func TestRecorderWaitsForPastAndFutureEvents(t *testing.T) {
	r := NewRecorder(0)
	r.Emit(events.Info{Text: "one"})
	r.Emit(events.Error{Error: "bad"})
	if got := WaitEvent[events.Info](t, r, nil); got.Text != "one" {
		t.Fatalf("past event: %+v", got)
	}
	go func() {
		for i := range 5 {
			r.Emit(events.Info{Text: fmt.Sprint("later ", i)})
		}
	}()
	got := WaitEvent(t, r, func(e events.Info) bool { return e.Text == "later 4" })
	if got.Text != "later 4" {
		t.Fatalf("future event: %+v", got)
	}
	r.WaitCount(t, "infos", 6, func(e events.Event) bool { _, ok := e.(events.Info); return ok })
	if n := len(Events[events.Info](r, nil)); n != 6 {
		t.Fatalf("%d info events, want 6", n)
	}
	if errs := Events(r, func(e events.Error) bool { return e.Error == "bad" }); len(errs) != 1 {
		t.Fatalf("error events: %+v", errs)
	}
	if n := r.Count(func(events.Event) bool { return true }); n != 7 {
		t.Fatalf("Count = %d, want 7", n)
	}
	if took := r.Take(); len(took) != 7 || len(r.All()) != 0 {
		t.Fatalf("Take returned %d, left %d", len(took), len(r.All()))
	}
	changed := r.Changed()
	r.Emit(events.Info{Text: "after take"})
	<-changed
	if all := r.All(); len(all) != 1 {
		t.Fatalf("after Take and Emit: %+v", all)
	}
}

func TestWaitsGiveUp(t *testing.T) {
	r := NewRecorder(50 * time.Millisecond)
	r.Emit(events.Info{Text: "unrelated"})
	for _, tc := range []struct {
		name, want string
		wait       func(tb testing.TB)
	}{
		{"WaitEvent", "file_done", func(tb testing.TB) { WaitEvent[events.FileDone](tb, r, nil) }},
		{"WaitWithin", "never", func(tb testing.TB) {
			r.WaitWithin(tb, 10*time.Millisecond, "never", func(events.Event) bool { return false })
		}},
		{"WaitCount", "2 x info", func(tb testing.TB) {
			r.WaitCount(tb, "info", 2, func(e events.Event) bool { _, ok := e.(events.Info); return ok })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := fails(t, tc.wait)
			if !strings.Contains(msg, "waiting for "+tc.want) || !strings.Contains(msg, "unrelated") {
				t.Fatalf("failure %q does not name %q and the events", msg, tc.want)
			}
		})
	}
}

func TestOpenDBClosedEarlyAndReopened(t *testing.T) {
	db := TempDB(t)
	path := db.Path()
	put := func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		})
	}
	if err := put(db); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // a restart; the cleanup closes again
		t.Fatal(err)
	}
	db = OpenDB(t, path)
	err := db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("b")).Get([]byte("k")); string(v) != "v" {
			return fmt.Errorf("k = %q after reopen", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
