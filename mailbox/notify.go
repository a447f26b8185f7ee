package mailbox

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Deposit notifications: a holder tells a connected owner that its
// mailbox has new deposits by opening a NotifyProtocolID stream to it
// and closing it; nothing is written either way. The owner picks up from
// that holder at once (if it is one of its holders) instead of waiting
// for its next poll. Notifications are never dialled: an owner that is
// not connected picks up when it connects.

// notifyGap is the least time between two rounds of notifications: a
// flood of deposits costs an owner at most a few pickups per second.
const notifyGap = 200 * time.Millisecond

// loadOwners maps the mailbox id of each stored owner record to its
// owner. It runs before the holder serves.
func (s *Holder) loadOwners(tx *bolt.Tx) {
	_ = tx.Bucket([]byte(bucketOwners)).ForEach(func(k, v []byte) error {
		if rec, err := OpenRecord(v); err == nil && rec.Peer == peer.ID(k) {
			s.owners[string(rec.MailboxID())] = rec.Peer
		}
		return nil
	})
}

// learnOwner maps r's mailbox id to its owner.
func (s *Holder) learnOwner(r *Record) {
	s.mu.Lock()
	s.owners[string(r.MailboxID())] = r.Peer
	s.mu.Unlock()
}

// toNotify queues a notification to the owner of mailbox when it is
// connected. Callers hold mu.
func (s *Holder) toNotify(mailbox []byte) {
	p, ok := s.owners[string(mailbox)]
	if !ok || s.h.Network().Connectedness(p) != network.Connected {
		return
	}
	s.notify[p] = struct{}{}
	poke(s.wakeNotify)
}

// notifyLoop sends the queued notifications, a round at most every
// notifyGap.
func (s *Holder) notifyLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wakeNotify:
		}
		s.mu.Lock()
		owners := make([]peer.ID, 0, len(s.notify))
		for p := range s.notify {
			owners = append(owners, p)
		}
		clear(s.notify)
		s.mu.Unlock()
		for _, p := range owners {
			s.notifyOne(p)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(notifyGap):
		}
	}
}

// notifyOne opens and closes a notification stream to a connected owner.
func (s *Holder) notifyOne(p peer.ID) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StreamTimeout)
	defer cancel()
	ctx = network.WithNoDial(network.WithAllowLimitedConn(ctx, "parley mailbox notify"), "parley mailbox notify")
	str, err := s.h.NewStream(ctx, p, NotifyProtocolID)
	if err != nil {
		s.log.Debug("mailbox: notifying an owner failed", "owner", p, "err", err)
		return
	}
	if err := str.Scope().SetService(ServiceName); err != nil {
		_ = str.Reset()
		return
	}
	s.ctr.notified.Add(1)
	_ = str.Close()
}

// handleNotify serves NotifyProtocolID on the courier: a notification
// from one of the node's holders makes it pick up from that holder now;
// from anyone else it is ignored.
func (c *Courier) handleNotify(str network.Stream) {
	p := str.Conn().RemotePeer()
	_ = str.Close()
	if !c.isHolder(p) {
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.picks[p] = struct{}{}
	}
	c.mu.Unlock()
	poke(c.wakePick)
}
