package overlay

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/testnet"
)

// mDNS itself is only exercised inside network namespaces
// (internal/netns); here the found-peer handler is called directly, so no
// packet leaves the machine.
func TestLANPeerFoundConnects(t *testing.T) {
	a, b := newHost(t, Config{}), newHost(t, Config{})
	d := newLANDiscovery(a)
	d.HandlePeerFound(peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}) // ourselves: ignored
	d.HandlePeerFound(peer.AddrInfo{ID: b.ID()})                   // no address: ignored
	if a.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatal("connected without an address")
	}
	d.HandlePeerFound(b.AddrInfo())
	if a.Network().Connectedness(b.ID()) != network.Connected {
		t.Fatal("found peer not connected")
	}
	d.close()
	c := newHost(t, Config{})
	d.HandlePeerFound(c.AddrInfo()) // after close: ignored
	if a.Network().Connectedness(c.ID()) == network.Connected {
		t.Fatal("connected after close")
	}
}

func TestMDNSNeverOnLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		want  bool
	}{
		{[]string{"/ip4/127.0.0.1/tcp/0", "/ip6/::1/udp/0/quic-v1"}, false},
		{[]string{"/ip4/127.0.0.1/tcp/0", "/ip4/0.0.0.0/tcp/0"}, true},
		{[]string{"/ip4/10.1.0.2/tcp/0"}, true},
		{nil, false},
	} {
		if got := mdnsUsable(mustAddrs(tc.addrs...)); got != tc.want {
			t.Errorf("mdnsUsable(%v) = %v, want %v", tc.addrs, got, tc.want)
		}
	}
	// A host asked for mDNS on loopback starts none.
	h := newHost(t, Config{MDNS: true})
	if h.lan != nil {
		t.Fatal("mDNS started on a loopback-only host")
	}
}

func TestCloseWithEverythingOn(t *testing.T) {
	serve := newServe(t)
	db := testnet.TempDB(t)
	h := newHost(t, Config{
		Bootstrap:  []peer.AddrInfo{serve.AddrInfo()},
		Relays:     []peer.AddrInfo{serve.AddrInfo()},
		Namespaces: []string{"a", "b"},
		Store:      db,
		MDNS:       true,
	})
	waitFor(t, 10*time.Second, "bootstrap connected", func() bool {
		return h.Network().Connectedness(serve.ID()) == network.Connected
	})
	done := make(chan error, 1)
	go func() { done <- h.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close took more than 5 s")
	}
}
