package rooms

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Store buckets of the membership log and epoch keys (docs/PROTOCOL.md §10).
var (
	// bucketMembers holds one nested bucket per room topic, mapping a
	// change's seq (8 bytes big-endian) to its pb.SignedMemberChange.
	bucketMembers = []byte("rooms/members")
	// bucketEpochs holds one nested bucket per room topic, mapping an
	// epoch (8 bytes big-endian) to a pb.StoredEpochKey. A key is deleted
	// EpochKeyGrace after its epoch ended here.
	bucketEpochs = []byte("rooms/epochs")
)

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// ensureMemberBuckets creates the membership buckets.
func ensureMemberBuckets(db *bolt.DB) error {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMembers, bucketEpochs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create membership buckets: %w", err)
	}
	return nil
}

// loadMembers reads a room's log and epoch keys and replays the log.
func loadMembers(db *bolt.DB, m *roomMembers) error {
	var changes []change
	keys := make(map[uint64]*epochKey)
	err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMembers).Bucket([]byte(m.topic)); b != nil {
			err := b.ForEach(func(_, v []byte) error {
				var sc pb.SignedMemberChange
				if err := proto.Unmarshal(v, &sc); err != nil {
					return fmt.Errorf("decode stored change: %w", err)
				}
				c, err := decodeChange(&sc)
				if err != nil {
					return err
				}
				changes = append(changes, c)
				return nil
			})
			if err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketEpochs).Bucket([]byte(m.topic))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var w pb.StoredEpochKey
			if len(k) != 8 || proto.Unmarshal(v, &w) != nil {
				return fmt.Errorf("bad stored epoch key")
			}
			ek, err := newEpochKey(w.Key)
			if err != nil {
				return err
			}
			if w.EndedAtMs != 0 {
				ek.ended = time.UnixMilli(w.EndedAtMs)
			}
			keys[binary.BigEndian.Uint64(k)] = ek
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load membership of %s: %w", m.topic, err)
	}
	st, err := replayLog(m.topic, changes)
	if err != nil {
		return fmt.Errorf("replay stored membership log: %w", err)
	}
	m.mu.Lock()
	m.log, m.keys = st, keys
	m.mu.Unlock()
	return nil
}

// saveMembers writes the log from seq from on (deleting later stored
// changes, after a fork) and the given epoch keys, in one transaction.
func saveMembers(db *bolt.DB, topic string, st *logState, from uint64, keys map[uint64]*epochKey, drop []uint64) error {
	err := db.Update(func(tx *bolt.Tx) error {
		lb, err := tx.Bucket(bucketMembers).CreateBucketIfNotExists([]byte(topic))
		if err != nil {
			return err
		}
		var stale [][]byte
		c := lb.Cursor()
		for k, _ := c.Seek(seqKey(from)); k != nil; k, _ = c.Next() {
			stale = append(stale, k)
		}
		for _, k := range stale {
			if err := lb.Delete(k); err != nil {
				return err
			}
		}
		for _, ch := range st.changes[min(int(from), len(st.changes)+1)-1:] { // #nosec G115 -- at most MaxLogChanges
			v, err := proto.Marshal(ch.signed)
			if err != nil {
				return err
			}
			if err := lb.Put(seqKey(ch.seq), v); err != nil {
				return err
			}
		}
		return putEpochKeys(tx, topic, keys, drop)
	})
	if err != nil {
		return fmt.Errorf("store membership of %s: %w", topic, err)
	}
	return nil
}

// putEpochKeys stores keys and deletes the epochs in drop.
func putEpochKeys(tx *bolt.Tx, topic string, keys map[uint64]*epochKey, drop []uint64) error {
	eb, err := tx.Bucket(bucketEpochs).CreateBucketIfNotExists([]byte(topic))
	if err != nil {
		return err
	}
	for e, k := range keys {
		w := &pb.StoredEpochKey{Key: k.key}
		if !k.ended.IsZero() {
			w.EndedAtMs = k.ended.UnixMilli()
		}
		v, err := proto.Marshal(w)
		if err != nil {
			return err
		}
		if err := eb.Put(seqKey(e), v); err != nil {
			return err
		}
	}
	for _, e := range drop {
		if err := eb.Delete(seqKey(e)); err != nil {
			return err
		}
	}
	return nil
}

// storeEpochKeys stores keys and deletes the epochs in drop.
func storeEpochKeys(db *bolt.DB, topic string, keys map[uint64]*epochKey, drop []uint64) error {
	if err := db.Update(func(tx *bolt.Tx) error { return putEpochKeys(tx, topic, keys, drop) }); err != nil {
		return fmt.Errorf("store epoch keys of %s: %w", topic, err)
	}
	return nil
}

// deleteMembers forgets a room's log and epoch keys (Leave).
func deleteMembers(db *bolt.DB, topic string) error {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMembers, bucketEpochs} {
			if tx.Bucket(b).Bucket([]byte(topic)) != nil {
				if err := tx.Bucket(b).DeleteBucket([]byte(topic)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget membership of %s: %w", topic, err)
	}
	return nil
}
