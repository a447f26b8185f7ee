package rooms

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Store buckets (top level, named after the package).
var (
	// bucketJoined maps a canonical room name to a pb.JoinedRoom.
	bucketJoined = []byte("rooms/joined")
	// bucketHistory holds one nested bucket per room topic, mapping a
	// history key (8-byte big-endian sent time in Unix ms, then the
	// 16-byte sync item ID: sent-time order) to a pb.StoredMessage.
	// Versions before the room sync keyed it by an 8-byte arrival
	// sequence number; migrateHistory rewrites those keys.
	bucketHistory = []byte("rooms/history")
	// bucketHistoryCount maps a room topic to the number of records in
	// its history bucket (8 bytes big-endian).
	bucketHistoryCount = []byte("rooms/history-count")
	// bucketReplay maps id (16 bytes) | author peer ID bytes to the record's
	// expiry in Unix milliseconds (8 bytes big-endian).
	bucketReplay = []byte("rooms/replay")
)

// maxStoredRecord bounds what is decoded from the store.
const maxStoredRecord = 2 * MaxMessageSize

func ensureBuckets(db *bolt.DB) error {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketJoined, bucketHistory, bucketReplay, bucketHistoryCount} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
		return migrateHistory(tx)
	})
	if err != nil {
		return fmt.Errorf("create rooms buckets: %w", err)
	}
	return nil
}

// loadJoined returns the persisted joined rooms.
func loadJoined(db *bolt.DB) ([]*pb.JoinedRoom, error) {
	var out []*pb.JoinedRoom
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJoined).ForEach(func(k, v []byte) error {
			rec := &pb.JoinedRoom{}
			if len(v) > maxStoredRecord {
				return fmt.Errorf("joined room %q: record too large", k)
			}
			if err := proto.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("joined room %q: %w", k, err)
			}
			out = append(out, rec)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load joined rooms: %w", err)
	}
	return out, nil
}

func putJoined(db *bolt.DB, rec *pb.JoinedRoom) error {
	v, err := proto.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode joined room: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJoined).Put([]byte(rec.Name), v)
	})
	if err != nil {
		return fmt.Errorf("store joined room %q: %w", rec.Name, err)
	}
	return nil
}

func deleteJoined(db *bolt.DB, name string) error {
	err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJoined).Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("forget joined room %q: %w", name, err)
	}
	return nil
}

func replayStoreKey(k replayKey) []byte {
	b := make([]byte, 0, idSize+len(k.author))
	b = append(b, k.id[:]...)
	return append(b, k.author...)
}

// putReplay stores a replay record: the value is the expiry (8 bytes,
// big-endian Unix ms) followed by the topic it was seen on (records
// written before the topic was kept have none, and count as a topic of
// their own until they expire).
func putReplay(tx *bolt.Tx, k replayKey, topic string, expiry time.Time) error {
	v := make([]byte, 8, 8+len(topic))
	binary.BigEndian.PutUint64(v, uint64(expiry.UnixMilli())) // #nosec G115 -- a time after 1970
	v = append(v, topic...)
	if err := tx.Bucket(bucketReplay).Put(replayStoreKey(k), v); err != nil {
		return fmt.Errorf("store replay record: %w", err)
	}
	return nil
}

// loadReplay loads unexpired replay records into g and deletes expired ones.
func loadReplay(db *bolt.DB, g *replayGuard, now time.Time) error {
	nowMs := now.UnixMilli()
	var expired [][]byte
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReplay).ForEach(func(k, v []byte) error {
			if len(k) <= idSize || len(v) < 8 {
				expired = append(expired, append([]byte(nil), k...))
				return nil
			}
			// #nosec G115 -- a value above MaxInt64 becomes negative and
			// is treated as expired and dropped: the safe outcome.
			exp := int64(binary.BigEndian.Uint64(v[:8]))
			if exp < nowMs {
				expired = append(expired, append([]byte(nil), k...))
				return nil
			}
			var rk replayKey
			copy(rk.id[:], k[:idSize])
			rk.author = peer.ID(k[idSize:])
			g.load(rk, string(v[8:]), exp)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load replay records: %w", err)
	}
	return deleteKeys(db, bucketReplay, expired)
}

// pruneReplayStore deletes expired replay records from the store.
func pruneReplayStore(db *bolt.DB, now time.Time) error {
	nowMs := now.UnixMilli()
	var expired [][]byte
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReplay).ForEach(func(k, v []byte) error {
			// #nosec G115 -- a value above MaxInt64 becomes negative: expired.
			if len(v) < 8 || int64(binary.BigEndian.Uint64(v[:8])) < nowMs {
				expired = append(expired, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("scan replay records: %w", err)
	}
	return deleteKeys(db, bucketReplay, expired)
}

func deleteKeys(db *bolt.DB, bucket []byte, keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete from %s: %w", bucket, err)
	}
	return nil
}
