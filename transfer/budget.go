package transfer

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/fair"
)

// Budgets of the capacities strangers share (docs/SECURITY.md, "Budgets").
// A known peer (Config.Known: a trusted contact, a peer this node wrote
// to, a member of one of its private rooms) may use the whole of a
// capacity; strangers together never more than the capacity minus the
// reserved share; the strangers behind one subnet (an IPv4 /24, an IPv6
// /48) never more than a per-subnet share of that; and the newcomers
// (Config.Newcomer: identities first seen less than an hour ago) together
// never more than a quarter of it. So any number of throwaway identities,
// from any number of addresses, leaves the reserved share to the peers
// this node knows, and a crowd of fresh ones leaves most of the
// strangers' share to the identities seen before.
var (
	// pendingShares split the offers from all peers waiting for an
	// answer.
	pendingShares = fair.Shares{Total: 256, Reserved: 64, PerSubnet: 32, Newcomers: 48}
	// uploadShares split the share uploads listed at once.
	uploadShares = fair.Shares{Total: 256, Reserved: 64, PerSubnet: 32, Newcomers: 48}
)

// uploadsPerPeer caps the uploads one peer holds (distinct shares fetched
// at once).
const uploadsPerPeer = 8

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

// newcomer reports whether p is an identity first seen less than an hour
// ago (Config.Newcomer).
func (s *Service) newcomer(p peer.ID) bool {
	return s.cfg.Newcomer != nil && s.cfg.Newcomer(p)
}

// offerRoom reports whether an offer t (from a known peer or a stranger,
// with its subnet and age) fits in the pending-offer budgets. s.mu must be
// held.
func (s *Service) offerRoom(t *transfer) bool {
	pending, total := 0, 0
	var held fair.Held
	for _, o := range s.transfers {
		if o.dir != Receive || o.state != StateOffered || o.share {
			continue
		}
		total++
		if o.peer == t.peer {
			pending++
		}
		if o.stranger {
			held.Add(o.subnet == t.subnet && t.subnet != "", o.newcomer)
		}
	}
	switch {
	case pending >= s.cfg.MaxPendingOffers || total >= pendingShares.Total:
		return false
	case !t.stranger:
		return true
	}
	return pendingShares.StrangerFits(held, t.newcomer)
}

// uploadRoom reports whether a new upload u (to a known peer or a
// stranger, with its subnet and age) fits in the upload budgets, after
// forgetting finished and abandoned uploads. s.mu must be held.
func (s *Service) uploadRoom(u *transfer, now time.Time) bool {
	s.pruneUploadsAt(now)
	perPeer := 0
	var held fair.Held
	for k, o := range s.uploads {
		if k.peer == u.peer {
			perPeer++
		}
		if o.stranger {
			held.Add(o.subnet == u.subnet && u.subnet != "", o.newcomer)
		}
	}
	switch {
	case len(s.uploads) >= uploadShares.Total || perPeer >= uploadsPerPeer:
		return false
	case !u.stranger:
		return true
	}
	return uploadShares.StrangerFits(held, u.newcomer)
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
