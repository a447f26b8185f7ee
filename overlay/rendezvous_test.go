package overlay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// newServe starts a host like `parley serve` on loopback (ServeRole: DHT
// server, relay and AutoNAT services, forced public).
func newServe(t testing.TB) *Host {
	t.Helper()
	var cfg Config
	cfg.ServeRole()
	return newHost(t, cfg)
}

// fastRendezvous makes searches quick for tests.
var fastRendezvous = Rendezvous{FindMin: 200 * time.Millisecond, FindMax: time.Second}

func TestRendezvousThroughDHT(t *testing.T) {
	serve := newServe(t)
	boot := []peer.AddrInfo{serve.AddrInfo()}
	a := newHost(t, Config{Bootstrap: boot, Rendezvous: fastRendezvous})
	b := newHost(t, Config{Bootstrap: boot, Rendezvous: fastRendezvous})
	if a.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatal("a and b connected before the rendezvous")
	}
	for _, h := range []*Host{a, b} {
		if err := h.Join("room/test"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "a and b connected by rendezvous", func() bool {
		return a.Network().Connectedness(b.ID()) == network.Connected
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found, err := a.FindPeers(ctx, "room/test", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != b.ID() {
		t.Fatalf("FindPeers = %v, want only b %s", found, b.ID())
	}
	other, err := a.FindPeers(ctx, "room/other", 0)
	if err != nil || len(other) != 0 {
		t.Fatalf("FindPeers(other) = %v, %v; want none", other, err)
	}
	if got := a.Namespaces(); len(got) != 1 || got[0] != "room/test" {
		t.Fatalf("Namespaces = %v", got)
	}
	a.Leave("room/test")
	if got := a.Namespaces(); len(got) != 0 {
		t.Fatalf("Namespaces after Leave = %v", got)
	}
}

func TestNamespaceErrors(t *testing.T) {
	h := newHost(t, Config{})
	off := newHost(t, Config{DHTMode: DHTOff})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		err  error
		f    func() error
	}{
		{"empty", ErrBadNamespace, func() error { return h.Join("") }},
		{"too long", ErrBadNamespace, func() error { return h.Join(strings.Repeat("x", MaxNamespaceLen+1)) }},
		{"find empty", ErrBadNamespace, func() error { _, err := h.FindPeers(ctx, "", 0); return err }},
		{"no dht join", ErrNoDHT, func() error { return off.Join("room") }},
		{"no dht advertise", ErrNoDHT, func() error { _, err := off.Advertise(ctx, "room"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f(); !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
	if off.Discovery() != nil {
		t.Fatal("Discovery without a DHT is not nil")
	}
	if h.Discovery() == nil {
		t.Fatal("Discovery with a DHT is nil")
	}
}
