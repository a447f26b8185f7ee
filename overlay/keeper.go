package overlay

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/parley-chat/parley/events"
)

// Backoff configures how kept peers are redialled: the first retry waits
// Min, each failure doubles the wait up to Max, with up to 20% jitter.
type Backoff struct {
	Min, Max    time.Duration // defaults 1 s and 60 s
	DialTimeout time.Duration // default 15 s
}

func (b *Backoff) setDefaults() {
	if b.Min <= 0 {
		b.Min = time.Second
	}
	if b.Max <= 0 {
		b.Max = time.Minute
	}
	if b.DialTimeout <= 0 {
		b.DialTimeout = 15 * time.Second
	}
}

func (b Backoff) next(cur time.Duration) time.Duration {
	if cur <= 0 {
		return b.Min
	}
	cur *= 2
	if cur > b.Max {
		cur = b.Max
	}
	return cur
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/5+1)) // #nosec G404 -- backoff jitter, not a secret
}

// keepTag protects kept peers from connection manager trimming.
const keepTag = "parley-keep"

// keeper keeps a set of peers connected: one goroutine per peer that dials,
// waits for the connection to drop and dials again with backoff. It learns
// of disconnections from the peer table (the host's single subscriber to
// connection events), never from its own event bus subscription, because a
// subscriber that sleeps through a backoff would stall the bus.
type keeper struct {
	o   *Host
	cfg Backoff

	mu    sync.Mutex
	peers map[peer.ID]chan struct{} // guarded by mu; signalled on disconnect
}

func newKeeper(o *Host, cfg Backoff) *keeper {
	return &keeper{o: o, cfg: cfg, peers: make(map[peer.ID]chan struct{})}
}

func (k *keeper) add(ai peer.AddrInfo) {
	k.o.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	k.o.ConnManager().Protect(ai.ID, keepTag)
	k.mu.Lock()
	_, running := k.peers[ai.ID]
	down := make(chan struct{}, 1)
	if !running {
		k.peers[ai.ID] = down
	}
	k.mu.Unlock()
	if running {
		return
	}
	k.o.goroutine(func() { k.run(ai.ID, down) })
}

// disconnected tells the peer's goroutine, if any, that p dropped.
func (k *keeper) disconnected(p peer.ID) {
	k.mu.Lock()
	down, ok := k.peers[p]
	k.mu.Unlock()
	if !ok {
		return
	}
	select {
	case down <- struct{}{}:
	default:
	}
}

func (k *keeper) run(p peer.ID, down <-chan struct{}) {
	ctx := k.o.ctx
	var wait time.Duration
	for {
		if k.o.Network().Connectedness(p) != network.Connected {
			// The keeper's backoff is the policy: the swarm's own would
			// answer a retry with "dial backoff" instead of dialling.
			if sw, ok := k.o.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(p)
			}
			dctx, cancel := context.WithTimeout(ctx, k.cfg.DialTimeout)
			err := k.o.Connect(dctx, peer.AddrInfo{ID: p})
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				wait = k.cfg.next(wait)
				d := jitter(wait)
				de := ClassifyDial(p, err)
				k.o.log.Info("dial kept peer failed; retrying", "peer", p, "in", d.Round(time.Millisecond), "err", err)
				k.o.emit.Emit(events.PeerDialFailed{PeerID: p, Addr: de.Addr, Reason: de.Kind, Error: de.Error(), RetryIn: d})
				if !sleep(ctx, d) {
					return
				}
				continue
			}
			wait = 0
		}
		// Connected: wait until the peer is disconnected.
		for k.o.Network().Connectedness(p) == network.Connected {
			select {
			case <-ctx.Done():
				return
			case <-down:
			}
		}
		// Give a peer that just dropped a moment, so one that is
		// restarting has time to listen again.
		if !sleep(ctx, jitter(k.cfg.Min)) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
