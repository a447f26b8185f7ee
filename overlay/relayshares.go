package overlay

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
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
// renewal replaces the peer's claim. Circuits are checked against
// RelayFor only: each needs a reservation at its destination and the
// relay bounds them per peer (MaxCircuits).
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

	mu      sync.Mutex
	claims  map[peer.ID]relayClaim // strangers' reservations; guarded by mu
	refused int64                  // guarded by mu
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
	}
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
// its people through it). The relay bounds circuits per peer.
func (r *relayShares) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	if r.allow == nil {
		return true
	}
	ok := r.allow(src) && r.allow(dest)
	if !ok {
		r.log.Debug("relay circuit refused: an end is not a room member or trusted peer", "src", src, "dest", dest)
	}
	return ok
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
