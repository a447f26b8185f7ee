package overlay

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

func TestRelayOf(t *testing.T) {
	r := testnet.NewHost(t).ID()
	x := testnet.NewHost(t).ID()
	for _, tc := range []struct {
		name, addr string
		want       peer.ID
	}{
		{"circuit", "/ip4/127.0.0.1/tcp/1/p2p/" + r.String() + "/p2p-circuit", r},
		{"circuit to a peer", "/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + r.String() + "/p2p-circuit/p2p/" + x.String(), r},
		{"circuit without relay ID", "/ip4/127.0.0.1/tcp/1/p2p-circuit", ""},
		{"bare circuit", "/p2p-circuit/p2p/" + x.String(), ""},
		{"direct", "/ip4/127.0.0.1/tcp/1/p2p/" + x.String(), ""},
		{"direct without ID", "/ip4/127.0.0.1/tcp/1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RelayOf(ma.StringCast(tc.addr)); got != tc.want {
				t.Fatalf("RelayOf(%s) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
	if got := RelayOf(nil); got != "" {
		t.Fatalf("RelayOf(nil) = %q", got)
	}
}

// relayedPair returns hosts a and b (hole punching off: on loopback
// libp2p would not punch, and the tests feed the tracer's events
// themselves) with b connected to a only through the circuit relay r.
func relayedPair(t *testing.T) (a, b *Host, r peer.ID, recB *recorder) {
	t.Helper()
	relayHost := newServe(t)
	recA := newRecorder()
	a = newHost(t, Config{Relays: []peer.AddrInfo{relayHost.AddrInfo()}, Emitter: recA, NoHolePunching: true})
	recB = newRecorder()
	b = newHost(t, Config{Emitter: recB, NoHolePunching: true})
	recA.wait(t, 15*time.Second, "reachability with a relay", func(e events.Event) bool {
		r, ok := e.(events.Reachability)
		return ok && len(r.RelayAddrs) > 0
	})
	ai, err := peer.AddrInfoFromString(a.Reachability().RelayAddrs[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Connect(ctx, *ai); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	return a, b, relayHost.ID(), recB
}

// directDial opens a direct connection from b to a beside the relayed one.
func directDial(t *testing.T, a, b *Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(network.WithForceDirectDial(ctx, "test"), peer.AddrInfo{ID: a.ID(), Addrs: a.Network().ListenAddresses()}); err != nil {
		t.Fatalf("direct connect: %v", err)
	}
}

// A relayed path names its relay; a direct dial that hole punching did
// not make is not reported as hole-punched.
func TestPathNamesRelay(t *testing.T) {
	a, b, r, recB := relayedPair(t)
	if got := b.PathInfo(a.ID()); got.Path != PathRelayed || got.Via != r || got.HolePunched || RelayOf(ma.StringCast(got.Addr)) != r {
		t.Fatalf("b's path to a = %+v, want relayed via %s", got, r)
	}
	directDial(t, a, b)
	pp := recB.WaitWithin(t, 5*time.Second, "peer_path lan", func(e events.Event) bool {
		pp, ok := e.(events.PeerPath)
		return ok && pp.PeerID == a.ID() && pp.Path == string(PathLAN)
	}).(events.PeerPath)
	if pp.Previous != string(PathRelayed) || pp.Via != "" || pp.HolePunched {
		t.Fatalf("peer_path %+v, want lan from relayed, no relay, not hole-punched", pp)
	}
	if got := b.PathInfo(a.ID()); got.Path != PathLAN || got.Via != "" || got.HolePunched {
		t.Fatalf("b's path to a = %+v, want lan", got)
	}
}

// The hole punching classification, fed with the events go-libp2p's
// holepunch tracer gives (on loopback there is no NAT to punch through):
// a direct connection opened during a punch that succeeded is
// hole-punched, and peer_path says so.
func TestPathHolePunched(t *testing.T) {
	for _, tc := range []struct {
		name    string
		success bool
	}{
		{"success", true},
		{"failure", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, r, recB := relayedPair(t)
			w := b.conns
			start := time.Now()
			w.punchEvent(a.ID(), &holepunch.StartHolePunchEvt{RTT: time.Millisecond}, start)
			directDial(t, a, b)
			var end holepunch.EndHolePunchEvt
			end.Success = tc.success
			w.punchEvent(a.ID(), &end, time.Now())
			pp := recB.WaitWithin(t, 5*time.Second, "peer_path lan", func(e events.Event) bool {
				pp, ok := e.(events.PeerPath)
				return ok && pp.PeerID == a.ID() && pp.Path == string(PathLAN)
			}).(events.PeerPath)
			// A success marks the connection as it opens; a failure
			// unmarks it at the end, with a second peer_path.
			if !pp.HolePunched || pp.Previous != string(PathRelayed) {
				t.Fatalf("peer_path %+v, want hole-punched lan from relayed", pp)
			}
			got := b.PathInfo(a.ID())
			if got.Path != PathLAN || got.HolePunched != tc.success {
				t.Fatalf("path after the punch = %+v, want lan hole-punched %v", got, tc.success)
			}
			var direct network.Conn
			for _, c := range b.Network().ConnsToPeer(a.ID()) {
				if ConnPath(c) == PathLAN {
					direct = c
				}
			}
			if direct == nil || b.HolePunched(direct) != tc.success {
				t.Fatalf("HolePunched(direct conn) != %v", tc.success)
			}
			if !tc.success {
				recB.WaitWithin(t, 5*time.Second, "peer_path no longer hole-punched", func(e events.Event) bool {
					pp, ok := e.(events.PeerPath)
					return ok && pp.PeerID == a.ID() && pp.Path == string(PathLAN) && !pp.HolePunched
				})
			}
			// Closing the connection forgets it; the relayed path is
			// reported after it is forgotten.
			if err := direct.Close(); err != nil {
				t.Fatal(err)
			}
			recB.WaitWithin(t, 5*time.Second, "peer_path relayed again", func(e events.Event) bool {
				pp, ok := e.(events.PeerPath)
				return ok && pp.PeerID == a.ID() && pp.Path == string(PathRelayed) && pp.Previous == string(PathLAN) && pp.Via == r
			})
			if w.holePunched(direct) {
				t.Fatal("a closed connection is still marked hole-punched")
			}
		})
	}
}

// A direct connection opened with no punch in progress, or before the
// punch started, is not hole-punched even when a later punch succeeds.
func TestPathNotHolePunched(t *testing.T) {
	a, b, _, _ := relayedPair(t)
	w := b.conns
	directDial(t, a, b)
	w.punchEvent(a.ID(), &holepunch.StartHolePunchEvt{}, time.Now().Add(time.Second))
	w.punchEvent(a.ID(), &holepunch.EndHolePunchEvt{Success: true}, time.Now())
	// An end without a start, and events of other kinds, change nothing.
	w.punchEvent(a.ID(), &holepunch.EndHolePunchEvt{Success: true}, time.Now())
	w.punchEvent(a.ID(), &holepunch.DirectDialEvt{Success: true}, time.Now())
	if got := b.PathInfo(a.ID()); got.Path != PathLAN || got.HolePunched {
		t.Fatalf("path = %+v, want lan, not hole-punched", got)
	}
	w.mu.Lock()
	n := len(w.punching)
	w.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d punches still in progress after their end", n)
	}
}
