// Package store owns the node's embedded database: one bbolt file,
// parley.db, in the data directory. bbolt is a copy-on-write B+tree with a
// single writer; every update is a transaction that is fsynced before it
// commits, so a crash mid-write leaves the previous committed state.
//
// Each feature package keeps its data in its own top-level buckets, named
// after the package ("rooms/...", "dm/...", "transfer/..."), and is handed
// the *bbolt.DB from here. The file lock also keeps two Parley processes
// from sharing one data directory.
package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the data directory.
const FileName = "parley.db"

// ErrLocked is returned when another process holds the database open.
var ErrLocked = errors.New("data dir is in use by another parley process")

// Store is the node's open database.
type Store struct {
	db *bolt.DB
}

// Open opens (creating when missing) the database in dataDir. It waits at
// most lockWait for another process to release the file lock.
func Open(dataDir string, lockWait time.Duration) (*Store, error) {
	path := filepath.Join(dataDir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s is locked; stop the other process or use another --data-dir", ErrLocked, path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// DB returns the underlying database for feature packages.
func (s *Store) DB() *bolt.DB { return s.db }

// Close flushes and closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}
