package testnet

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
)

// WaitTimeout bounds a wait when a Log or Recorder is made with no
// timeout of its own.
const WaitTimeout = 20 * time.Second

// shown is how many of the latest entries a failed wait prints.
const shown = 20

// Log is an append-only list that tests read while producers (service
// goroutines) add to it; readers can wait for an entry. Safe for
// concurrent use.
type Log[T any] struct {
	timeout time.Duration // bounds Wait and WaitCount; fixed at construction

	mu      sync.Mutex
	items   []T           // guarded by mu
	changed chan struct{} // guarded by mu; closed and replaced on every Add
}

// NewLog returns an empty log whose waits give up after timeout
// (WaitTimeout when timeout <= 0).
func NewLog[T any](timeout time.Duration) *Log[T] {
	if timeout <= 0 {
		timeout = WaitTimeout
	}
	return &Log[T]{timeout: timeout, changed: make(chan struct{})}
}

// Add appends v and wakes every waiter. It never blocks for long, so it
// may be called from an events.Emitter.
func (l *Log[T]) Add(v T) {
	l.mu.Lock()
	l.items = append(l.items, v)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// All returns a copy of the entries so far.
func (l *Log[T]) All() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}

// Filter returns the entries so far that keep accepts, in order.
func (l *Log[T]) Filter(keep func(T) bool) []T {
	var out []T
	for _, v := range l.All() {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// Count returns how many entries so far match.
func (l *Log[T]) Count(match func(T) bool) int { return len(l.Filter(match)) }

// Take returns the entries so far and forgets them: later reads and waits
// see only what is added after.
func (l *Log[T]) Take() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.items
	l.items = nil
	return out
}

// Changed returns a channel closed by the next Add, for a test that waits
// on a condition the waits here do not express.
func (l *Log[T]) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Wait returns the first entry, already added or added later, that
// matches, waiting at most the log's timeout; what names it in the
// failure.
func (l *Log[T]) Wait(tb testing.TB, what string, match func(T) bool) T {
	tb.Helper()
	return l.WaitWithin(tb, l.timeout, what, match)
}

// WaitWithin is Wait bounded by d instead of the log's timeout.
func (l *Log[T]) WaitWithin(tb testing.TB, d time.Duration, what string, match func(T) bool) T {
	tb.Helper()
	var found T
	l.await(tb, d, what, func(items []T) bool {
		for _, v := range items {
			if match(v) {
				found = v
				return true
			}
		}
		return false
	})
	return found
}

// WaitCount waits, at most the log's timeout, until at least k entries
// match.
func (l *Log[T]) WaitCount(tb testing.TB, what string, k int, match func(T) bool) {
	tb.Helper()
	n := 0
	l.await(tb, l.timeout, fmt.Sprintf("%d x %s", k, what), func(items []T) bool {
		n = 0
		for _, v := range items {
			if match(v) {
				n++
			}
		}
		return n >= k
	})
}

// await calls done with the entries on every change until it returns
// true, and fails the test when d passes first. done runs outside the
// lock (it may call code that adds to the log) on entries no Add writes:
// Add only appends past them.
func (l *Log[T]) await(tb testing.TB, d time.Duration, what string, done func([]T) bool) {
	tb.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		items, ch := l.items, l.changed
		l.mu.Unlock()
		if done(items) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			all := l.All()
			tb.Fatalf("timed out after %v waiting for %s; %d entries, the latest: %+v",
				d, what, len(all), all[max(0, len(all)-shown):])
		}
	}
}

// Recorder is an events.Emitter that keeps every event for the test to
// read and wait on.
type Recorder struct {
	*Log[events.Event]
}

// NewRecorder returns an empty recorder whose waits give up after
// timeout (WaitTimeout when timeout <= 0).
func NewRecorder(timeout time.Duration) *Recorder {
	return &Recorder{NewLog[events.Event](timeout)}
}

// Emit records e.
func (r *Recorder) Emit(e events.Event) { r.Add(e) }

// WaitEvent returns the first event of type T, already recorded or
// recorded later, that match accepts (any T when match is nil), waiting
// at most the recorder's timeout.
func WaitEvent[T events.Event](tb testing.TB, r *Recorder, match func(T) bool) T {
	tb.Helper()
	var zero T
	return r.Wait(tb, zero.Type(), isA(match)).(T)
}

// Events returns the events of type T recorded so far that match accepts
// (all of them when match is nil), in order.
func Events[T events.Event](r *Recorder, match func(T) bool) []T {
	var out []T
	for _, e := range r.Filter(isA(match)) {
		out = append(out, e.(T))
	}
	return out
}

// isA turns a match on T into a match on any event.
func isA[T events.Event](match func(T) bool) func(events.Event) bool {
	return func(e events.Event) bool {
		ev, ok := e.(T)
		return ok && (match == nil || match(ev))
	}
}
