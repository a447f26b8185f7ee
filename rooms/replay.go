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
type replayGuard struct {
	mu    sync.Mutex
	seen  map[replayKey]int64 // expiry, Unix ms; guarded by mu
	limit int
}

func newReplayGuard(limit int) *replayGuard {
	return &replayGuard{seen: make(map[replayKey]int64), limit: limit}
}

// has reports whether k was seen.
func (g *replayGuard) has(k replayKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.seen[k]
	return ok
}

// mark records k until expiry. It fails with reasonReplay when k is already
// recorded (a concurrent duplicate) and with reasonReplayFull when the
// guard holds limit records that have not expired.
func (g *replayGuard) mark(k replayKey, expiry, now time.Time) (ok bool, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.seen[k]; dup {
		return false, reasonReplay
	}
	if len(g.seen) >= g.limit {
		g.pruneLocked(now.UnixMilli())
		if len(g.seen) >= g.limit {
			return false, reasonReplayFull
		}
	}
	g.seen[k] = expiry.UnixMilli()
	return true, ""
}

// load adds a record read from the store.
func (g *replayGuard) load(k replayKey, expiryMs int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen[k] = expiryMs
}

// prune forgets expired records and returns how many remain.
func (g *replayGuard) prune(now time.Time) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pruneLocked(now.UnixMilli())
	return len(g.seen)
}

func (g *replayGuard) pruneLocked(nowMs int64) {
	for k, exp := range g.seen {
		if exp < nowMs {
			delete(g.seen, k)
		}
	}
}
