package mailbox

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/mailbox/pb"
)

// sharesConfig is a small holder whose Known and Newcomer read the
// synthetic peer IDs of the tests: "known…" is known, "new…" a newcomer.
func sharesConfig(c *HolderConfig) {
	c.Total = Quota{Count: 100}
	c.Reserved = Quota{Count: 20}
	c.PerSubnet = Quota{Count: 30}
	c.Newcomers = Quota{Count: 25}
	c.Depositor = Quota{Count: 10}
	c.Known = func(p peer.ID) bool { return strings.HasPrefix(string(p), "known") }
	c.Newcomer = func(p peer.ID) bool { return strings.HasPrefix(string(p), "new") }
}

// TestHolderSharesBySubnetAndAge: a crowd of identities from one subnet,
// and a crowd of fresh identities from many, each stop at their share;
// a stranger from another subnet and known depositors still get theirs,
// also after a restart (the shares are counted again from the store).
func TestHolderSharesBySubnetAndAge(t *testing.T) {
	db := testnet.TempDB(t)
	h := testnet.NewHost(t)
	cfg := HolderConfig{Host: h, DB: db}
	sharesConfig(&cfg)
	hs, err := NewHolder(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hs.Close() })
	now := time.Now()
	seq := 0
	// crowd has n identities named prefix-i deposit 10 each (subnet(i))
	// and returns how many were stored.
	crowd := func(hs *Holder, prefix string, n int, subnet func(i int) string) int {
		stored := 0
		for i := range n {
			for range 10 {
				seq++
				box := bytes.Repeat([]byte{byte(seq % 7)}, MailboxIDLen)
				d := &pb.Deposit{Mailbox: box, Sealed: []byte(fmt.Sprint(seq))}
				if hs.deposit(peer.ID(fmt.Sprintf("%s-%d", prefix, i)), subnet(i), d, now) == pb.Status_STATUS_STORED {
					stored++
				}
			}
		}
		return stored
	}
	one := func(s string) func(int) string { return func(int) string { return s } }
	each := func(i int) string { return fmt.Sprintf("198.51.%d.0/24", i) }
	steps := []struct {
		name         string
		prefix       string
		n            int
		subnet       func(int) string
		want         int
		afterRestart bool
	}{
		{"20 older strangers from subnet A stop at its share", "old-a", 20, one("192.0.2.0/24"), 30, false},
		{"20 newcomers from 20 subnets stop at the newcomers' pool", "new-b", 20, each, 25, false},
		{"an older stranger from subnet C gets its own quota", "old-c", 1, one("203.0.113.0/24"), 10, false},
		{"a known depositor from subnet A gets its own quota", "known-a", 1, one("192.0.2.0/24"), 10, false},
		{"after a restart subnet A is still full", "old-a2", 3, one("192.0.2.0/24"), 0, true},
		{"after a restart newcomers are still full", "new-d", 3, each, 0, true},
		{"older strangers from other subnets take the rest of the strangers' share", "old-e", 20, each, 15, true},
		{"the strangers' share is full: another subnet is refused", "old-f", 1, one("203.0.113.0/24"), 0, true},
		{"known depositors take the rest of the total", "known-b", 3, one("192.0.2.0/24"), 10, true},
	}
	restarted := false
	for _, st := range steps {
		if st.afterRestart && !restarted {
			if err := hs.Close(); err != nil {
				t.Fatal(err)
			}
			if hs, err = NewHolder(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = hs.Close() })
			restarted = true
		}
		if got := crowd(hs, st.prefix, st.n, st.subnet); got != st.want {
			t.Fatalf("%s: stored %d, want %d", st.name, got, st.want)
		}
	}
	if n, _ := hs.Held(); n != 100 {
		t.Fatalf("holder keeps %d deposits, want the total 100", n)
	}
	if c := hs.Counters(); c.SharesFull == 0 || c.SharesFull > c.Full {
		t.Fatalf("counters %+v: want strangers' refusals counted in Full", c)
	}
}

