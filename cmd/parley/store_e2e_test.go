package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestDamagedStoreIsOneLine: a store damaged on disk stops parley with
// one line naming the file, what is wrong and what to do; never a panic.
// A store emptied (truncated to 0 bytes or deleted) starts, but with an
// error event that says the data is gone and where the backup is.
func TestDamagedStoreIsOneLine(t *testing.T) {
	// used returns a data dir run twice (so a backup of the store exists).
	used := func(t *testing.T) (dir, db string) {
		dir = privateDir(t)
		for range 2 {
			p, _ := (&fixedPeer{name: "alice", dir: dir, port: 0}).start(t)
			p.Send("/quit")
			if err := p.Exited(10 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		return dir, filepath.Join(dir, "parley.db")
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, db string)
	}{
		{"zeroed", func(t *testing.T, db string) {
			b, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(db, make([]byte, len(b)), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated to half", func(t *testing.T, db string) {
			// Half of the pages in use: bbolt grows its file ahead of
			// use, so half the file can be free pages only, which is no
			// damage at all.
			if err := os.Truncate(db, usedBytes(t, db)/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"header garbled", func(t *testing.T, db string) {
			b, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			for i := 16; i < 8192 && i < len(b); i += 7 {
				b[i] ^= 0x5a
			}
			if err := os.WriteFile(db, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, db := used(t)
			tc.damage(t, db)
			code, _, stderr := runOnce(t, "--data-dir", dir, "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0")
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], db) || !strings.Contains(lines[0], "damaged") ||
				!strings.Contains(lines[0], "move it aside") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("exit %d, stderr %q: want one line naming %s, the damage and the fix", code, stderr, db)
			}
		})
	}
	for _, name := range []string{"truncated to 0", "deleted"} {
		t.Run(name, func(t *testing.T) {
			dir, db := used(t)
			var err error
			if name == "deleted" {
				err = os.Remove(db)
			} else {
				err = os.Truncate(db, 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			p, _ := (&fixedPeer{name: "alice", dir: dir, port: 0}).start(t)
			e := p.Find(5*time.Second, "error", nil)
			msg, _ := e["error"].(string)
			if !strings.Contains(msg, db) || !strings.Contains(msg, "parley.db.bak.") {
				t.Fatalf("error event %q: want the store and its kept backup named", msg)
			}
		})
	}
}

// usedBytes is how much of a bbolt file its pages use (the high-water
// mark), read with bbolt itself.
func usedBytes(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	err = db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return size
}
