package overlay

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
)

func TestRelayedConnection(t *testing.T) {
	relayHost := newServe(t)
	recA := newRecorder()
	// a holds a reservation on the relay; b reaches a only through it.
	a := newHost(t, Config{Relays: []peer.AddrInfo{relayHost.AddrInfo()}, Emitter: recA})
	recB := newRecorder()
	b := newHost(t, Config{Emitter: recB})

	recA.wait(t, 15*time.Second, "reachability with a relay", func(e events.Event) bool {
		r, ok := e.(events.Reachability)
		return ok && len(r.Relays) == 1 && r.Relays[0] == relayHost.ID() && len(r.RelayAddrs) > 0
	})
	info := a.Reachability()
	if len(info.RelayAddrs) == 0 {
		t.Fatalf("Reachability() = %+v, want relay addresses", info)
	}
	circuit, err := ma.NewMultiaddr(info.RelayAddrs[0])
	if err != nil {
		t.Fatal(err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(circuit)
	if err != nil {
		t.Fatal(err)
	}
	if ai.ID != a.ID() {
		t.Fatalf("relay address %s is not a's", circuit)
	}
	var inAddrs bool
	for _, x := range a.Addrs() {
		inAddrs = inAddrs || ClassifyAddr(x) == PathRelayed
	}
	if !inAddrs {
		t.Fatalf("a does not advertise its relay address: %v", a.Addrs())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Connect(ctx, *ai); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	if p, addr := b.Path(a.ID()); p != PathRelayed {
		t.Fatalf("b's path to a = %s (%s), want relayed", p, addr)
	}
	// Serve relays are unlimited: ordinary protocols (here ping) work on
	// the relayed connection.
	res := <-ping.Ping(ctx, b.Host, a.ID())
	if res.Error != nil {
		t.Fatalf("ping over the relay: %v", res.Error)
	}
	for _, c := range b.Network().ConnsToPeer(a.ID()) {
		if c.Stat().Limited {
			t.Fatalf("relayed connection is limited: %s", c.RemoteMultiaddr())
		}
	}
	recB.wait(t, 5*time.Second, "peer_connected through the relay", func(e events.Event) bool {
		pc, ok := e.(events.PeerConnected)
		return ok && pc.PeerID == a.ID() && ClassifyAddr(ma.StringCast(pc.Addr)) == PathRelayed
	})

	// When a direct connection opens too, the path is upgraded and
	// reported.
	if err := b.Connect(network.WithForceDirectDial(ctx, "test"), peer.AddrInfo{ID: a.ID(), Addrs: a.Network().ListenAddresses()}); err != nil {
		t.Fatalf("direct connect: %v", err)
	}
	recB.wait(t, 5*time.Second, "peer_path lan", func(e events.Event) bool {
		pp, ok := e.(events.PeerPath)
		return ok && pp.PeerID == a.ID() && pp.Path == string(PathLAN) && pp.Previous == string(PathRelayed)
	})

	// Losing the relay drops the reservation and its addresses.
	if err := relayHost.Close(); err != nil {
		t.Fatal(err)
	}
	recA.wait(t, 10*time.Second, "reachability without relay", func(e events.Event) bool {
		r, ok := e.(events.Reachability)
		return ok && len(r.Relays) == 0 && len(r.RelayAddrs) == 0
	})
}

func TestPublicNodeHoldsNoReservation(t *testing.T) {
	relayHost := newServe(t)
	rec := newRecorder()
	a := newHost(t, Config{Relays: []peer.AddrInfo{relayHost.AddrInfo()}, Emitter: rec, ForceReachability: network.ReachabilityPublic})
	rec.wait(t, 5*time.Second, "reachability public", func(e events.Event) bool {
		r, ok := e.(events.Reachability)
		return ok && r.Reachability == "public"
	})
	// A negative check: give the keeper a moment, in which it must
	// neither reserve nor even dial the relay.
	time.Sleep(500 * time.Millisecond)
	if got := a.Reachability(); len(got.Relays) != 0 {
		t.Fatalf("public node holds reservations: %+v", got)
	}
	if a.Network().Connectedness(relayHost.ID()) == network.Connected {
		t.Fatal("public node dialled its relay")
	}
}

func TestCircuitAddrs(t *testing.T) {
	relayID := newServe(t).ID()
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"loopback only", []string{"/ip4/127.0.0.1/tcp/1"}, []string{"/ip4/127.0.0.1/tcp/1/p2p/" + relayID.String() + "/p2p-circuit"}},
		{"loopback dropped", []string{"/ip4/127.0.0.1/tcp/1", "/ip4/10.0.0.1/tcp/1"}, []string{"/ip4/10.0.0.1/tcp/1/p2p/" + relayID.String() + "/p2p-circuit"}},
		{"p2p suffix", []string{"/ip4/10.0.0.1/tcp/1/p2p/" + relayID.String()}, []string{"/ip4/10.0.0.1/tcp/1/p2p/" + relayID.String() + "/p2p-circuit"}},
		{"circuit skipped", []string{"/ip4/10.0.0.1/tcp/1/p2p/" + relayID.String() + "/p2p-circuit"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := circuitAddrs(relayID, mustAddrs(tc.in...))
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].String() != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestClassifyAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want Path
	}{
		{"/ip4/127.0.0.1/tcp/1", PathLAN},
		{"/ip4/192.168.1.2/udp/1/quic-v1", PathLAN},
		{"/ip4/10.1.2.3/tcp/1", PathLAN},
		{"/ip6/fe80::1/tcp/1", PathLAN},
		{"/ip6/::1/tcp/1", PathLAN},
		{"/ip4/8.8.8.8/tcp/1", PathDirect},
		{"/ip6/2606:4700::1/udp/1/quic-v1", PathDirect},
		{"/ip4/8.8.8.8/tcp/1/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE/p2p-circuit", PathRelayed},
	} {
		if got := ClassifyAddr(ma.StringCast(tc.addr)); got != tc.want {
			t.Errorf("ClassifyAddr(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if ClassifyAddr(nil) != PathNone {
		t.Error("nil address has a path")
	}
}

func TestDialRankerDelaysRelayBehindPrivateAddrs(t *testing.T) {
	relayed := "/ip4/10.0.0.1/tcp/1/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE/p2p-circuit"
	for _, tc := range []struct {
		name  string
		addrs []string
		min   time.Duration // least delay of the relay address
	}{
		{"private direct", []string{"/ip4/10.1.0.2/tcp/1", relayed}, relayDialDelay},
		{"public direct", []string{"/ip4/8.8.8.8/tcp/1", relayed}, relayDialDelay},
		{"relay only", []string{relayed}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, d := range dialRanker(mustAddrs(tc.addrs...)) {
				if ClassifyAddr(d.Addr) == PathRelayed && d.Delay < tc.min {
					t.Fatalf("relay dialled after %v, want at least %v", d.Delay, tc.min)
				}
				if ClassifyAddr(d.Addr) != PathRelayed && d.Delay >= relayDialDelay {
					t.Fatalf("direct address delayed %v", d.Delay)
				}
			}
		})
	}
}
