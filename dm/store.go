package dm

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/dm/pb"
)

// Buckets. Keys are recordKey(peer, id): a length byte, the peer ID bytes,
// the 16-byte message id, so one peer's messages are a key prefix. Peer IDs
// are at most maxPeerIDLen bytes (Send checks; received messages come from
// authenticated connections, whose peer IDs are 34-38 bytes).
const (
	bucketOutbox = "dm/outbox" // recipient, id -> pending (queued, sent) pb.OutboxRecord
	bucketSent   = "dm/sent"   // recipient, id -> delivered or failed pb.OutboxRecord
	bucketInbox  = "dm/inbox"  // sender, id -> pb.InboxRecord (also the dedup record)
)

// maxPeerIDLen is the longest peer ID a record key can hold.
const maxPeerIDLen = 255

// maxRecordSize bounds what is decoded from one stored record.
const maxRecordSize = 64 << 10

func recordKey(p peer.ID, id []byte) []byte {
	k := make([]byte, 0, 1+len(p)+len(id))
	// #nosec G115 -- callers keep len(p) <= maxPeerIDLen: Send and History
	// check, and authenticated remote peer IDs are at most 42 bytes.
	k = append(k, byte(len(p)))
	k = append(k, p...)
	return append(k, id...)
}

func peerPrefix(p peer.ID) []byte { return recordKey(p, nil) }

func createBuckets(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{bucketOutbox, bucketSent, bucketInbox, bucketUnshownIn, bucketUnshownOut} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
}

func decodeRecord(v []byte, m proto.Message) error {
	if len(v) > maxRecordSize {
		return fmt.Errorf("stored record of %d bytes", len(v))
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("decode stored record: %w", err)
	}
	return nil
}

func putRecord(b *bolt.Bucket, key []byte, m proto.Message) error {
	v, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	return b.Put(key, v)
}

func isPending(r *pb.OutboxRecord) bool {
	return r.State == pb.State_STATE_QUEUED || r.State == pb.State_STATE_SENT
}

// putOutbox stores a new outgoing message.
func (s *Service) putOutbox(rec *pb.OutboxRecord) error {
	key := recordKey(peer.ID(rec.To), rec.Id)
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := putRecord(tx.Bucket([]byte(bucketOutbox)), key, rec); err != nil {
			return err
		}
		return s.markUnshownOut(tx, key, rec.State)
	})
}

// loadPending returns every pending outgoing message, oldest first. It
// skips (and logs) records that do not decode.
func (s *Service) loadPending() ([]*pb.OutboxRecord, error) {
	var out []*pb.OutboxRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketOutbox)).ForEach(func(k, v []byte) error {
			rec := new(pb.OutboxRecord)
			if err := decodeRecord(v, rec); err != nil {
				s.log.Warn("dm: skipping unreadable outbox record", "key", fmt.Sprintf("%x", k), "err", err)
				return nil
			}
			if _, err := peer.IDFromBytes(rec.To); err != nil || len(rec.Id) != IDLen {
				s.log.Warn("dm: skipping outbox record with a bad recipient or id", "key", fmt.Sprintf("%x", k))
				return nil
			}
			if isPending(rec) {
				out = append(out, rec)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load outbox: %w", err)
	}
	sortByCreated(out)
	return out, nil
}

func sortByCreated(recs []*pb.OutboxRecord) {
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].CreatedMs != recs[j].CreatedMs {
			return recs[i].CreatedMs < recs[j].CreatedMs
		}
		return recs[i].Seq < recs[j].Seq
	})
}

