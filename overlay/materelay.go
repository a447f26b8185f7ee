package overlay

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Relay reservations at connected peers (docs/OVERLAY.md, "Relaying for
// your own people"): a chat node with no configured relay (no --relay or
// --bootstrap) and not known to be public reserves a slot at up to
// Config.MateRelays connected peers that offer circuit relay v2 — chat
// nodes relay for the members of their rooms and their trusted contacts
// only, so in practice these are room-mates — and advertises its circuit
// addresses through them. A peer that can reach such a relay can then
// reach this node through it (overlay.Host.Reach tries circuits through
// every connected relay), and hole punching can take over from there.
//
// Only peers met over a non-loopback connection are asked: a relay on the
// same machine helps nobody, and it keeps loopback tests and demos free
// of relay addresses. A peer that refuses (not a room-mate yet, full) is
// asked again after mateRetryMin, doubling up to mateRefusedFor: right
// after connecting, the relay may not have seen this node's presence in
// their common room yet.
const (
	// defaultMateRelays is Config.MateRelays' default.
	defaultMateRelays = 2
	// mateRetryMin and mateRefusedFor bound how long a refusing peer is
	// left alone.
	mateRetryMin   = 3 * time.Second
	mateRefusedFor = 10 * time.Minute
	// mateCheckEvery is how often the set is looked at without a reason.
	mateCheckEvery = time.Minute
	// mateReserveTimeout bounds one reservation request.
	mateReserveTimeout = 10 * time.Second
)

type mateRelays struct {
	o       *Host
	max     int
	changed func() // called (without mu) when reservations change

	wake chan struct{} // capacity 1

	mu      sync.Mutex
	public  bool                            // guarded by mu
	held    map[peer.ID]*client.Reservation // guarded by mu
	refused map[peer.ID]refusal             // guarded by mu
}

// refusal is a peer that refused a reservation: asked again after until.
type refusal struct {
	until time.Time
	wait  time.Duration
}

func newMateRelays(o *Host, max int, changed func()) *mateRelays {
	return &mateRelays{
		o: o, max: max, changed: changed,
		wake:    make(chan struct{}, 1),
		held:    make(map[peer.ID]*client.Reservation),
		refused: make(map[peer.ID]refusal),
	}
}

func (m *mateRelays) start() error {
	sub, err := m.o.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return err
	}
	m.o.goroutine(func() {
		defer func() { _ = sub.Close() }()
		for {
			select {
			case <-m.o.ctx.Done():
				return
			case _, ok := <-sub.Out():
				if !ok {
					return
				}
				m.poke()
			}
		}
	})
	m.o.goroutine(m.run)
	return nil
}

func (m *mateRelays) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *mateRelays) setPublic(public bool) {
	m.mu.Lock()
	m.public = public
	m.mu.Unlock()
	m.poke()
}

func (m *mateRelays) run() {
	t := time.NewTimer(mateCheckEvery)
	defer t.Stop()
	for {
		next := m.step(m.o.ctx)
		t.Reset(next)
		select {
		case <-m.o.ctx.Done():
			return
		case <-m.wake:
		case <-t.C:
		}
	}
}

// step drops reservations that are no longer wanted or usable, renews
// those about to expire, tops the set up, and returns when to look again.
func (m *mateRelays) step(ctx context.Context) time.Duration {
	m.mu.Lock()
	public := m.public
	var renew []peer.ID
	dropped := false
	for p, r := range m.held {
		switch {
		case public || !m.usable(p):
			delete(m.held, p)
			dropped = true
		case time.Until(r.Expiration) < relayRefresh:
			renew = append(renew, p)
		}
	}
	need := m.max - len(m.held)
	m.mu.Unlock()
	if dropped {
		m.changed()
	}
	if public {
		return mateCheckEvery
	}
	for _, p := range renew {
		m.reserve(ctx, p)
	}
	if need > 0 {
		for _, p := range m.candidates() {
			if need == 0 || ctx.Err() != nil {
				break
			}
			if m.reserve(ctx, p) {
				need--
			}
		}
	}
	next := mateCheckEvery
	m.mu.Lock()
	for _, r := range m.held {
		next = min(next, max(time.Until(r.Expiration)-relayRefresh, time.Second))
	}
	if len(m.held) < m.max {
		for p, r := range m.refused {
			if m.o.Network().Connectedness(p) != network.Connected {
				delete(m.refused, p) // asked afresh if it comes back
				continue
			}
			next = min(next, max(time.Until(r.until), 100*time.Millisecond))
		}
	}
	m.mu.Unlock()
	return next
}

