package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedKeyNeverANewIdentity: the key file of a used data dir,
// damaged (seed or public key bytes flipped, truncated to 0 or half),
// stops parley with one line naming it, and the file is left as it was:
// never a start that cannot sign, under another peer ID, or with a new
// key. A key file deleted next to a used store starts a new identity, but
// loudly: an error event names the old and the new peer ID.
func TestDamagedKeyNeverANewIdentity(t *testing.T) {
	// used returns a data dir run twice, and its peer ID.
	used := func(t *testing.T) (dir, id string) {
		dir = privateDir(t)
		for range 2 {
			p, ready := (&fixedPeer{name: "alice", dir: dir, port: 0}).start(t)
			id = ready.Str("peer_id")
			p.Send("/quit")
			if err := p.Exited(10 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		return dir, id
	}
	flip := func(from, to int) func([]byte) []byte {
		return func(b []byte) []byte {
			for i := from; i < to && i < len(b); i++ {
				b[i] ^= 0xff
			}
			return b
		}
	}
	cases := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"seed flipped", flip(8, 24)},
		{"public key flipped", flip(40, 56)},
		{"truncated to 0", func(b []byte) []byte { return b[:0] }},
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := used(t)
			key := filepath.Join(dir, "identity.key")
			b, err := os.ReadFile(key)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tc.damage(bytes.Clone(b))
			if err := os.WriteFile(key, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runOnce(t, "--data-dir", dir, "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0")
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], key) || !strings.Contains(lines[0], "corrupt") ||
				strings.Contains(stderr, "goroutine ") {
				t.Fatalf("exit %d, stderr %q: want one line naming %s as corrupt", code, stderr, key)
			}
			if after, err := os.ReadFile(key); err != nil || !bytes.Equal(after, damaged) {
				t.Fatalf("the key file was changed (%v): a new identity?", err)
			}
		})
	}
	t.Run("deleted", func(t *testing.T) {
		dir, oldID := used(t)
		if err := os.Remove(filepath.Join(dir, "identity.key")); err != nil {
			t.Fatal(err)
		}
		p, ready := (&fixedPeer{name: "alice", dir: dir, port: 0}).start(t)
		newID := ready.Str("peer_id")
		if newID == "" || newID == oldID {
			t.Fatalf("peer ID %q after the key was deleted, before %q", newID, oldID)
		}
		e := p.Find(5*time.Second, "error", nil)
		msg, _ := e["error"].(string)
		if !strings.Contains(msg, "identity changed") || !strings.Contains(msg, oldID) || !strings.Contains(msg, newID) {
			t.Fatalf("error event %q: want the change of identity named, old and new", msg)
		}
		// Said once: the next start, under the new key, is quiet.
		p.Send("/quit")
		if err := p.Exited(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		p, _ = (&fixedPeer{name: "alice", dir: dir, port: 0}).start(t)
		p.Send("/id")
		p.Wait(5*time.Second, "info", nil)
		for _, e := range p.Seen() {
			if e.Type() == "error" {
				t.Fatalf("warned again: %v", e)
			}
		}
	})
}
