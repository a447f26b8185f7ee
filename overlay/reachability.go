package overlay

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
)

// ReachabilityInfo is what the node knows about how others can reach it.
type ReachabilityInfo struct {
	// Reachability is AutoNAT's verdict: "unknown", "public" or "private".
	Reachability string
	// Relays hold a reservation for this node.
	Relays []peer.ID
	// RelayAddrs are full /p2p-circuit addresses ending in /p2p/<own ID>.
	RelayAddrs []string
}

func (r ReachabilityInfo) event() events.Reachability {
	ids := r.Relays
	if ids == nil {
		ids = []peer.ID{}
	}
	return events.Reachability{Reachability: r.Reachability, Relays: ids, RelayAddrs: nonNil(r.RelayAddrs)}
}

func (r ReachabilityInfo) equal(s ReachabilityInfo) bool {
	return r.Reachability == s.Reachability && slices.Equal(r.Relays, s.Relays) && slices.Equal(r.RelayAddrs, s.RelayAddrs)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func reachabilityName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// ParseReachability parses "public" or "private" (forced reachability) and
// "" or "auto" (AutoNAT decides).
func ParseReachability(s string) (network.Reachability, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return network.ReachabilityUnknown, nil
	case "public":
		return network.ReachabilityPublic, nil
	case "private":
		return network.ReachabilityPrivate, nil
	}
	return 0, fmt.Errorf("bad reachability %q: use auto, public or private", s)
}

// reachTracker follows AutoNAT's verdict and the relay reservations and
// reports a reachability event whenever either changes.
type reachTracker struct {
	o   *Host
	sub event.Subscription

	mu   sync.Mutex
	auto network.Reachability // guarded by mu
	last ReachabilityInfo     // guarded by mu; last reported
	sent bool                 // guarded by mu; an event was reported
}

func newReachTracker(o *Host, initial network.Reachability) *reachTracker {
	return &reachTracker{o: o, auto: initial}
}

func (r *reachTracker) start() error {
	sub, err := r.o.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return fmt.Errorf("subscribe to reachability events: %w", err)
	}
	r.sub = sub
	r.o.goroutine(r.loop)
	return nil
}

func (r *reachTracker) stop() {
	if r.sub != nil {
		_ = r.sub.Close()
	}
}

func (r *reachTracker) loop() {
	for {
		select {
		case <-r.o.ctx.Done():
			return
		case e, ok := <-r.sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtLocalReachabilityChanged)
			r.mu.Lock()
			r.auto = ev.Reachability
			r.mu.Unlock()
			r.o.log.Info("reachability", "reachability", reachabilityName(ev.Reachability))
			if r.o.relays != nil {
				r.o.relays.setPublic(ev.Reachability == network.ReachabilityPublic)
			}
			if r.o.mates != nil {
				r.o.mates.setPublic(ev.Reachability == network.ReachabilityPublic)
			}
			r.report()
		}
	}
}

func (r *reachTracker) info() ReachabilityInfo {
	r.mu.Lock()
	auto := r.auto
	r.mu.Unlock()
	relays := append(r.o.relays.reserved(), r.o.mates.reserved()...)
	slices.Sort(relays)
	info := ReachabilityInfo{Reachability: reachabilityName(auto), Relays: relays}
	self, err := ma.NewMultiaddr("/p2p/" + r.o.ID().String())
	if err != nil {
		return info
	}
	for _, a := range append(r.o.relays.addrs(), r.o.mates.addrs()...) {
		info.RelayAddrs = append(info.RelayAddrs, a.Encapsulate(self).String())
	}
	slices.Sort(info.RelayAddrs)
	return info
}

// report emits a reachability event if anything changed since the last.
func (r *reachTracker) report() {
	info := r.info()
	r.mu.Lock()
	same := r.sent && r.last.equal(info)
	r.last, r.sent = info, true
	r.mu.Unlock()
	if !same {
		r.o.emit.Emit(info.event())
	}
}

// Reachability returns what the node knows about its own reachability.
func (o *Host) Reachability() ReachabilityInfo { return o.reach.info() }
