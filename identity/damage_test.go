package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamagedKeyIsRefused: a key file of normal length with flipped
// bytes is refused at load with one line naming it, never accepted with
// a key that cannot sign (seed flipped) or under another peer ID (public
// key flipped). An untouched file still loads.
func TestDamagedKeyIsRefused(t *testing.T) {
	cases := []struct {
		name     string
		from, to int // bytes flipped, [from, to)
		ok       bool
	}{
		{name: "untouched", ok: true},
		{name: "seed flipped", from: 8, to: 24},
		{name: "one seed byte flipped", from: 20, to: 21},
		{name: "public key flipped", from: 40, to: 56},
		{name: "last byte flipped", from: 67, to: 68},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			orig, _, err := LoadOrCreate(dir)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, KeyFileName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != 68 {
				t.Fatalf("key file of %d bytes, want 68", len(b))
			}
			for i := tc.from; i < tc.to; i++ {
				b[i] ^= 0xff
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			id, err := Load(path)
			if tc.ok {
				if err != nil || id.ID != orig.ID {
					t.Fatalf("untouched key: %v, id %v want %v", err, id, orig.ID)
				}
				return
			}
			if !errors.Is(err, ErrKeyCorrupt) {
				t.Fatalf("Load: id %v, err %v; want ErrKeyCorrupt", id, err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, path) || !strings.Contains(msg, "move it away") {
				t.Fatalf("error is not one line naming the file and the fix: %q", msg)
			}
		})
	}
}
