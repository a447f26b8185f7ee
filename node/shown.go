package node

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-chat/parley/events"
)

// Shown events. The node's services keep, in the store, which of the
// events that matter most (dm, dm_status state changes, room messages:
// shown_rooms.go, file offers received and transfer outcomes) the user
// has not been shown yet, and emit those again
// at the next start: a crash between storing a message and writing its
// event out no longer loses it.
//
// "Shown" is decided by the user interface when Config.ConfirmShown is
// set: it calls Node.Shown for each event once it has written it out (to
// a pipe or a file: the bytes left the process). Otherwise an event
// counts as shown when the node passes it to Config.Emitter.

// shownWait bounds how long Close waits for the user interface to
// confirm the events passed on before it closes the store. What is not
// confirmed by then is emitted again at the next start.
const shownWait = 2 * time.Second

// confirmable reports whether e is an event whose showing is recorded.
func confirmable(e events.Event) bool {
	switch e := e.(type) {
	case events.DM, events.Message:
		return true
	case events.DMStatus:
		return e.Reason == ""
	case events.FileOffer, events.FileDone, events.FileFailed, events.FileRejected:
		return true
	}
	return false
}

// hasFileEvents reports whether evs holds a transfer outcome.
func hasFileEvents(evs []events.Event) bool {
	for _, e := range evs {
		switch e.(type) {
		case events.FileOffer, events.FileDone, events.FileFailed, events.FileRejected:
			return true
		}
	}
	return false
}

// shownLog batches the shown marks and writes them on its own goroutine,
// one transaction per batch, so a fast writer costs few disk syncs.
type shownLog struct {
	mark func([]events.Event) error
	log  *slog.Logger
	wake chan struct{} // capacity 1
	stop chan struct{} // closed by close
	done chan struct{} // closed when run returns

	mu      sync.Mutex
	pending []events.Event // guarded by mu: confirmed, not written yet
	// outstanding counts events passed on whose confirmation is awaited;
	// zero, when non-nil, is closed when it drops to 0.
	outstanding int           // guarded by mu
	zero        chan struct{} // guarded by mu
	// gone: the user interface confirms nothing more (ended); guarded
	// by mu.
	gone bool
}

func newShownLog(mark func([]events.Event) error, log *slog.Logger) *shownLog {
	l := &shownLog{mark: mark, log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// expect counts one event passed on whose confirmation is awaited.
func (l *shownLog) expect() {
	l.mu.Lock()
	if !l.gone {
		l.outstanding++
	}
	l.mu.Unlock()
}

// stopWaiting says that no confirmation comes any more: close does not
// wait for the ones outstanding.
func (l *shownLog) stopWaiting() {
	l.mu.Lock()
	l.gone = true
	l.outstanding = 0
	if l.zero != nil {
		close(l.zero)
		l.zero = nil
	}
	l.mu.Unlock()
}

// shown queues e's mark; confirmed says it answers an expect.
func (l *shownLog) shown(e events.Event, confirmed bool) {
	l.mu.Lock()
	l.pending = append(l.pending, e)
	if confirmed && l.outstanding > 0 {
		l.outstanding--
		if l.outstanding == 0 && l.zero != nil {
			close(l.zero)
			l.zero = nil
		}
	}
	l.mu.Unlock()
	l.poke()
}

func (l *shownLog) run() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			l.flush()
			return
		case <-l.wake:
			l.flush()
		}
	}
}

// errNotStarted: the service that keeps the marks is not started yet;
// the batch waits for the next flush.
var errNotStarted = errors.New("not started yet")

func (l *shownLog) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *shownLog) flush() {
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := l.mark(batch)
	if errors.Is(err, errNotStarted) {
		l.mu.Lock()
		l.pending = append(batch, l.pending...)
		l.mu.Unlock()
		return
	}
	if err != nil {
		l.log.Warn("recording shown events failed; they may be shown again at the next start", "events", len(batch), "err", err)
	}
}

// close waits, at most wait, until every expected confirmation came, then
// writes the last marks and stops the goroutine.
func (l *shownLog) close(wait time.Duration) {
	l.mu.Lock()
	var zero chan struct{}
	if l.outstanding > 0 {
		if l.zero == nil {
			l.zero = make(chan struct{})
		}
		zero = l.zero
	}
	left := l.outstanding
	l.mu.Unlock()
	if zero != nil {
		t := time.NewTimer(wait)
		select {
		case <-zero:
		case <-t.C:
			l.log.Info("the user interface did not confirm every event before shutdown; they are shown again at the next start", "events", left)
		}
		t.Stop()
	}
	close(l.stop)
	<-l.done
}
