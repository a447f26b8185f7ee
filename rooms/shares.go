package rooms

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A room's file shares (KIND_FILE_SHARE) are kept as their signed bytes,
// keyed like the history (sent time, then item ID), so that the sync's
// shares set (SYNC_SET_SHARES) hands them to a member that was away or
// joined while one was announced: GossipSub does not send a message
// again, and a share is not a chat line of the history.

// bucketShares holds one bucket per room topic: history key → signed
// message.
var bucketShares = []byte("rooms/shares")

// maxSharesPerRoom bounds the shares kept per room; the oldest go first.
const maxSharesPerRoom = 1000

// putShare keeps the signed share of item it in topic unless it is kept
// already, and reports whether it was new.
func putShare(tx *bolt.Tx, topic string, it item, signed []byte) (bool, error) {
	root, err := tx.CreateBucketIfNotExists(bucketShares)
	if err != nil {
		return false, fmt.Errorf("shares bucket: %w", err)
	}
	b, err := root.CreateBucketIfNotExists([]byte(topic))
	if err != nil {
		return false, fmt.Errorf("shares bucket: %w", err)
	}
	k := historyKey(it)
	if b.Get(k) != nil {
		return false, nil
	}
	if err := b.Put(k, signed); err != nil {
		return false, fmt.Errorf("store share: %w", err)
	}
	if n := b.Stats().KeyN; n > maxSharesPerRoom {
		c := b.Cursor()
		for ck, _ := c.First(); ck != nil && n > maxSharesPerRoom; ck, _ = c.First() {
			if err := c.Delete(); err != nil {
				return false, fmt.Errorf("trim shares: %w", err)
			}
			n--
		}
	}
	return true, nil
}

// sharesOf returns topic's bucket of shares, or nil.
func sharesOf(tx *bolt.Tx, topic string) *bolt.Bucket {
	root := tx.Bucket(bucketShares)
	if root == nil {
		return nil
	}
	return root.Bucket([]byte(topic))
}

// hasShare reports whether topic's shares hold it.
func hasShare(tx *bolt.Tx, topic string, it item) bool {
	b := sharesOf(tx, topic)
	return b != nil && b.Get(historyKey(it)) != nil
}

// shareItems returns the items of topic's shares sent at or after
// sinceMs, at most limit, the newest ones when there are more.
func shareItems(db *bolt.DB, topic string, sinceMs uint64, limit int) ([]item, error) {
	var out []item
	err := db.View(func(tx *bolt.Tx) error {
		b := sharesOf(tx, topic)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Last(); k != nil && len(out) < limit; k, _ = c.Prev() {
			it, ok := itemFromKey(k)
			if !ok || it.ts < sinceMs {
				break
			}
			out = append(out, it)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read share items: %w", err)
	}
	return out, nil
}

// shareSigned returns the signed bytes of the given items of topic.
func shareSigned(db *bolt.DB, topic string, its []item) ([][]byte, error) {
	out := make([][]byte, 0, len(its))
	err := db.View(func(tx *bolt.Tx) error {
		b := sharesOf(tx, topic)
		if b == nil {
			return nil
		}
		for _, it := range its {
			if v := b.Get(historyKey(it)); v != nil {
				out = append(out, append([]byte(nil), v...))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read shares: %w", err)
	}
	return out, nil
}
