package overlay

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ServeRelayResources are the circuit relay v2 limits of `parley serve`
// (docs/SERVE.md). They are generous because a serve node relays for its
// own team: relayed connections are not cut after a time or byte count
// (Limit is nil), so that relayed chat, DMs and transfers work like direct
// ones. What bounds the relay is the number of reservations and circuits
// below and the resource manager's scope for the relay service.
func ServeRelayResources() relay.Resources {
	return relay.Resources{
		Limit:                 nil,
		ReservationTTL:        time.Hour,
		MaxReservations:       512,
		MaxCircuits:           32,
		BufferSize:            16 << 10,
		MaxReservationsPerIP:  32,
		MaxReservationsPerASN: 128,
	}
}

// ChatRelayResources are the circuit relay v2 limits of a chat node that
// relays for its own people (Config.RelayFor; docs/OVERLAY.md). They are
// sized for direct messages, far below ServeRelayResources: a relayed
// connection carries at most 1 MiB each way (64 DMs of the largest size,
// dm.MaxFrameSize) and lasts at most 5 minutes, after which the relay
// resets it and the next DM opens a new circuit; hole punching (DCUtR)
// tries to replace it with a direct connection meanwhile. A relayed
// connection is limited, so only protocols that opt in (DMs, file offers)
// run on it: room gossip and file data wait for a direct path or a serve
// relay. At most 16 peers hold a slot, 8 of them from one IP address, for
// 30 minutes unless renewed, and each peer takes part in at most 4
// circuits at a time.
func ChatRelayResources() relay.Resources {
	return relay.Resources{
		Limit:                 &relay.RelayLimit{Duration: 5 * time.Minute, Data: 1 << 20},
		ReservationTTL:        30 * time.Minute,
		MaxReservations:       16,
		MaxCircuits:           4,
		BufferSize:            4 << 10,
		MaxReservationsPerIP:  8,
		MaxReservationsPerASN: 16,
	}
}

// ServeLimits are the resource manager limits of `parley serve`: a node
// many peers keep connected and relay through (docs/SERVE.md).
func ServeLimits() Limits {
	return Limits{
		Memory:         1 << 30,
		FD:             4096,
		Conns:          2048,
		ConnsInbound:   1536,
		Streams:        16384,
		StreamsInbound: 8192,
		PeerConns:      16,
		PeerStreams:    1024,
		PeerMemory:     64 << 20,
	}
}

// ServeRole makes c the configuration of a `parley serve` node (on top of
// its listen addresses, gater and the rest): a Kademlia DHT server, a
// circuit relay v2 service with ServeRelayResources, an AutoNAT service,
// the ServeLimits resource limits, publicly reachable by assumption, and
// no relay reservations of its own (a serve node relays for others).
// cmd/parley's serve command and the tests that attack a serve node both
// use it, so that the tests exercise the product's configuration.
func (c *Config) ServeRole() {
	res := ServeRelayResources()
	limits := ServeLimits()
	c.Relays = nil
	c.RelayService = &res
	c.Limits = &limits
	c.DHTMode = DHTServer
	c.AutoNATService = true
	c.ForceReachability = network.ReachabilityPublic
}

// relayRefresh is how long before expiry a reservation is renewed.
const relayRefresh = 2 * time.Minute

// relayKeeper holds a reservation on every configured static relay while
// the node is not known to be publicly reachable, so that peers that cannot
// dial it directly can reach it through /p2p-circuit addresses. It renews
// reservations before they expire and at once when the connection to a
// relay comes back (the relay forgets a reservation when its connection
// closes). It never uses relays it was not configured with.
type relayKeeper struct {
	o       *Host
	backoff Backoff

	mu     sync.Mutex
	relays map[peer.ID]*relayState // guarded by mu; fixed key set
	public bool                    // guarded by mu; reachability is public

	changed func() // called (without mu) when the set of reservations changes
}

type relayState struct {
	static  []ma.Multiaddr // configured addresses
	rsvp    *client.Reservation
	circuit []ma.Multiaddr // our addresses through this relay, while reserved
	wake    chan struct{}  // capacity 1
}

func newRelayKeeper(o *Host, relays []peer.AddrInfo, b Backoff, changed func()) *relayKeeper {
	k := &relayKeeper{o: o, backoff: b, relays: make(map[peer.ID]*relayState), changed: changed}
	for _, ai := range relays {
		if ai.ID == o.ID() {
			continue
		}
		st, ok := k.relays[ai.ID]
		if !ok {
			st = &relayState{wake: make(chan struct{}, 1)}
			k.relays[ai.ID] = st
		}
		st.static = append(st.static, ai.Addrs...)
	}
	return k
}

func (k *relayKeeper) start() {
	for p, st := range k.relays {
		k.o.Peerstore().AddAddrs(p, st.static, peerstore.PermanentAddrTTL)
		k.o.goroutine(func() { k.run(p, st) })
	}
}

