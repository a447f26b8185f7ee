package rooms

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/parley-chat/parley/events"
)

// Retrying a history sync that left gaps.
const (
	// syncRetryDelay is the wait before the first retry; it doubles with
	// each retry.
	syncRetryDelay = 15 * time.Second
	// syncRetries bounds the retries after the room last had no member
	// connected.
	syncRetries = 6
)

// syncTracker is a room's history sync state (events.RoomSync). It is
// owned by the room's syncLoop goroutine.
type syncTracker struct {
	room   string
	window time.Duration // the history window (Config.SyncWindow)

	// peers counts the sessions this node started that succeeded since
	// the room last had no member connected; caughtBase is the room's
	// caughtTotal then.
	peers      int
	caughtBase int64
	// syncing: a session runs now.
	syncing bool
	// failed: a session failed and none succeeded since the room last
	// had no member connected.
	failed bool
	// since is the start of the window of the latest session that
	// succeeded.
	since time.Time
	// missing are the items a member listed and did not hand over, with
	// the span they were listed in; a later session that brings one
	// removes it.
	missing map[[itemIDSize]byte]span
	// retries counts the retries since the room last had no member.
	retries int

	last    events.RoomSync // the last state emitted
	emitted bool
}

func newSyncTracker(room string, window time.Duration) *syncTracker {
	return &syncTracker{room: room, window: window, missing: make(map[[itemIDSize]byte]span)}
}

// cutOff forgets the sessions: the room has no member connected.
func (t *syncTracker) cutOff(caughtTotal int64) {
	t.peers, t.caughtBase, t.syncing, t.failed, t.retries = 0, caughtTotal, false, false, 0
	t.since = time.Time{}
	clear(t.missing)
}

// start records that a history session begins.
func (t *syncTracker) start() { t.syncing = true }

// done records the end of a history session.
func (t *syncTracker) done(st syncStats, err error) {
	t.syncing = false
	if err != nil {
		if t.peers == 0 {
			t.failed = true
		}
		return
	}
	t.failed = false
	t.peers++
	if st.since > 0 {
		t.since = time.UnixMilli(st.since)
	}
	for _, id := range st.fetched {
		delete(t.missing, id)
	}
	for id, sp := range st.missing {
		if len(t.missing) >= DefaultSyncMaxItems {
			break
		}
		t.missing[id] = sp
	}
}

// needsRetry reports whether a retry with another member is due: the
// state has gaps and retries are left.
func (t *syncTracker) needsRetry() bool {
	return !t.syncing && (t.failed || len(t.missing) > 0) && t.retries < syncRetries
}

// retryDelay is the wait before the next retry.
func (t *syncTracker) retryDelay() time.Duration {
	return syncRetryDelay << min(t.retries, syncRetries)
}

// state returns the current state as an event, caughtTotal being the
// room's.
func (t *syncTracker) state(now time.Time, connected bool, caughtTotal int64) events.RoomSync {
	ev := events.RoomSync{Room: t.room, Peers: t.peers, CaughtUp: int(caughtTotal - t.caughtBase)}
	switch {
	case t.syncing:
		ev.State = events.SyncSyncing
	case t.failed:
		ev.State = events.SyncGaps
		ev.Since = now.Add(-t.window)
		ev.Gaps = []events.SyncGap{{From: ev.Since, To: now}}
	case t.peers == 0 && !connected:
		ev.State = events.SyncWaiting
	case t.peers == 0:
		ev.State = events.SyncSyncing // a member is there, its session is due
	case len(t.missing) > 0:
		ev.State, ev.Since, ev.Gaps = events.SyncGaps, t.since, t.gaps(now)
	default:
		ev.State, ev.Since = events.SyncComplete, t.since
	}
	return ev
}

// gaps merges the spans of the missing items into gaps, oldest first.
func (t *syncTracker) gaps(now time.Time) []events.SyncGap {
	spans := make([]span, 0, len(t.missing))
	for _, sp := range t.missing {
		spans = append(spans, sp)
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to)) })
	toTime := func(ms uint64) time.Time {
		switch {
		case ms == math.MaxUint64 || ms > uint64(max(now.UnixMilli(), 0)): // #nosec G115 -- not negative
			return now
		case !t.since.IsZero() && ms < uint64(max(t.since.UnixMilli(), 0)): // #nosec G115 -- not negative
			return t.since // the range began before the window
		}
		return time.UnixMilli(int64(ms)) // #nosec G115 -- below now
	}
	var out []events.SyncGap
	var end uint64
	for _, sp := range spans {
		if n := len(out); n > 0 && sp.from < end {
			out[n-1].Missing++
			if sp.to > end {
				end = sp.to
				out[n-1].To = toTime(end)
			}
			continue
		}
		out = append(out, events.SyncGap{From: toTime(sp.from), To: toTime(sp.to), Missing: 1})
		end = sp.to
	}
	return out
}

// changed reports whether ev differs from the last state emitted in what
// a user sees: the state, the messages caught up or the gaps (not the
// window's start alone, which moves with the clock).
func (t *syncTracker) changed(ev events.RoomSync) bool {
	if !t.emitted {
		return true
	}
	l := t.last
	if l.State != ev.State || l.CaughtUp != ev.CaughtUp || len(l.Gaps) != len(ev.Gaps) {
		return true
	}
	for i := range ev.Gaps {
		if l.Gaps[i].Missing != ev.Gaps[i].Missing {
			return true
		}
	}
	return false
}

// report emits the current state of r's history sync when it changed.
func (s *Service) reportSync(r *room, t *syncTracker) {
	ev := t.state(time.Now(), len(r.topic.ListPeers()) > 0, r.caughtTotal.Load())
	if !t.changed(ev) {
		return
	}
	t.last, t.emitted = ev, true
	r.setSyncState(ev)
	s.cfg.Emitter.Emit(ev)
}
