package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// filled makes a store in a new dir with two buckets of records over
// several pages, closes it and returns the dir.
func filled(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	err = s.DB().Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"dm/inbox", "rooms/history"} {
			b, err := tx.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return err
			}
			for i := range 300 {
				if err := b.Put(fmt.Appendf(nil, "key-%04d", i), fmt.Appendf(nil, "record %04d %s", i, strings.Repeat("x", 100))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Free some pages, so the freelist is not empty.
	err = s.DB().Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("dm/inbox"))
		for i := range 100 {
			if err := b.Delete(fmt.Appendf(nil, "key-%04d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A second open, so the backup exists (the first open found it empty).
	s, err = Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// meta returns the page size and the freelist page of the current meta
// page of the bbolt file b (layout: bbolt internal/common/meta.go).
func meta(t *testing.T, b []byte) (pageSize int, freelist uint64) {
	t.Helper()
	const hdr = 16 // page header
	best, bestTx := -1, uint64(0)
	for i := range 2 {
		off := i * 4096
		if off+hdr+80 > len(b) {
			break
		}
		m := b[off+hdr:]
		if binary.LittleEndian.Uint32(m[0:]) != 0xED0CDAED {
			continue
		}
		if tx := binary.LittleEndian.Uint64(m[48:]); best < 0 || tx > bestTx {
			best, bestTx = i, tx
			pageSize = int(binary.LittleEndian.Uint32(m[8:]))
			freelist = binary.LittleEndian.Uint64(m[32:])
		}
	}
	if best < 0 {
		t.Fatal("no meta page")
	}
	return pageSize, freelist
}

func garble(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
}

// TestDamagedStore: every kind of damage ends in ErrCorrupt with one line
// that names the file and says what to do, or (an emptied store) in an
// empty store reported as lost data; never a panic.
func TestDamagedStore(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, b []byte) []byte
		// lost: Open succeeds with an empty store and LostData; ok: Open
		// succeeds with the data; otherwise ErrCorrupt.
		lost, ok bool
	}{
		{name: "truncated to 0", damage: func(_ *testing.T, _ string, b []byte) []byte { return b[:0] }, lost: true},
		{name: "deleted", damage: func(_ *testing.T, _ string, _ []byte) []byte { return nil }, lost: true},
		{name: "truncated to half", damage: func(_ *testing.T, _ string, b []byte) []byte { return b[:len(b)/2] }},
		{name: "truncated to one page", damage: func(_ *testing.T, _ string, b []byte) []byte { return b[:4096] }},
		{name: "zeroed", damage: func(_ *testing.T, _ string, b []byte) []byte { return make([]byte, len(b)) }},
		{name: "header garbled", damage: func(_ *testing.T, _ string, b []byte) []byte { garble(b[:8192]); return b }},
		{name: "freelist garbled", damage: func(t *testing.T, _ string, b []byte) []byte {
			ps, fl := meta(t, b)
			garble(b[int(fl)*ps : int(fl+1)*ps])
			return b
		}},
		{name: "data pages garbled", damage: func(t *testing.T, _ string, b []byte) []byte {
			ps, _ := meta(t, b)
			garble(b[2*ps : len(b)-ps])
			return b
		}},
		{name: "one data page garbled", damage: func(t *testing.T, _ string, b []byte) []byte {
			ps, fl := meta(t, b)
			pg := 3
			if fl == 3 {
				pg = 4
			}
			garble(b[pg*ps : (pg+1)*ps])
			return b
		}},
		{name: "one record garbled", damage: func(t *testing.T, _ string, b []byte) []byte {
			i := bytes.Index(b, []byte("record 0150"))
			if i < 0 {
				t.Fatal("record not found")
			}
			copy(b[i:], "\xff\x00garbage\x01")
			return b
		}, ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filled(t)
			path := filepath.Join(dir, FileName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if b = tc.damage(t, path, b); b == nil {
				err = os.Remove(path)
			} else {
				err = os.WriteFile(path, b, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, time.Second)
			switch {
			case tc.lost || tc.ok:
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				if got := s.Info().LostData; got != tc.lost {
					t.Fatalf("LostData %v, want %v (%+v)", got, tc.lost, s.Info())
				}
				if tc.lost {
					// The backup is kept aside and survives the next runs.
					kept := s.Info().Backup
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					filledAgain(t, dir)
					if _, err := os.Stat(kept); err != nil || !strings.HasPrefix(filepath.Base(kept), BackupName+".") {
						t.Fatalf("backup %q not kept: %v", kept, err)
					}
				}
			default:
				if !errors.Is(err, ErrCorrupt) {
					if s != nil {
						s.Close()
					}
					t.Fatalf("Open: %v, want ErrCorrupt", err)
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") || !strings.Contains(msg, path) || !strings.Contains(msg, "move it aside") || !strings.Contains(msg, BackupName) {
					t.Fatalf("error is not one line naming the file, the fix and the backup: %q", msg)
				}
				t.Log(msg)
			}
		})
	}
}

// TestBackupIsTheLastGoodStore: the backup opens and holds the data.
func TestBackupIsTheLastGoodStore(t *testing.T) {
	dir := filled(t)
	b, err := os.ReadFile(filepath.Join(dir, BackupName))
	if err != nil {
		t.Fatal(err)
	}
	restored := t.TempDir()
	if err := os.WriteFile(filepath.Join(restored, FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(restored, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var n int
	_ = s.DB().View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte("rooms/history")).Stats().KeyN
		return nil
	})
	if n != 300 || s.Info().Empty {
		t.Fatalf("backup holds %d records, want 300", n)
	}
}

// filledAgain writes a bucket to the store in dir and opens it once more,
// as the runs after a loss do.
func filledAgain(t *testing.T, dir string) {
	t.Helper()
	for range 2 {
		s, err := Open(dir, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		err = s.DB().Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists([]byte("dm/inbox"))
			return err
		})
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackupOnlyWhenChanged: the backup is a copy of the whole store, so
// a start copies only when the store was written since the backup was
// made; a store written since is backed up again, with the new data.
func TestBackupOnlyWhenChanged(t *testing.T) {
	dir := filled(t)
	path, bak := filepath.Join(dir, FileName), filepath.Join(dir, BackupName)
	hourAgo := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, hourAgo.Add(-time.Hour), hourAgo.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(bak, hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}
	reopen := func(write bool) Info {
		t.Helper()
		s, err := Open(dir, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		info := s.Info()
		if write {
			err = s.DB().Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("later"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
		}
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	// Unchanged since the backup: not copied again.
	info := reopen(true) // writes after the open: the next one copies
	if fi, err := os.Stat(bak); err != nil || !fi.ModTime().Equal(hourAgo) || info.Backup != bak || !info.BackupTime.Equal(hourAgo) {
		t.Fatalf("backup rewritten although the store was not written since (%v, %+v)", err, info)
	}
	// Written since (the run above): copied, with the new bucket.
	info = reopen(false)
	fi, err := os.Stat(bak)
	if err != nil || !fi.ModTime().After(hourAgo) || info.Backup != bak || info.BackupErr != nil {
		t.Fatalf("backup not renewed after a write (%v, %+v)", err, info)
	}
	b, err := os.ReadFile(bak)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("later")) {
		t.Fatal("the renewed backup lacks the new bucket")
	}
	// And not again when nothing was written in between.
	before := fi.ModTime()
	reopen(false)
	if fi, err := os.Stat(bak); err != nil || !fi.ModTime().Equal(before) {
		t.Fatalf("backup rewritten by a start that wrote nothing (%v)", err)
	}
}
