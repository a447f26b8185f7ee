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

// relayShares is the relay service's ACL when it relays for every peer:
// a reservation is granted only within the shares (fair.Shares) and the
// relay's own total and per-IP limits, counted here from the claims it
// granted, so that a refusal is one of ours, not a slot counted but then
// refused by the relay. A claim ends when its reservation would expire
// (ReservationTTL) or its peer is no longer connected (the relay forgets
// a reservation then); a renewal replaces the peer's claim. Circuits are
// not split: each needs a reservation at its destination and the relay
// bounds them per peer (MaxCircuits).
type relayShares struct {
	shares    fair.Shares
	perIP     int
	ttl       time.Duration
	known     func(peer.ID) bool // nil: nobody is known
	newcomer  func(peer.ID) bool // nil: nobody is a newcomer
	connected func(peer.ID) bool
	now       func() time.Time
	log       *slog.Logger

	mu      sync.Mutex
	claims  map[peer.ID]relayClaim // guarded by mu
	refused int64                  // guarded by mu
}

type relayClaim struct {
	ip, subnet string
	stranger   bool
	newcomer   bool
	expires    time.Time
}

func newRelayShares(o *Host, cfg *Config) *relayShares {
	res := *cfg.RelayService
	return &relayShares{
		shares: RelaySharesOf(res, cfg.Known != nil),
		perIP:  res.MaxReservationsPerIP,
		ttl:    res.ReservationTTL,
		known:  cfg.Known, newcomer: cfg.Newcomer,
		connected: func(p peer.ID) bool { return o.Network().Connectedness(p) == network.Connected },
		now:       time.Now,
		log:       o.log,
		claims:    make(map[peer.ID]relayClaim),
	}
}

// AllowReserve grants p, connected at a, a reservation if it fits.
func (r *relayShares) AllowReserve(p peer.ID, a ma.Multiaddr) bool {
	stranger := r.known == nil || !r.known(p)
	newcomer := stranger && r.newcomer != nil && r.newcomer(p)
	c := relayClaim{subnet: fair.Subnet(a), stranger: stranger, newcomer: newcomer}
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
		if o.stranger {
			held.Add(o.subnet == c.subnet && c.subnet != "", o.newcomer)
		}
	}
	ok := len(r.claims) < r.shares.Total && (r.perIP <= 0 || sameIP < r.perIP) &&
		(!stranger || r.shares.StrangerFits(held, newcomer))
	if !ok {
		r.refused++
		r.log.Debug("relay reservation refused: share full", "peer", p, "subnet", c.subnet,
			"newcomer", newcomer, "held", len(r.claims), "strangers", held.Strangers, "subnet_held", held.Subnet)
		return false
	}
	c.expires = now.Add(r.ttl)
	r.claims[p] = c
	return true
}

// AllowConnect lets every circuit through (the relay bounds them).
func (r *relayShares) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return true }

// prune forgets expired claims and those of peers gone. r.mu is held.
func (r *relayShares) prune(now time.Time) {
	for p, c := range r.claims {
		if now.After(c.expires) || !r.connected(p) {
			delete(r.claims, p)
		}
	}
}

// RelayRefused counts the reservations the relay service's shares
// refused since New (0 without a relay open to every peer).
func (o *Host) RelayRefused() int64 {
	if o.relayShares == nil {
		return 0
	}
	o.relayShares.mu.Lock()
	defer o.relayShares.mu.Unlock()
	return o.relayShares.refused
}
