package trust

import (
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// storedPeers counts the peer records in the database.
func storedPeers(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(bucketPeers)).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWriteBehind: with WriteBehind, a crowd of new peers is written in
// one transaction once the oldest change is due (or at Flush), pins and
// conflicts work from memory at once, and Forget of an unwritten peer
// leaves nothing behind.
func TestWriteBehind(t *testing.T) {
	s, _ := openStore(t)
	clock := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return clock }
	s.WriteBehind(time.Second)

	first := newID(t)
	observe(t, s, first, "alice")
	for i := range 50 {
		observe(t, s, newID(t), fmt.Sprint("sybil", i))
	}
	if n := storedPeers(t, s); n != 0 {
		t.Fatalf("%d records written before the write-behind was due", n)
	}
	impostor := newID(t)
	c := observe(t, s, impostor, "alice")
	if c == nil || c.Pinned != first {
		t.Fatalf("conflict = %+v, want alice pinned to the first key", c)
	}
	clock = clock.Add(time.Second)
	observe(t, s, newID(t), "late")
	if n := storedPeers(t, s); n != 53 {
		t.Fatalf("%d records written when due, want 53", n)
	}

	gone := newID(t)
	observe(t, s, gone, "gone")
	if _, err := s.Forget(gone); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := storedPeers(t, s); n != 53 {
		t.Fatalf("%d records after Forget and Flush, want 53", n)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucketPins)).Get([]byte("gone")) != nil {
			t.Error("pin of a forgotten peer written")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
