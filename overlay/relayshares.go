package overlay

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-chat/parley/internal/fair"
)

// RelaySharesOf splits the reservations of a relay service open to every
// peer (parley serve, Config.RelayFor nil; docs/SECURITY.md "Budgets"):
// a quarter reserved for known peers when the node has any (reserveKnown:
// a serve node with an allow list), strangers per subnet an eighth of
// all, newcomers together half of what strangers may hold. go-libp2p's
// relay bounds reservations in all and per IP address only, so without
// this a crowd of identities on the addresses of one subnet took every
// slot.
func RelaySharesOf(res relay.Resources, reserveKnown bool) fair.Shares {
	s := fair.Shares{Total: res.MaxReservations, PerSubnet: max(res.MaxReservations/8, 1)}
	if reserveKnown {
		s.Reserved = res.MaxReservations / 4
	}
	s.Newcomers = max((s.Total-s.Reserved)/2, 1)
	return s
}

// ChatRelayShares split the reservations of a chat node's relay for its
// own people (ChatRelayResources, Config.RelayFor): its people include
// the members of its public rooms, whom anyone can be, so half of the 16
// slots are kept for its known peers (Config.Known), strangers get 4 per
// subnet and newcomers together 4.
func ChatRelayShares() fair.Shares {
	return fair.Shares{Total: 16, Reserved: 8, PerSubnet: 4, Newcomers: 4}
}

// relayShares is the relay service's ACL: a peer RelayFor refuses (when
// set) is denied; a known peer (Config.Known) is left to the relay's own
// total and per-IP limits; a stranger's reservation is granted only
// within the shares (fair.Shares) and, among strangers, the relay's
// per-IP limit, so that a stranger's claim counted here is rarely one the
// relay then refuses (only when the relay is full with known peers' too).
// A claim ends when its reservation would expire (ReservationTTL) or its
// peer is no longer connected (the relay forgets a reservation then); a
// renewal replaces the peer's claim.
//
// Circuits are checked against RelayFor; each needs a reservation at its
// destination and the relay bounds them per peer (MaxCircuits). Among
// strangers they are split too: the strangers of one subnet hold at most
// circuitsPerSubnet circuits to one destination at a time
// (CircuitsPerSubnet), so that a crowd of identities cannot take all of a
// destination's MaxCircuits. The relay tells the ACL nothing when a
// circuit ends, so a stranger's circuit is a circuitClaim that lives while
// its source keeps a hop stream open to this host (hopStreams), pruned
// lazily: a destination's claims on each AllowConnect to it, all of them
// when the claims reach maxCircuitClaims.
type relayShares struct {
	allow     func(peer.ID) bool // Config.RelayFor; nil: every peer
	shares    fair.Shares
	perIP     int
	ttl       time.Duration
	known     func(peer.ID) bool // nil: nobody is known
	newcomer  func(peer.ID) bool // nil: nobody is a newcomer
	connected func(peer.ID) bool
	now       func() time.Time
	log       *slog.Logger

	// circuitsPerSubnet bounds the circuits to one destination of the
	// strangers of one subnet (0: no bound); maxCircuitClaims bounds the
	// claims kept for them. hopStreams counts the streams of the circuit
	// relay's hop protocol a peer has open to this host.
	circuitsPerSubnet int
	maxCircuitClaims  int
	hopStreams        func(peer.ID) int

	mu      sync.Mutex
	claims  map[peer.ID]relayClaim // strangers' reservations; guarded by mu
	refused int64                  // guarded by mu
	// circuits are the strangers' circuits, by destination and source;
	// nCircuits their number, circRefused the strangers' circuits
	// refused. Guarded by mu.
	circuits    map[peer.ID]map[peer.ID]circuitClaim
	nCircuits   int
	circRefused int64
}

// circuitClaim is a stranger's circuits from one source to one
// destination: n of them, from a source in subnet.
type circuitClaim struct {
	subnet string
	n      int
}

// CircuitsPerSubnet is how many circuits to one destination the
// strangers of one subnet may hold at a time on a relay with res: a
// quarter of MaxCircuits, at least 1 (8 on `parley serve`, 1 on a chat
// node's relay).
func CircuitsPerSubnet(res relay.Resources) int {
	return max(res.MaxCircuits/4, 1)
}

type relayClaim struct {
	ip, subnet string
	newcomer   bool
	expires    time.Time
}

func newRelayShares(o *Host, cfg *Config) *relayShares {
	res := *cfg.RelayService
	shares := RelaySharesOf(res, cfg.Known != nil)
	if cfg.RelayFor != nil {
		shares = ChatRelayShares()
	}
	return &relayShares{
		allow:  cfg.RelayFor,
		shares: shares,
		perIP:  res.MaxReservationsPerIP,
		ttl:    res.ReservationTTL,
		known:  cfg.Known, newcomer: cfg.Newcomer,
		connected: func(p peer.ID) bool { return o.Network().Connectedness(p) == network.Connected },
		now:       time.Now,
		log:       o.log,
		claims:    make(map[peer.ID]relayClaim),

		circuitsPerSubnet: CircuitsPerSubnet(res),
		// Every circuit needs a destination holding a reservation and
		// the relay lets each take part in MaxCircuits: more claims than
		// that are stale.
		maxCircuitClaims: max(res.MaxReservations*res.MaxCircuits, 1),
		hopStreams:       func(p peer.ID) int { return hopStreamsOf(o.Network(), p) },
	}
}

// hopStreamsOf counts the streams of the circuit relay's hop protocol
// that p has open to n: one is open for each of p's circuits through n
// while it lasts (and briefly for each reservation request).
func hopStreamsOf(n network.Network, p peer.ID) int {
	k := 0
	for _, c := range n.ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == proto.ProtoIDv2Hop {
				k++
			}
		}
	}
	return k
}