// TestHolderSharesDefaults: the default shares, no reserve without Known,
// shares at most Total.
func TestHolderSharesDefaults(t *testing.T) {
	tests := []struct {
		name                     string
		cfg                      HolderConfig
		reserved, perSubnet, new Quota
	}{
		{"defaults, no Known", HolderConfig{}, Quota{}, Quota{25000, 128 << 20}, Quota{37500, 192 << 20}},
		{"defaults with Known", HolderConfig{Known: func(peer.ID) bool { return false }},
			Quota{50000, 256 << 20}, Quota{25000, 128 << 20}, Quota{37500, 192 << 20}},
		{"small Total", HolderConfig{Total: Quota{Count: 6}, Known: func(peer.ID) bool { return false }},
			Quota{6, 256 << 20}, Quota{6, 128 << 20}, Quota{6, 192 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.Host, c.DB = testnet.NewHost(t), testnet.TempDB(t)
			if err := c.setDefaults(); err != nil {
				t.Fatal(err)
			}
			if c.Reserved != tc.reserved || c.PerSubnet != tc.perSubnet || c.Newcomers != tc.new {
				t.Fatalf("shares %v %v %v; want %v %v %v", c.Reserved, c.PerSubnet, c.Newcomers, tc.reserved, tc.perSubnet, tc.new)
			}
		})
	}
}

// TestHolderSharesOnLoopback: through the real protocol, a crowd over
// 127.0.0.1 stops at its subnet's share, while a stranger over ::1 (another
// subnet) and a known depositor over 127.0.0.1 still deposit.
func TestHolderSharesOnLoopback(t *testing.T) {
	friend := testnet.NewHost(t)
	hh := testnet.NewHost(t, libp2p.ListenAddrStrings("/ip6/::1/tcp/0"))
	hs, err := NewHolder(context.Background(), HolderConfig{Host: hh, DB: testnet.TempDB(t),
		Total: Quota{Count: 40}, Reserved: Quota{Count: 8}, PerSubnet: Quota{Count: 8}, Depositor: Quota{Count: 4},
		Known: func(p peer.ID) bool { return p == friend.ID() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hs.Close() })
	// over dials the holder on its loopback address of one family only
	// (libp2p would try IPv6 first).
	over := func(s host.Host, v6 bool) {
		t.Helper()
		var addrs []ma.Multiaddr
		for _, a := range hh.Addrs() {
			if ip, err := manet.ToIP(a); err == nil && ip.IsLoopback() && (ip.To4() == nil) == v6 {
				addrs = append(addrs, a)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Connect(ctx, peer.AddrInfo{ID: hh.ID(), Addrs: addrs}); err != nil {
			t.Fatalf("connect over %v: %v", addrs, err)
		}
	}
	ctx := ctxT(t)
	box := bytes.Repeat([]byte{0xc}, MailboxIDLen)
	stored := func(c *Client, tag byte) int {
		sts, err := c.Deposit(ctx, hh.ID(), deposits(box, 4, 100, tag))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, st := range sts {
			if st == pb.Status_STATUS_STORED {
				n++
			}
		}
		return n
	}
	total := 0
	for i := range 4 {
		s := testnet.NewHost(t)
		over(s, false)
		total += stored(clientOf(s), byte(i))
	}
	if total != 8 {
		t.Fatalf("a crowd of 4 over 127.0.0.1 stored %d, want its subnet's share 8", total)
	}
	other := testnet.NewHost(t)
	over(other, true)
	if n := stored(clientOf(other), 10); n != 4 {
		t.Fatalf("a stranger over ::1 stored %d, want 4", n)
	}
	over(friend, false)
	if n := stored(clientOf(friend), 11); n != 4 {
		t.Fatalf("a known depositor over 127.0.0.1 stored %d, want 4", n)
	}
	if c := hs.Counters(); c.SharesFull != 8 {
		t.Fatalf("SharesFull %d, want the crowd's 8 refused", c.SharesFull)
	}
}
