package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	putTest(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var got string
	_ = s.DB().View(func(tx *bolt.Tx) error {
		got = string(tx.Bucket([]byte("test")).Get([]byte("k")))
		return nil
	})
	if got != "v" {
		t.Fatalf("got %q after reopen", got)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	_, err = Open(dir, 50*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: err = %v, want ErrLocked", err)
	}
}

// A data dir's first run backs up nothing at its start (the store is
// empty then), so Close does: a store deleted after that first run is
// still reported as lost data, with the copy kept.
func TestFirstRunBackedUpAtClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.Info().Backup != "" {
		t.Fatalf("a new store has a backup: %+v", s.Info())
	}
	putTest(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	info := s.Info()
	if !info.LostData || info.Backup == "" {
		t.Fatalf("store deleted after the first run: %+v, want LostData with the backup kept", info)
	}
	if _, err := os.Stat(info.Backup); err != nil {
		t.Fatalf("kept backup: %v", err)
	}
}

// putTest writes k=v into the bucket "test" of s.
func putTest(t *testing.T, s *Store) {
	t.Helper()
	err := s.DB().Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("test"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
}
