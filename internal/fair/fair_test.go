package fair

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"
)

func TestSubnet(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"/ip4/203.0.113.7/tcp/4001", "203.0.113.0/24"},
		{"/ip4/203.0.113.250/udp/4001/quic-v1", "203.0.113.0/24"},
		{"/ip4/203.0.114.7/tcp/4001", "203.0.114.0/24"},
		{"/ip4/127.0.0.1/tcp/4001", "127.0.0.0/24"},
		{"/ip6/2001:db8:1:2::7/tcp/4001", "2001:db8:1::/48"},
		{"/ip6/2001:db8:1:ffff::1/udp/1/quic-v1", "2001:db8:1::/48"},
		{"/ip6/::1/tcp/4001", "::/48"},
		{"/ip4/198.51.100.9/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/p2p-circuit", "198.51.100.0/24"},
		{"/dns4/example.com/tcp/4001", ""},
	}
	for _, tt := range tests {
		a, err := ma.NewMultiaddr(tt.addr)
		if err != nil {
			t.Fatalf("%s: %v", tt.addr, err)
		}
		if got := Subnet(a); got != tt.want {
			t.Errorf("Subnet(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
	if got := Subnet(nil); got != "" {
		t.Errorf("Subnet(nil) = %q", got)
	}
}

func TestSharesStrangerFits(t *testing.T) {
	s := Shares{Total: 256, Reserved: 64, PerSubnet: 32, Newcomers: 48}
	tests := []struct {
		held     Held
		newcomer bool
		want     bool
	}{
		{Held{}, true, true},
		{Held{Strangers: 191, Subnet: 0, Newcomers: 0}, false, true},
		{Held{Strangers: 192}, false, false},
		{Held{Strangers: 40, Subnet: 32}, false, false},
		{Held{Strangers: 48, Newcomers: 48}, true, false},
		{Held{Strangers: 48, Newcomers: 48}, false, true},
	}
	for _, tt := range tests {
		if got := s.StrangerFits(tt.held, tt.newcomer); got != tt.want {
			t.Errorf("StrangerFits(%+v, newcomer %v) = %v, want %v", tt.held, tt.newcomer, got, tt.want)
		}
	}
}

// clock is a settable time source for Ages.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestAgesPersist: an identity first seen long ago is no newcomer, also
// after a restart; one seen just now is.
func TestAgesPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ages.db")
	db := openDB(t, path)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	a, err := NewAges(db, AgesConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a.now = c.now
	if !a.Newcomer("old") {
		t.Fatal("an identity seen for the first time is no newcomer")
	}
	c.t = c.t.Add(2 * time.Hour)
	if a.Newcomer("old") {
		t.Fatal("an identity first seen 2 h ago is a newcomer")
	}
	if !a.Newcomer("young") {
		t.Fatal("a new identity is no newcomer")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, path)
	t.Cleanup(func() { _ = db.Close() })
	b, err := NewAges(db, AgesConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	b.now = c.now
	if got := b.Age("old"); got != 2*time.Hour {
		t.Fatalf("age after restart = %v, want 2h", got)
	}
	if !b.Newcomer("young") {
		t.Fatal("young is no newcomer after a restart")
	}
}

// TestAgesFullForgetsNewcomersFirst: a crowd of fresh identities that
// fills the table takes no place from identities seen before.
func TestAgesFullForgetsNewcomersFirst(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	a, err := NewAges(nil, AgesConfig{Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	a.now = c.now
	for i := range 5 {
		a.Seen(peer.ID(fmt.Sprint("old", i)))
	}
	c.t = c.t.Add(2 * time.Hour)
	for i := range 100 {
		a.Seen(peer.ID(fmt.Sprint("sybil", i)))
	}
	if n := a.Len(); n > 10 {
		t.Fatalf("%d identities remembered, max 10", n)
	}
	for i := range 5 {
		if a.Newcomer(peer.ID(fmt.Sprint("old", i))) {
			t.Fatalf("old%d became a newcomer", i)
		}
	}
	c.t = c.t.Add(2 * time.Hour)
	if !a.Newcomer("sybil0") {
		t.Fatal("sybil0, forgotten when the table was full, is not a newcomer again")
	}
}
