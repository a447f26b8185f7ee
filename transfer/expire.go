package transfer

import (
	"fmt"
	"time"

	"github.com/parley-chat/parley/transfer/pb"
)

// maxExpireInterval bounds how late an offer past its time is dropped.
const maxExpireInterval = time.Minute

// senderGrace is how much longer than OfferTTL a sender waits for an
// answer before it gives up on its own: the recipient's clock started
// later, and its notice needs a connection to arrive.
func (c *Config) senderGrace() time.Duration { return min(c.OfferTTL, time.Hour) }

// expireLoop drops offers that waited too long for an answer, at start
// (offers restored from the store) and then every min(OfferTTL,
// StrangerOfferTTL)/4, at most a minute apart.
func (s *Service) expireLoop() {
	every := min(max(min(s.cfg.OfferTTL, s.cfg.StrangerOfferTTL)/4, time.Millisecond), maxExpireInterval)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		s.expireOffers(time.Now())
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// expireOffers ends the offers older than their time at now. An incoming
// offer fails with ErrExpired and the sender is told (Notice FAILED,
// EXPIRED); an outgoing one fails with ErrExpired and the recipient is
// told (Notice CANCEL, EXPIRED), so that neither side keeps it. An
// incoming offer from a stranger that left (strangerGone) fails with
// ErrExpired without a notice.
func (s *Service) expireOffers(now time.Time) {
	ttl := s.cfg.OfferTTL
	s.mu.Lock()
	var expired []*transfer
	for _, t := range s.transfers {
		if t.state != StateOffered || t.share {
			continue
		}
		age := now.Sub(t.created)
		if (t.dir == Receive && age > ttl) || (t.dir == Send && age > ttl+s.cfg.senderGrace()) {
			expired = append(expired, t)
		} else if s.strangerGone(t, now) {
			expired = append(expired, t)
			s.budget.OffersExpired++
		}
	}
	s.mu.Unlock()
	for _, t := range expired {
		var (
			err error
			n   *pb.Notice
		)
		switch {
		case t.dir == Receive && now.Sub(t.created) <= ttl:
			// strangerGone: no notice, which would be kept (and stored)
			// until a stranger that left comes back.
			err = fmt.Errorf("%w: a stranger's offer, and the sender left", ErrExpired)
		case t.dir == Receive:
			err = fmt.Errorf("%w: not answered within %v", ErrExpired, ttl)
			n = &pb.Notice{Id: t.rawID, Kind: pb.Notice_FAILED, Code: pb.Code_EXPIRED,
				Message: fmt.Sprintf("offer not answered within %v", ttl)}
		default:
			err = fmt.Errorf("%w: %s did not answer within %v", ErrExpired, t.peer, ttl+s.cfg.senderGrace())
			n = &pb.Notice{Id: t.rawID, Kind: pb.Notice_CANCEL, Code: pb.Code_EXPIRED}
		}
		if s.finish(t, StateFailed, err, n) {
			s.deliverAsync(t)
		}
	}
}
