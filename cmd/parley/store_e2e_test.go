package main_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/internal/proctest"
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
		{"truncated to one page", func(t *testing.T, db string) {
			if err := os.Truncate(db, int64(os.Getpagesize())); err != nil {
				t.Fatal(err)
			}
		}},
		{"freelist garbled", func(t *testing.T, db string) {
			b, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			ps, fl := boltMeta(t, b)
			for i := fl * ps; i < (fl+1)*ps && i < len(b); i++ {
				b[i] ^= 0xa5
			}
			if err := os.WriteFile(db, b, 0o600); err != nil {
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

// boltMeta returns the page size and the freelist page of the current
// meta page of the bbolt file b (layout: bbolt internal/common/meta.go:
// a 16-byte page header, then magic, version, page size, flags, root
// bucket, freelist page, high-water mark, txid).
func boltMeta(t *testing.T, b []byte) (pageSize, freelist int) {
	t.Helper()
	const hdr = 16
	var bestTx uint64
	found := false
	for _, off := range []int{0, 4096, os.Getpagesize()} {
		if off+hdr+64 > len(b) {
			continue
		}
		m := b[off+hdr:]
		if binary.LittleEndian.Uint32(m[0:]) != 0xED0CDAED {
			continue
		}
		if tx := binary.LittleEndian.Uint64(m[48:]); !found || tx > bestTx {
			found, bestTx = true, tx
			pageSize = int(binary.LittleEndian.Uint32(m[8:]))
			freelist = int(binary.LittleEndian.Uint64(m[32:])) // #nosec G115 -- a test reading its own file
		}
	}
	if !found {
		t.Fatal("no bbolt meta page")
	}
	return pageSize, freelist
}

// TestGarbledRecordIsSkipped: one room line's record garbled on disk
// (bbolt opens the file: only the record's bytes are wrong) costs that
// line only: parley starts and /history answers with the other lines.
func TestGarbledRecordIsSkipped(t *testing.T) {
	dir := privateDir(t)
	peer := &fixedPeer{name: "alice", dir: dir, port: 0}
	p, _ := peer.start(t)
	p.Send("/join lobby")
	p.Find(20*time.Second, "joined", func(e proctest.Event) bool { return e.Str("room") == "lobby" })
	texts := []string{"first line kept", "MIDDLE-LINE-GARBLED-ON-DISK", "last line kept"}
	for _, text := range texts {
		p.Send(text)
	}
	for deadline := time.Now().Add(10 * time.Second); len(historyTexts(t, p, "lobby")) < len(texts); {
		if time.Now().After(deadline) {
			t.Fatal("the lines are not in the history")
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Send("/quit")
	if err := p.Exited(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "parley.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// The text is in the record twice (the stored field and the signed
	// message); garble the bytes before the first copy, the field's tag
	// and length, so the record no longer decodes.
	i := bytes.Index(b, []byte(texts[1]))
	if i < 4 {
		t.Fatal("record not found in the store")
	}
	copy(b[i-4:], []byte{0xff, 0xff, 0xff, 0xff})
	if err := os.WriteFile(db, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ = peer.start(t)
	p.Find(20*time.Second, "joined", func(e proctest.Event) bool { return e.Str("room") == "lobby" })
	if got := historyTexts(t, p, "lobby"); len(got) != 2 || got[0] != texts[0] || got[1] != texts[2] {
		t.Fatalf("history %q, want the two lines that were not garbled", got)
	}
}

// historyTexts asks p for the history of room and returns its texts.
func historyTexts(t *testing.T, p *proctest.Peer, room string) []string {
	t.Helper()
	p.Send("/history " + room + " 100")
	reply := p.Wait(20*time.Second, "info", func(e proctest.Event) bool { _, ok := e["data"].([]any); return ok })
	var got []string
	for _, m := range reply["data"].([]any) {
		if m, ok := m.(map[string]any); ok {
			if text, _ := m["text"].(string); text != "" {
				got = append(got, text)
			}
		}
	}
	return got
}
