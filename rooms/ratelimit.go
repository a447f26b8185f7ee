package rooms

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// limiters holds one token bucket per (room topic, author, class): chat
// (text and file shares) and presence have separate buckets, so presence
// replies never use up a member's chat allowance. A bucket is created for an author's first message that passes every other check and
// dropped once it has refilled completely.
type limiters struct {
	mu     sync.Mutex
	m      map[limiterKey]*bucket // guarded by mu
	counts map[string]int         // buckets per topic; guarded by mu
	limit  rate.Limit
	burst  int
	max    int // bound on the buckets of one topic; a new author past it is refused there
}

// bucket is one token bucket and the messages it refused in a row.
type bucket struct {
	lim     *rate.Limiter
	refused int
}

type limiterKey struct {
	topic    string
	author   peer.ID
	presence bool
}

func newLimiters(limit rate.Limit, burst, max int) *limiters {
	return &limiters{m: make(map[limiterKey]*bucket), counts: make(map[string]int), limit: limit, burst: burst, max: max}
}

// allow takes one token from the author's bucket in topic.
func (l *limiters) allow(topic string, author peer.ID, presence bool, now time.Time) bool {
	ok, _ := l.take(topic, author, presence, now)
	return ok
}

// take is allow that, when the bucket is empty, also reports whether the
// author is flooding: more than a burst of its messages were refused in
// a row, which a sender pacing itself to the limit never causes.
func (l *limiters) take(topic string, author peer.ID, presence bool, now time.Time) (ok, flooding bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limiterKey{topic, author, presence}
	b, found := l.m[k]
	if !found {
		if l.counts[topic] >= l.max {
			l.pruneLocked(now)
			if l.counts[topic] >= l.max {
				return false, false
			}
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.m[k] = b
		l.counts[topic]++
	}
	if b.lim.AllowN(now, 1) {
		b.refused = 0
		return true, false
	}
	b.refused++
	return false, b.refused > l.burst
}

// prune drops full buckets: a new bucket would behave the same.
func (l *limiters) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
}

func (l *limiters) pruneLocked(now time.Time) {
	for k, b := range l.m {
		if b.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.m, k)
			if l.counts[k.topic]--; l.counts[k.topic] <= 0 {
				delete(l.counts, k.topic)
			}
		}
	}
}