// expireAndLoad marks p's pending messages whose time to live has passed
// as failed and returns the others, oldest first, plus the expired ones.
// It writes to the database only when something expired.
func (s *Service) expireAndLoad(p peer.ID, now time.Time) (pending, expired []*pb.OutboxRecord, err error) {
	nowMs := now.UnixMilli()
	var due []*pb.OutboxRecord
	err = s.db.View(func(tx *bolt.Tx) error {
		prefix := peerPrefix(p)
		c := tx.Bucket([]byte(bucketOutbox)).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rec := new(pb.OutboxRecord)
			if err := decodeRecord(v, rec); err != nil {
				s.log.Warn("dm: skipping unreadable outbox record", "key", fmt.Sprintf("%x", k), "err", err)
				continue
			}
			switch {
			case !isPending(rec):
			case rec.ExpiresMs > nowMs:
				pending = append(pending, rec)
			default:
				due = append(due, rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load outbox for %s: %w", p, err)
	}
	ups := make([]update, len(due))
	for i, rec := range due {
		ups[i] = update{rec: rec, state: pb.State_STATE_FAILED, cause: expiredError(rec).Error()}
	}
	applied, err := s.applyStates(ups)
	for _, u := range applied {
		expired = append(expired, u.rec)
	}
	if err != nil {
		return nil, expired, fmt.Errorf("expire messages to %s: %w", p, err)
	}
	sortByCreated(pending)
	return pending, expired, nil
}

func expiredError(rec *pb.OutboxRecord) error {
	ttl := time.Duration(rec.ExpiresMs-rec.CreatedMs) * time.Millisecond
	return fmt.Errorf("%w: not delivered within %s", ErrExpired, ttl)
}

// update is a new state for a pending outgoing message.
type update struct {
	rec   *pb.OutboxRecord
	state pb.State
	cause string
}

func isFinal(st pb.State) bool {
	return st == pb.State_STATE_DELIVERED || st == pb.State_STATE_FAILED
}

// applyStates records new states of pending messages in one transaction
// and updates the records in memory. A final state moves the record from
// the outbox to bucketSent. Updates of records no longer pending are
// skipped; applied lists the others.
func (s *Service) applyStates(ups []update) (applied []update, err error) {
	if len(ups) == 0 {
		return nil, nil
	}
	nowMs := time.Now().UnixMilli()
	err = s.db.Update(func(tx *bolt.Tx) error {
		applied = applied[:0]
		out, sent := tx.Bucket([]byte(bucketOutbox)), tx.Bucket([]byte(bucketSent))
		for _, u := range ups {
			key := recordKey(peer.ID(u.rec.To), u.rec.Id)
			v := out.Get(key)
			if v == nil {
				continue
			}
			cur := new(pb.OutboxRecord)
			if err := decodeRecord(v, cur); err != nil {
				return err
			}
			cur.State, cur.Error, cur.UpdatedMs = u.state, u.cause, nowMs
			if u.state == pb.State_STATE_SENT {
				cur.Attempts++
			}
			dst := out
			if isFinal(u.state) {
				if err := out.Delete(key); err != nil {
					return fmt.Errorf("remove from outbox: %w", err)
				}
				dst = sent
			}
			if err := putRecord(dst, key, cur); err != nil {
				return fmt.Errorf("store message state: %w", err)
			}
			if err := s.markUnshownOut(tx, key, u.state); err != nil {
				return err
			}
			applied = append(applied, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update outbox: %w", err)
	}
	for _, u := range applied {
		u.rec.State, u.rec.Error = u.state, u.cause
	}
	return applied, nil
}

// storeInbox stores a received message unless (from, id) is stored
// already; dup reports that it was.
func (s *Service) storeInbox(from peer.ID, m *pb.Message, now time.Time) (dup bool, err error) {
	key := recordKey(from, m.Id)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketInbox))
		if b.Get(key) != nil {
			dup = true
			return nil
		}
		err := putRecord(b, key, &pb.InboxRecord{
			Id: m.Id, From: []byte(from), Nick: m.Nick, Text: m.Text,
			SentAtMs: m.SentAtMs, ReceivedMs: now.UnixMilli(),
		})
		if err != nil {
			return err
		}
		if !s.cfg.ConfirmShown {
			return nil
		}
		if err := tx.Bucket([]byte(bucketUnshownIn)).Put(key, nil); err != nil {
			return fmt.Errorf("mark not shown: %w", err)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store message from %s: %w", from, err)
	}
	return dup, nil
}

// prune removes delivered and failed outgoing messages and received
// messages older than MaxMessageAge. A received message is kept until both
// its sent_at and its arrival are that old: until then, a retransmission
// would pass the sent_at check and must be recognised as a duplicate.
func (s *Service) prune(now time.Time) (int, error) {
	cutoff := now.Add(-s.cfg.MaxMessageAge).UnixMilli()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var del [][]byte
		out := tx.Bucket([]byte(bucketSent))
		err := out.ForEach(func(k, v []byte) error {
			rec := new(pb.OutboxRecord)
			if decodeRecord(v, rec) != nil || rec.UpdatedMs < cutoff {
				del = append(del, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := out.Delete(k); err != nil {
				return fmt.Errorf("delete sent record: %w", err)
			}
			if err := tx.Bucket([]byte(bucketUnshownOut)).Delete(k); err != nil {
				return fmt.Errorf("delete sent record's mark: %w", err)
			}
		}
		n += len(del)
		del = del[:0]
		in := tx.Bucket([]byte(bucketInbox))
		err = in.ForEach(func(k, v []byte) error {
			rec := new(pb.InboxRecord)
			if decodeRecord(v, rec) != nil || (rec.ReceivedMs < cutoff && rec.SentAtMs < cutoff) {
				del = append(del, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range del {
			if err := in.Delete(k); err != nil {
				return fmt.Errorf("delete inbox record: %w", err)
			}
			if err := tx.Bucket([]byte(bucketUnshownIn)).Delete(k); err != nil {
				return fmt.Errorf("delete inbox record's mark: %w", err)
			}
		}
		n += len(del)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune dm store: %w", err)
	}
	return n, nil
}
