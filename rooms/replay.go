package rooms

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// replayMargin is kept beyond MaxClockSkew before a record may be
// forgotten, to absorb clock steps.
const replayMargin = time.Minute

// replayKey identifies a message for replay protection: its signed author
// and the ID the author chose.
type replayKey struct {
	author peer.ID
	id     [idSize]byte
}

// replayGuard remembers recent (author, id) pairs. The in-memory set is
// checked and updated by validators; each record is also written to the
// store in the same transaction that delivers its message (so "delivered"
// and "remembered" commit together) and loaded again at start. A record is
// kept until sent_at + MaxClockSkew + replayMargin: after that the message
// would fail the clock check anyway.
//
// The bound is per room topic: a flood of valid messages from many authors
// in one room fills that room's records only, and the other rooms,
// private ones included, go on. A pair is still unique across topics (a
// GossipSub signature covers the topic, so a message cannot be moved to
// another one anyway).
type replayGuard struct {
	mu    sync.Mutex
	seen  map[replayKey]replayRecord // guarded by mu
	count map[string]int             // records per topic; guarded by mu
	limit int                        // per topic
}

type replayRecord struct {
	expiry int64 // Unix ms
	topic  string
}

func newReplayGuard(limit int) *replayGuard {
	return &replayGuard{seen: make(map[replayKey]replayRecord), count: make(map[string]int), limit: limit}
}

// has reports whether k was seen.
func (g *replayGuard) has(k replayKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.seen[k]
	return ok
}

// mark records k, seen on topic, until expiry. It fails with reasonReplay
// when k is already recorded (a concurrent duplicate) and with
// reasonReplayFull when topic holds limit records that have not expired.
func (g *replayGuard) mark(k replayKey, topic string, expiry, now time.Time) (ok bool, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.seen[k]; dup {
		return false, reasonReplay
	}
	if g.count[topic] >= g.limit {
		g.pruneLocked(now.UnixMilli())
		if g.count[topic] >= g.limit {
			return false, reasonReplayFull
		}
	}
	g.add(k, replayRecord{expiry: expiry.UnixMilli(), topic: topic})
	return true, ""
}

// load adds a record read from the store.
func (g *replayGuard) load(k replayKey, topic string, expiryMs int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.seen[k]; !dup {
		g.add(k, replayRecord{expiry: expiryMs, topic: topic})
	}
}

// add records k; g.mu is held and k is new.
func (g *replayGuard) add(k replayKey, r replayRecord) {
	g.seen[k] = r
	g.count[r.topic]++
}

// prune forgets expired records and returns how many remain.
func (g *replayGuard) prune(now time.Time) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pruneLocked(now.UnixMilli())
	return len(g.seen)
}

func (g *replayGuard) pruneLocked(nowMs int64) {
	for k, r := range g.seen {
		if r.expiry < nowMs {
			delete(g.seen, k)
			if g.count[r.topic]--; g.count[r.topic] <= 0 {
				delete(g.count, r.topic)
			}
		}
	}
}
