package transfer

import (
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Budgets of the capacities strangers share (docs/SECURITY.md, "Budgets").
// A known peer (Config.Known: a trusted contact, a peer this node wrote
// to, a member of one of its private rooms) may use the whole of a
// capacity; strangers together never more than the capacity minus the
// reserved share, and the strangers behind one subnet (an IPv4 /24, an
// IPv6 /48) never more than a per-subnet share of that. So any number of
// throwaway identities, from any number of addresses, leaves the reserved
// share to the peers this node knows.
const (
	// maxPendingTotal caps the offers from all peers waiting for an answer.
	maxPendingTotal = 256
	// pendingReserved of them only known peers may fill.
	pendingReserved = maxPendingTotal / 4
	// pendingPerSubnet caps the strangers' offers from one subnet.
	pendingPerSubnet = 32

	// maxUploads bounds the share uploads listed at once.
	maxUploads = 256
	// uploadsReserved of them only known peers may hold.
	uploadsReserved = maxUploads / 4
	// uploadsPerSubnet caps the strangers' uploads from one subnet.
	uploadsPerSubnet = 32
	// uploadsPerPeer caps the uploads one peer holds (distinct shares
	// fetched at once).
	uploadsPerPeer = 8
)

// BudgetCounters count what the budgets refused or expired since New.
type BudgetCounters struct {
	OffersRefused  int64 // offers answered BUSY: the sender's budget was full
	OffersExpired  int64 // strangers' offers dropped: sender gone (StrangerOfferTTL)
	UploadsRefused int64 // share Gets answered BUSY: the fetcher's budget was full
	UploadsExpired int64 // share uploads forgotten: no stream for IdleTimeout
}

// Budget returns the budget counters.
func (s *Service) Budget() BudgetCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.budget
}

// DefaultStrangerOfferTTL is the default of Config.StrangerOfferTTL.
const DefaultStrangerOfferTTL = time.Hour

// known reports whether p is a known peer (Config.Known).
func (s *Service) known(p peer.ID) bool {
	return s.cfg.Known != nil && s.cfg.Known(p)
}

// subnetOf names the subnet a connection comes from, the unit of the
// per-subnet budgets: an IPv4 /24 or an IPv6 /48 of the remote address
// (for a relayed connection, the relay's), or "" when it has none.
func subnetOf(c network.Conn) string {
	if c == nil {
		return ""
	}
	addr := c.RemoteMultiaddr()
	ip, err := manet.ToIP(addr)
	if err != nil {
		// A relayed connection: its address starts with the relay's.
		if len(addr) == 0 || (addr[0].Code() != ma.P_IP4 && addr[0].Code() != ma.P_IP6) {
			return ""
		}
		if ip = net.ParseIP(addr[0].Value()); ip == nil {
			return ""
		}
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.Mask(net.CIDRMask(24, 32)).String() + "/24"
	}
	return ip.Mask(net.CIDRMask(48, 128)).String() + "/48"
}

// offerRoom reports whether an offer from a peer (known or not, from
// subnet) fits in the pending-offer budgets. s.mu must be held.
func (s *Service) offerRoom(from peer.ID, known bool, subnet string) bool {
	pending, total, strangers, fromSubnet := 0, 0, 0, 0
	for _, o := range s.transfers {
		if o.dir != Receive || o.state != StateOffered || o.share {
			continue
		}
		total++
		if o.peer == from {
			pending++
		}
		if o.stranger {
			strangers++
			if subnet != "" && o.subnet == subnet {
				fromSubnet++
			}
		}
	}
	switch {
	case pending >= s.cfg.MaxPendingOffers || total >= maxPendingTotal:
		return false
	case known:
		return true
	}
	return strangers < maxPendingTotal-pendingReserved && fromSubnet < pendingPerSubnet
}

// uploadRoom reports whether a new upload to a peer (known or not, from
// subnet) fits in the upload budgets, after forgetting finished and
// abandoned uploads. s.mu must be held.
func (s *Service) uploadRoom(from peer.ID, known bool, subnet string, now time.Time) bool {
	s.pruneUploadsAt(now)
	perPeer, strangers, fromSubnet := 0, 0, 0
	for k, u := range s.uploads {
		if k.peer == from {
			perPeer++
		}
		if u.stranger {
			strangers++
			if subnet != "" && u.subnet == subnet {
				fromSubnet++
			}
		}
	}
	switch {
	case len(s.uploads) >= maxUploads || perPeer >= uploadsPerPeer:
		return false
	case known:
		return true
	}
	return strangers < maxUploads-uploadsReserved && fromSubnet < uploadsPerSubnet
}

// pruneUploadsAt forgets finished uploads, and abandoned ones: no stream
// served them for IdleTimeout (every stream is itself cut after
// IdleTimeout without moving anything), so a fetcher that went away
// without DONE holds its slot that long at most. s.mu must be held.
func (s *Service) pruneUploadsAt(now time.Time) {
	for k, u := range s.uploads {
		switch {
		case u.state.Terminal():
			delete(s.uploads, k)
		case u.serving == 0 && now.Sub(u.idleSince) > s.cfg.IdleTimeout:
			delete(s.uploads, k)
			u.state, u.err = StateFailed, ErrExpired
			close(u.done)
			u.cancel()
			s.budget.UploadsExpired++
			s.log.Debug("transfer: abandoned upload expired", "id", u.id, "peer", u.peer)
		}
	}
}

// strangerGone reports whether t is an offer from a stranger that waited
// StrangerOfferTTL and whose sender is no longer connected: an offer
// nobody will complete, dropped so that it holds no budget. s.mu must be
// held.
func (s *Service) strangerGone(t *transfer, now time.Time) bool {
	return t.stranger && t.dir == Receive && now.Sub(t.created) > s.cfg.StrangerOfferTTL &&
		s.host.Network().Connectedness(t.peer) != network.Connected
}