// usable: p is connected to us by a non-loopback, unlimited connection.
func (m *mateRelays) usable(p peer.ID) bool {
	for _, c := range m.o.Network().ConnsToPeer(p) {
		if c.Stat().Limited || ClassifyAddr(c.RemoteMultiaddr()) == PathRelayed || manet.IsIPLoopback(c.RemoteMultiaddr()) {
			continue
		}
		return true
	}
	return false
}

// candidates are usable connected peers offering the relay protocol that
// hold no reservation of ours and did not refuse lately, sorted.
func (m *mateRelays) candidates() []peer.ID {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []peer.ID
	for _, p := range m.o.Network().Peers() {
		if _, ok := m.held[p]; ok {
			continue
		}
		if r, ok := m.refused[p]; ok && now.Before(r.until) {
			continue
		}
		if !m.usable(p) {
			continue
		}
		if ok, _ := m.o.Peerstore().SupportsProtocols(p, proto.ProtoIDv2Hop); len(ok) == 0 {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// reserve asks p for a slot and records the outcome.
func (m *mateRelays) reserve(ctx context.Context, p peer.ID) bool {
	rctx, cancel := context.WithTimeout(ctx, mateReserveTimeout)
	r, err := client.Reserve(rctx, m.o.Host, peer.AddrInfo{ID: p})
	cancel()
	m.mu.Lock()
	if err != nil {
		_, had := m.held[p]
		delete(m.held, p)
		wait := min(max(2*m.refused[p].wait, mateRetryMin), mateRefusedFor)
		m.refused[p] = refusal{until: time.Now().Add(wait), wait: wait}
		m.mu.Unlock()
		m.o.log.Debug("no relay reservation at a connected peer", "relay", p, "err", err)
		if had {
			m.changed()
		}
		return false
	}
	_, had := m.held[p]
	m.held[p] = r
	delete(m.refused, p)
	m.mu.Unlock()
	if !had {
		m.o.log.Info("relay reservation at a connected peer", "relay", p, "expires", r.Expiration)
		m.changed()
	}
	return true
}

// addrs returns our circuit addresses through the peers holding a slot:
// their connection's address, then /p2p/RELAY/p2p-circuit.
func (m *mateRelays) addrs() []ma.Multiaddr {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	ids := make([]peer.ID, 0, len(m.held))
	for p := range m.held {
		ids = append(ids, p)
	}
	m.mu.Unlock()
	var out []ma.Multiaddr
	for _, p := range ids {
		var via []ma.Multiaddr
		for _, c := range m.o.Network().ConnsToPeer(p) {
			via = append(via, c.RemoteMultiaddr())
		}
		out = append(out, circuitAddrs(p, via)...)
	}
	return out
}

// reserved returns the peers holding a slot for us, sorted.
func (m *mateRelays) reserved() []peer.ID {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]peer.ID, 0, len(m.held))
	for p := range m.held {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// connectedness of a relay changed: look again.
func (m *mateRelays) disconnected(p peer.ID) {
	m.mu.Lock()
	_, ok := m.held[p]
	m.mu.Unlock()
	if ok && m.o.Network().Connectedness(p) != network.Connected {
		m.poke()
	}
}
