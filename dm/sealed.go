package dm

import (
	"bytes"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
)

// This file is the seam to other delivery paths (package mailbox: sealed
// deposits with holders). The outbox stays the source of truth: a message
// delivered another way is marked delivered only on the recipient's
// signed receipt, and a message received another way is deduplicated
// against direct ones by (sender, id) in the same inbox.

// Outgoing is a pending outgoing message, for delivery by another path.
type Outgoing struct {
	ID        []byte
	To        peer.ID
	Text      string
	CreatedMs int64
	ExpiresMs int64
	// Seq orders messages queued in the same millisecond.
	Seq int64
	// State is events.DMQueued or events.DMSent.
	State string
}

// PendingTo returns the messages to p that wait for delivery (queued or
// sent), oldest first.
func (s *Service) PendingTo(p peer.ID) ([]Outgoing, error) {
	if len(p) > maxPeerIDLen {
		return nil, nil
	}
	var out []*pb.OutboxRecord
	prefix := peerPrefix(p)
	nowMs := time.Now().UnixMilli()
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketOutbox)).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rec := new(pb.OutboxRecord)
			if decodeRecord(v, rec) != nil || !isPending(rec) || rec.ExpiresMs <= nowMs || len(rec.Id) != IDLen {
				continue
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load outbox for %s: %w", p, err)
	}
	sortByCreated(out)
	res := make([]Outgoing, len(out))
	for i, r := range out {
		res[i] = Outgoing{ID: r.Id, To: p, Text: r.Text, CreatedMs: r.CreatedMs, ExpiresMs: r.ExpiresMs, Seq: r.Seq, State: stateNames[r.State]}
	}
	return res, nil
}

// Relayed is a direct message that arrived by another path, its sender
// authenticated by that path (a verified signature).
type Relayed struct {
	ID       []byte
	From     peer.ID
	Nick     string
	Text     string
	SentAtMs int64
	// Via names the path for the dm event (a holder's peer ID).
	Via string
}

// Verdict is what AcceptRelayed did with a message.
type Verdict int

const (
	// Stored: new, stored and reported (a dm event).
	Stored Verdict = iota + 1
	// Duplicate: stored earlier (directly or by another path); not
	// reported again. The sender may be told it was delivered.
	Duplicate
	// Refused: breaks the recipient's rules (text, nick, time); dropped.
	Refused
	// OverQuota: not stored, the strangers' inbox quota is full
	// (ErrInboxQuota); offer it again later.
	OverQuota
)

// AcceptRelayed applies the recipient's checks to a message that came by
// another path, stores it in the inbox unless (From, ID) is there
// already, and reports it once as a dm event. An error (storage) means
// the message was not stored and should be offered again later.
func (s *Service) AcceptRelayed(m Relayed) (Verdict, error) {
	vs, err := s.AcceptRelayedBatch([]Relayed{m})
	if err != nil {
		return 0, err
	}
	if vs[0] == OverQuota {
		return 0, fmt.Errorf("message from %s: %w", m.From, ErrInboxQuota)
	}
	return vs[0], nil
}

// AcceptRelayedBatch is AcceptRelayed for many messages in one store
// transaction (one disk commit): it returns their verdicts in order and
// reports the stored ones as dm events, in order, after the commit. An
// error (storage) means none was stored.
func (s *Service) AcceptRelayedBatch(ms []Relayed) ([]Verdict, error) {
	out := make([]Verdict, len(ms))
	// release[i] gives back the quota reserved for ms[i] if it is not
	// stored after all.
	release := make([]func(), len(ms))
	now := time.Now()
	for i, m := range ms {
		msg := &pb.Message{Id: m.ID, Text: m.Text, Nick: m.Nick, SentAtMs: m.SentAtMs}
		if len(m.ID) != IDLen || len(m.From) > maxPeerIDLen || m.From == s.h.ID() ||
			s.check(msg, now) != pb.Ack_REASON_UNSPECIFIED {
			out[i] = Refused
			continue
		}
		var ok bool
		if release[i], ok = s.reserveInbox(m.From, "", msg, now); !ok && !s.stored(m.From, m.ID) {
			out[i] = OverQuota
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		in, unshown := tx.Bucket([]byte(bucketInbox)), tx.Bucket([]byte(bucketUnshownIn))
		for i, m := range ms {
			if out[i] == Refused || out[i] == OverQuota {
				continue
			}
			key := recordKey(m.From, m.ID)
			if in.Get(key) != nil { // stored earlier, or earlier in this batch
				out[i] = Duplicate
				continue
			}
			out[i] = Stored
			err := putRecord(in, key, &pb.InboxRecord{Id: m.ID, From: []byte(m.From), Nick: m.Nick, Text: m.Text,
				SentAtMs: m.SentAtMs, ReceivedMs: now.UnixMilli()})
			if err != nil {
				return fmt.Errorf("store message from %s: %w", m.From, err)
			}
			if s.cfg.ConfirmShown {
				if err := unshown.Put(key, nil); err != nil {
					return fmt.Errorf("mark not shown: %w", err)
				}
			}
		}
		return nil
	})
	for i, r := range release {
		if r != nil && (err != nil || out[i] != Stored) {
			r()
		}
	}
	if err != nil {
		s.ctr.storageErrors.Add(1)
		return nil, fmt.Errorf("store %d relayed messages: %w", len(ms), err)
	}
	for i, m := range ms {
		switch out[i] {
		case Refused:
			s.ctr.rejected.Add(1)
		case OverQuota:
			s.ctr.overQuota.Add(1)
		case Duplicate:
			s.ctr.duplicates.Add(1)
		case Stored:
			s.ctr.received.Add(1)
			s.emit.Emit(events.DM{
				ID: msgID(m.ID), From: m.From, Nick: m.Nick, Text: m.Text,
				SentAt: time.UnixMilli(m.SentAtMs).UTC(), Via: m.Via,
			})
		}
	}
	return out, nil
}

// ConfirmDelivered marks pending messages to p delivered on p's receipt
// that came by another path (via names it for the dm_status event).
// Unknown ids, and messages no longer pending, are skipped.
func (s *Service) ConfirmDelivered(p peer.ID, ids [][]byte, via string) error {
	if len(p) > maxPeerIDLen {
		return nil
	}
	ups := make([]update, 0, len(ids))
	for _, id := range ids {
		if len(id) == IDLen {
			ups = append(ups, update{rec: &pb.OutboxRecord{Id: id, To: []byte(p)}, state: pb.State_STATE_DELIVERED})
		}
	}
	applied, err := s.applyStates(ups)
	for _, u := range applied {
		s.mu.Lock()
		s.pending--
		s.mu.Unlock()
		s.ctr.delivered.Add(1)
		s.emit.Emit(events.DMStatus{ID: msgID(u.rec.Id), To: p, State: events.DMDelivered, Via: via})
	}
	return err
}
