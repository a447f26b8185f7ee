package rooms

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// The history of a room is kept in sent-time order: each record is keyed
// by its sync item (sent time, then item ID), so that a message that
// arrives late, by the sync, takes its place among the others, and a
// message already stored is recognised by its key.

// historyKeySize is the size of a history key.
const historyKeySize = 8 + itemIDSize

func historyKey(it item) []byte {
	k := make([]byte, historyKeySize)
	binary.BigEndian.PutUint64(k, it.ts)
	copy(k[8:], it.id[:])
	return k
}

func itemFromKey(k []byte) (item, bool) {
	var it item
	if len(k) != historyKeySize {
		return it, false
	}
	it.ts = binary.BigEndian.Uint64(k)
	copy(it.id[:], k[8:])
	return it, true
}

// recordItem returns the sync item of a stored record.
func recordItem(rec *pb.StoredMessage) item {
	var envID [idSize]byte
	copy(envID[:], rec.Id)
	return item{ts: uint64(max(rec.SentAtMs, 0)), id: itemID(peer.ID(rec.From), envID)} // #nosec G115 -- not negative
}

// insertHistory stores rec in the history of topic unless a record of the
// same item is there, deleting the oldest records beyond limit. It
// reports whether rec was stored.
func insertHistory(tx *bolt.Tx, topic string, rec *pb.StoredMessage, limit int) (bool, error) {
	b, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(topic))
	if err != nil {
		return false, fmt.Errorf("history bucket: %w", err)
	}
	k := historyKey(recordItem(rec))
	if b.Get(k) != nil {
		return false, nil
	}
	v, err := proto.Marshal(rec)
	if err != nil {
		return false, fmt.Errorf("encode history record: %w", err)
	}
	if err := b.Put(k, v); err != nil {
		return false, fmt.Errorf("store history record: %w", err)
	}
	counts := tx.Bucket(bucketHistoryCount)
	n := readCount(counts.Get([]byte(topic))) + 1
	c := b.Cursor()
	for ck, _ := c.First(); ck != nil && n > uint64(max(limit, 0)); ck, _ = c.First() { // #nosec G115 -- not negative
		if err := c.Delete(); err != nil {
			return false, fmt.Errorf("trim history: %w", err)
		}
		n--
	}
	if err := counts.Put([]byte(topic), binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return false, fmt.Errorf("history count: %w", err)
	}
	return true, nil
}

func readCount(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// appendHistory stores rec as insertHistory does.
func appendHistory(tx *bolt.Tx, topic string, rec *pb.StoredMessage, limit int) error {
	_, err := insertHistory(tx, topic, rec, limit)
	return err
}

// hasHistory reports whether the history of topic holds it.
func hasHistory(tx *bolt.Tx, topic string, it item) bool {
	b := tx.Bucket(bucketHistory).Bucket([]byte(topic))
	return b != nil && b.Get(historyKey(it)) != nil
}

// readHistory returns the last n readable records of topic, oldest first,
// and how many unreadable ones it skipped on the way: one garbled record
// must not hide the rest of a room's history. Each skipped record is
// logged at debug by its key (never its bytes).
func readHistory(db *bolt.DB, log *slog.Logger, topic string, n int) ([]*pb.StoredMessage, int, error) {
	out := make([]*pb.StoredMessage, 0, min(n, 256))
	skipped := 0
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory).Bucket([]byte(topic))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			rec, err := decodeRecord(k, v)
			if err != nil {
				skipped++
				log.Debug("skipping unreadable history record", "err", err)
				continue
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read history: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, skipped, nil
}

func decodeRecord(k, v []byte) (*pb.StoredMessage, error) {
	if len(v) > maxStoredRecord {
		return nil, fmt.Errorf("history record %x too large", k)
	}
	rec := &pb.StoredMessage{}
	if err := proto.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("history record %x: %w", k, err)
	}
	return rec, nil
}

// historyItems returns the items of topic's history sent at or after
// sinceMs that can be served (their signed bytes are kept), at most max,
// the newest ones when there are more.
func historyItems(db *bolt.DB, topic string, sinceMs uint64, limit int) ([]item, error) {
	var out []item
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory).Bucket([]byte(topic))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			it, ok := itemFromKey(k)
			if !ok || it.ts < sinceMs {
				break
			}
			if hasSigned(v) {
				out = append(out, it)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read history items: %w", err)
	}
	return out, nil
}

// hasSigned reports, without decoding it all, whether a stored record
// keeps its signed bytes (records stored before the sync do not).
func hasSigned(v []byte) bool {
	rec := &pb.StoredMessage{}
	if proto.Unmarshal(v, rec) != nil {
		return false
	}
	return len(rec.Signed) > 0
}

// historySigned returns the signed bytes of the given items of topic.
func historySigned(db *bolt.DB, topic string, its []item) ([][]byte, error) {
	out := make([][]byte, 0, len(its))
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory).Bucket([]byte(topic))
		if b == nil {
			return nil
		}
		for _, it := range its {
			k := historyKey(it)
			v := b.Get(k)
			if v == nil {
				continue
			}
			rec, err := decodeRecord(k, v)
			if err != nil {
				continue // unreadable: not served, as readHistory skips it
			}
			if len(rec.Signed) > 0 {
				out = append(out, rec.Signed)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read signed history: %w", err)
	}
	return out, nil
}

// migrateHistory rewrites history records stored under arrival sequence
// numbers (before the room sync) under their history keys, and counts
// each room's records.
func migrateHistory(tx *bolt.Tx) error {
	hist := tx.Bucket(bucketHistory)
	counts := tx.Bucket(bucketHistoryCount)
	var topics [][]byte
	err := hist.ForEach(func(k, v []byte) error {
		if v == nil {
			topics = append(topics, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list history buckets: %w", err)
	}
	for _, topic := range topics {
		b := hist.Bucket(topic)
		type kv struct{ k, v []byte }
		var old []kv
		var n uint64
		err := b.ForEach(func(k, v []byte) error {
			n++
			if len(k) != historyKeySize {
				old = append(old, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("scan history %s: %w", topic, err)
		}
		for _, e := range old {
			if err := b.Delete(e.k); err != nil {
				return fmt.Errorf("migrate history: %w", err)
			}
			rec, err := decodeRecord(e.k, e.v)
			if err != nil {
				n--
				continue // unreadable: dropped
			}
			k := historyKey(recordItem(rec))
			if b.Get(k) != nil {
				n--
				continue
			}
			if err := b.Put(k, e.v); err != nil {
				return fmt.Errorf("migrate history: %w", err)
			}
		}
		if err := counts.Put(topic, binary.BigEndian.AppendUint64(nil, n)); err != nil {
			return fmt.Errorf("history count: %w", err)
		}
	}
	return nil
}
