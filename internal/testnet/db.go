package testnet

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/store"
)

// dbLockWait bounds the wait for another handle's file lock, so a test
// that forgot to close a database fails instead of hanging.
const dbLockWait = 5 * time.Second

// OpenDB opens (creating when missing) the bbolt database at path and
// closes it when the test ends. Closing it earlier, to reopen the same
// file as a restarted node would, is fine: bbolt's Close is idempotent.
// A benchmark that measures the protocol without the disk may set
// db.NoSync before its first transaction.
func OpenDB(tb testing.TB, path string) *bolt.DB {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: dbLockWait})
	if err != nil {
		tb.Fatalf("open db: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close db %s: %v", path, err)
		}
	})
	return db
}

// TempDB opens a new, empty database named like the node's
// (store.FileName) in a fresh tb.TempDir().
func TempDB(tb testing.TB) *bolt.DB {
	tb.Helper()
	return OpenDB(tb, filepath.Join(tb.TempDir(), store.FileName))
}