// setPublic tells the keeper whether the node is publicly reachable.
func (k *relayKeeper) setPublic(public bool) {
	k.mu.Lock()
	k.public = public
	k.mu.Unlock()
	k.wakeAll()
}

// connected is called when a peer connects: a relay that comes back gets
// a new reservation at once.
func (k *relayKeeper) connected(p peer.ID) { k.wake(p) }

// disconnected drops the reservation of a relay we lost.
func (k *relayKeeper) disconnected(p peer.ID) {
	k.mu.Lock()
	st, ok := k.relays[p]
	dropped := ok && st.rsvp != nil
	if dropped {
		st.rsvp, st.circuit = nil, nil
	}
	k.mu.Unlock()
	if dropped {
		k.changed()
	}
	k.wake(p)
}

func (k *relayKeeper) wake(p peer.ID) {
	k.mu.Lock()
	st, ok := k.relays[p]
	k.mu.Unlock()
	if ok {
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
}

func (k *relayKeeper) wakeAll() {
	k.mu.Lock()
	ids := make([]peer.ID, 0, len(k.relays))
	for p := range k.relays {
		ids = append(ids, p)
	}
	k.mu.Unlock()
	for _, p := range ids {
		k.wake(p)
	}
}

// run keeps one relay's reservation while it is wanted.
func (k *relayKeeper) run(p peer.ID, st *relayState) {
	ctx := k.o.ctx
	var wait time.Duration
	for {
		next := k.step(ctx, p, st, &wait)
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-st.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// step reserves, renews or releases as needed and returns when to look
// again.
func (k *relayKeeper) step(ctx context.Context, p peer.ID, st *relayState, wait *time.Duration) time.Duration {
	k.mu.Lock()
	public := k.public
	rsvp := st.rsvp
	k.mu.Unlock()
	if public {
		if rsvp != nil {
			k.o.log.Info("publicly reachable; releasing relay reservation", "relay", p)
			k.set(p, st, nil, nil)
		}
		return time.Hour
	}
	if rsvp != nil && time.Until(rsvp.Expiration) > relayRefresh &&
		k.o.Network().Connectedness(p) == network.Connected {
		return time.Until(rsvp.Expiration) - relayRefresh
	}
	rctx, cancel := context.WithTimeout(ctx, k.backoff.DialTimeout)
	r, err := client.Reserve(rctx, k.o.Host, peer.AddrInfo{ID: p, Addrs: st.static})
	cancel()
	if ctx.Err() != nil {
		return time.Hour
	}
	if err != nil {
		*wait = k.backoff.next(*wait)
		k.o.log.Info("relay reservation failed; retrying", "relay", p, "in", wait.Round(time.Millisecond), "err", err)
		if rsvp != nil && time.Now().After(rsvp.Expiration) {
			k.set(p, st, nil, nil)
		}
		return jitter(*wait)
	}
	*wait = 0
	circuit := circuitAddrs(p, append(slices.Clone(st.static), r.Addrs...))
	k.o.log.Debug("relay reservation", "relay", p, "expires", r.Expiration, "addrs", circuit)
	k.set(p, st, r, circuit)
	return max(time.Until(r.Expiration)-relayRefresh, time.Second)
}

func (k *relayKeeper) set(p peer.ID, st *relayState, r *client.Reservation, circuit []ma.Multiaddr) {
	k.mu.Lock()
	changed := (st.rsvp == nil) != (r == nil) || !slices.EqualFunc(st.circuit, circuit, ma.Multiaddr.Equal)
	st.rsvp, st.circuit = r, circuit
	k.mu.Unlock()
	if changed {
		k.changed()
	}
}

// circuitAddrs returns <relay addr>/p2p/<relay>/p2p-circuit for each
// usable relay address. Loopback addresses are kept only when the relay has
// nothing else (a relay on the same machine, as in tests).
func circuitAddrs(relayID peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	addrs = ma.Unique(addrs)
	nonLoop := slices.DeleteFunc(slices.Clone(addrs), manet.IsIPLoopback)
	if len(nonLoop) > 0 {
		addrs = nonLoop
	}
	suffix, err := ma.NewMultiaddr(fmt.Sprintf("/p2p/%s/p2p-circuit", relayID))
	if err != nil {
		return nil
	}
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if ClassifyAddr(a) == PathRelayed {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
			a, _ = ma.SplitLast(a) // drop a trailing /p2p/<relay>
		}
		out = append(out, a.Encapsulate(suffix))
	}
	return out
}

// has reports whether p is one of the configured relays.
func (k *relayKeeper) has(p peer.ID) bool {
	_, ok := k.relays[p] // fixed key set: no lock needed
	return ok
}

// addrs returns our addresses through relays with a live reservation.
func (k *relayKeeper) addrs() []ma.Multiaddr {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []ma.Multiaddr
	for _, st := range k.relays {
		out = append(out, st.circuit...)
	}
	return out
}

// reserved returns the relays with a live reservation, sorted.
func (k *relayKeeper) reserved() []peer.ID {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []peer.ID
	for p, st := range k.relays {
		if st.rsvp != nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