// AllowReserve grants p, connected at a, a reservation if RelayFor
// accepts it and, for a stranger, if it fits in the shares.
func (r *relayShares) AllowReserve(p peer.ID, a ma.Multiaddr) bool {
	if r.allow != nil && !r.allow(p) {
		r.log.Debug("relay reservation refused: not a room member or trusted peer", "peer", p)
		return false
	}
	if r.known != nil && r.known(p) {
		r.mu.Lock()
		delete(r.claims, p) // became known: its slot is no stranger's
		r.mu.Unlock()
		return true
	}
	newcomer := r.newcomer != nil && r.newcomer(p)
	c := relayClaim{subnet: fair.Subnet(a), newcomer: newcomer}
	if ip, err := manet.ToIP(a); err == nil {
		c.ip = ip.String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.prune(now)
	delete(r.claims, p) // a renewal replaces the claim, as the relay does
	var held fair.Held
	sameIP := 0
	for _, o := range r.claims {
		if o.ip == c.ip {
			sameIP++
		}
		held.Add(o.subnet == c.subnet && c.subnet != "", o.newcomer)
	}
	if (r.perIP > 0 && sameIP >= r.perIP) || !r.shares.StrangerFits(held, newcomer) {
		r.refused++
		r.log.Debug("relay reservation refused: strangers' share full", "peer", p, "subnet", c.subnet,
			"newcomer", newcomer, "strangers", held.Strangers, "subnet_held", held.Subnet, "newcomers", held.Newcomers)
		return false
	}
	c.expires = now.Add(r.ttl)
	r.claims[p] = c
	return true
}

// AllowConnect lets a circuit through when RelayFor accepts both ends
// (the destination is checked again because it may have left every
// shared room, or been untrusted, since it reserved; requiring the source
// too means a stranger can neither spend this node's bandwidth nor reach
// its people through it) and, for a stranger source at srcAddr, when the
// strangers of its subnet hold fewer than circuitsPerSubnet circuits to
// dest. The relay bounds circuits per peer.
func (r *relayShares) AllowConnect(src peer.ID, srcAddr ma.Multiaddr, dest peer.ID) bool {
	if r.allow != nil && !(r.allow(src) && r.allow(dest)) {
		r.log.Debug("relay circuit refused: an end is not a room member or trusted peer", "src", src, "dest", dest)
		return false
	}
	if r.circuitsPerSubnet <= 0 || r.hopStreams == nil || (r.known != nil && r.known(src)) {
		return true
	}
	subnet := fair.Subnet(srcAddr)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneCircuits(src, dest)
	if r.maxCircuitClaims > 0 && r.nCircuits >= r.maxCircuitClaims {
		for d := range r.circuits {
			r.pruneCircuits(src, d)
		}
	}
	held := 0
	for _, c := range r.circuits[dest] {
		if c.subnet == subnet && subnet != "" {
			held += c.n
		}
	}
	full := r.maxCircuitClaims > 0 && r.nCircuits >= r.maxCircuitClaims
	if held >= r.circuitsPerSubnet || full {
		r.circRefused++
		r.log.Debug("relay circuit refused: strangers' share of the destination full",
			"src", src, "dest", dest, "subnet", subnet, "subnet_held", held, "claims", r.nCircuits)
		return false
	}
	if r.circuits == nil {
		r.circuits = make(map[peer.ID]map[peer.ID]circuitClaim)
	}
	bySrc := r.circuits[dest]
	if bySrc == nil {
		bySrc = make(map[peer.ID]circuitClaim)
		r.circuits[dest] = bySrc
	}
	c := bySrc[src]
	c.subnet = subnet // a source's later circuit may come from elsewhere
	c.n++
	bySrc[src] = c
	r.nCircuits++
	return true
}

// pruneCircuits forgets the circuits to dest whose source no longer has
// as many hop streams open: a source's n circuits are cut to its open hop
// streams, less one for the request being decided when it is asking's
// (its own hop stream is open while AllowConnect runs). r.mu is held.
func (r *relayShares) pruneCircuits(asking, dest peer.ID) {
	bySrc := r.circuits[dest]
	for src, c := range bySrc {
		open := r.hopStreams(src)
		if src == asking {
			open--
		}
		if open < c.n {
			r.nCircuits -= c.n - max(open, 0)
			c.n = open
		}
		if c.n <= 0 {
			delete(bySrc, src)
		} else {
			bySrc[src] = c
		}
	}
	if len(bySrc) == 0 {
		delete(r.circuits, dest)
	}
}

// prune forgets expired claims and those of peers gone. r.mu is held.
func (r *relayShares) prune(now time.Time) {
	for p, c := range r.claims {
		if now.After(c.expires) || !r.connected(p) {
			delete(r.claims, p)
		}
	}
}

// RelayRefused counts the strangers' reservations the relay service's
// shares refused since New (0 without a relay service).
func (o *Host) RelayRefused() int64 {
	if o.relayShares == nil {
		return 0
	}
	o.relayShares.mu.Lock()
	defer o.relayShares.mu.Unlock()
	return o.relayShares.refused
}

// RelayCircuitsRefused counts the strangers' circuits the relay service
// refused since New because their subnet held its share of the
// destination's circuits (CircuitsPerSubnet) or the claims were at their
// bound (0 without a relay service).
func (o *Host) RelayCircuitsRefused() int64 {
	if o.relayShares == nil {
		return 0
	}
	o.relayShares.mu.Lock()
	defer o.relayShares.mu.Unlock()
	return o.relayShares.circRefused
}
