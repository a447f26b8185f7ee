package rooms

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
)

// A node whose clock is off sees its room lines ignored by every member
// (the validator's clock check) and GossipSub tells it nothing. Its peers'
// lines tell it, though: each carries its author's sent time, so the
// validator hands clockWatch the offset of every line from another
// author, before the clock check, and clockWatch warns (an error event,
// once until the clock agrees again) when the median offset over at least
// clockPeers authors heard from within clockWindow exceeds half of
// MaxClockSkew. One author with a wrong clock, or two, does not move the
// median; authors who lie about their sent times together can make a
// warning appear, which is all they can do with it.
const (
	clockPeers      = 3                // distinct authors needed for a verdict
	clockWindow     = 10 * time.Minute // an author's sample counts this long
	clockMaxAuthors = 64               // samples kept, one per author
)

// clockWatch keeps the latest offset (author's sent time minus this node's
// clock at validation) of the last clockMaxAuthors authors. The zero value
// is ready to use.
type clockWatch struct {
	mu      sync.Mutex
	samples map[peer.ID]clockSample // guarded by mu
	warned  bool                    // a warning stands; guarded by mu
}

type clockSample struct {
	off time.Duration
	at  time.Time
}

// observe records off for author p at now and returns the median offset of
// the authors heard from within clockWindow, their number, and whether a
// warning is due now: the median exceeds warnAt and no warning stands. A
// standing warning is lifted when the median falls under warnAt/2.
func (w *clockWatch) observe(p peer.ID, off time.Duration, now time.Time, warnAt time.Duration) (median time.Duration, n int, warn bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.samples == nil {
		w.samples = make(map[peer.ID]clockSample)
	}
	if _, ok := w.samples[p]; !ok && len(w.samples) >= clockMaxAuthors {
		w.evict(now)
	}
	w.samples[p] = clockSample{off: off, at: now}
	offs := make([]time.Duration, 0, len(w.samples))
	for _, s := range w.samples {
		if now.Sub(s.at) <= clockWindow {
			offs = append(offs, s.off)
		}
	}
	if len(offs) < clockPeers {
		return 0, len(offs), false
	}
	slices.Sort(offs)
	median = offs[len(offs)/2]
	abs := median.Abs()
	switch {
	case abs > warnAt && !w.warned:
		w.warned = true
		return median, len(offs), true
	case abs < warnAt/2:
		w.warned = false
	}
	return median, len(offs), false
}

// offset returns the median offset of the authors heard from within
// clockWindow (their clocks minus this node's), and whether there were
// at least clockPeers of them.
func (w *clockWatch) offset(now time.Time) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	offs := make([]time.Duration, 0, len(w.samples))
	for _, s := range w.samples {
		if now.Sub(s.at) <= clockWindow {
			offs = append(offs, s.off)
		}
	}
	if len(offs) < clockPeers {
		return 0, false
	}
	slices.Sort(offs)
	return offs[len(offs)/2], true
}

// evict drops the samples older than clockWindow, or else the oldest one.
func (w *clockWatch) evict(now time.Time) {
	var oldest peer.ID
	var at time.Time
	for p, s := range w.samples {
		if now.Sub(s.at) > clockWindow {
			delete(w.samples, p)
			continue
		}
		if oldest == "" || s.at.Before(at) {
			oldest, at = p, s.at
		}
	}
	if len(w.samples) >= clockMaxAuthors {
		delete(w.samples, oldest)
	}
}

// observeClock is called by the validator for every line of another author,
// before the clock check; it warns the user when the room's authors agree
// that this node's clock is off.
func (s *Service) observeClock(author peer.ID, sentAt, now time.Time) {
	median, n, warn := s.clock.observe(author, sentAt.Sub(now), now, s.cfg.MaxClockSkew/2)
	if !warn {
		return
	}
	// This node's clock is ahead of its peers by -median.
	ahead := -median
	dir := "ahead of"
	if ahead < 0 {
		dir, ahead = "behind", -ahead
	}
	msg := fmt.Sprintf("this computer's clock seems %s %s the clocks of %d peers (their median): members ignore room lines "+
		"more than %s off and refuse direct messages sent in the future; set the clock right (enable NTP time sync)",
		ahead.Round(time.Minute), dir, n, s.cfg.MaxClockSkew)
	s.log.Warn("clock skew", "offset", -median, "peers", n)
	s.cfg.Emitter.Emit(events.Error{Error: msg, Code: events.ErrClockSkew})
}

// roomNow is this node's clock corrected by the room's authors' median
// offset when that offset says the clock is off (beyond half of
// MaxClockSkew, as the warning): skewed is then true. A sync item is
// judged against it (synced.go), so that a node whose clock is off does
// not take honest members for liars.
func (s *Service) roomNow(now time.Time) (corrected time.Time, skewed bool) {
	off, ok := s.clock.offset(now)
	if !ok || off.Abs() <= s.cfg.MaxClockSkew/2 {
		return now, false
	}
	return now.Add(off), true
}

// wallNow is the clock this node's lines are stamped and others' checked
// with (injected in tests).
func (s *Service) wallNow() time.Time {
	if s.cfg.testWallClock != nil {
		return s.cfg.testWallClock()
	}
	return time.Now()
}
