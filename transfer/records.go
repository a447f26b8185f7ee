package transfer

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// keyedRecord is a JSON record kept in a bucket under its own ID, with
// the Unix ms it was added (announced shares, held shares).
type keyedRecord interface {
	key() string
	addedMs() int64
}

func (r remoteRecord) key() string    { return r.ID }
func (r remoteRecord) addedMs() int64 { return r.Added }
func (r heldRecord) key() string      { return r.ID }
func (r heldRecord) addedMs() int64   { return r.Added }

// readRecords decodes the records of bucket, oldest first. The keys of
// records that do not decode, or are not stored under their own ID (a
// store written by something else), are returned in bad for deleteKeys.
func readRecords[T keyedRecord](db *bolt.DB, bucket []byte) (recs []T, bad [][]byte, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var r T
			if json.Unmarshal(v, &r) != nil || r.key() != string(k) {
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	slices.SortFunc(recs, func(a, b T) int { return cmp.Compare(a.addedMs(), b.addedMs()) })
	return recs, bad, nil
}

// deleteKeys deletes keys from bucket in one transaction.
func deleteKeys(db *bolt.DB, bucket []byte, keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		for _, k := range keys {
			if err := tx.Bucket(bucket).Delete(k); err != nil {
				return fmt.Errorf("delete %s %s: %w", bucket, k, err)
			}
		}
		return nil
	})
}
