package overlay

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/internal/testnet"
)

// peerSet is a RelayFor policy the test can change.
type peerSet struct {
	mu sync.Mutex
	m  map[peer.ID]bool // guarded by mu
}

func (s *peerSet) has(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[p]
}

func (s *peerSet) set(p peer.ID, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[p] = in
}

// circuitTo is /p2p/<relay>/p2p-circuit for dest.
func circuitTo(t *testing.T, relayID, dest peer.ID) peer.AddrInfo {
	t.Helper()
	return peer.AddrInfo{ID: dest, Addrs: []ma.Multiaddr{ma.StringCast("/p2p/" + relayID.String() + "/p2p-circuit")}}
}

// refusedWith reports whether err is a relay refusal with status want.
func refusedWith(err error, want pbv2.Status) bool {
	var re client.ReservationError
	return errors.As(err, &re) && re.Status == want
}

// TestRelayForOwnPeople runs a relay service restricted by RelayFor with
// ChatRelayResources: accepted peers reserve and relay, a stranger is
// refused both, and a peer dropped from the policy after reserving can no
// longer be reached.
func TestRelayForOwnPeople(t *testing.T) {
	kA, kB := testnet.NewKey(t), testnet.NewKey(t)
	idA, _ := peer.IDFromPrivateKey(kA)
	idB, _ := peer.IDFromPrivateKey(kB)
	own := &peerSet{m: map[peer.ID]bool{idA: true, idB: true}}
	res := ChatRelayResources()
	relayHost := newHost(t, Config{RelayService: &res, RelayFor: own.has, NoHolePunching: true})
	a := newHost(t, Config{PrivKey: kA, NoHolePunching: true})
	b := newHost(t, Config{PrivKey: kB, NoHolePunching: true})
	stranger := newHost(t, Config{NoHolePunching: true})
	for _, h := range []*Host{a, b, stranger} {
		testnet.Connect(t, h, relayHost)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	r, err := client.Reserve(ctx, a, relayHost.AddrInfo())
	if err != nil {
		t.Fatalf("own peer's reservation: %v", err)
	}
	if r.LimitDuration != res.Limit.Duration || r.LimitData != uint64(res.Limit.Data) {
		t.Fatalf("reservation limits %v / %d bytes, want %v / %d", r.LimitDuration, r.LimitData, res.Limit.Duration, res.Limit.Data)
	}
	if ttl := time.Until(r.Expiration); ttl > res.ReservationTTL || ttl < res.ReservationTTL-time.Minute {
		t.Fatalf("reservation lasts %v, want about %v", ttl, res.ReservationTTL)
	}
	if _, err := client.Reserve(ctx, stranger, relayHost.AddrInfo()); !refusedWith(err, pbv2.Status_PERMISSION_DENIED) {
		t.Fatalf("stranger's reservation: err = %v, want permission denied", err)
	}

	// A stranger cannot reach a through the relay.
	if err := stranger.Connect(ctx, circuitTo(t, relayHost.ID(), a.ID())); err == nil {
		t.Fatal("stranger opened a circuit to a")
	}
	if stranger.Network().Connectedness(a.ID()) != network.NotConnected {
		t.Fatal("stranger is connected to a")
	}
	// b can: the circuit is a limited connection.
	if err := b.Connect(ctx, circuitTo(t, relayHost.ID(), a.ID())); err != nil {
		t.Fatalf("own peer's circuit: %v", err)
	}
	conns := b.Network().ConnsToPeer(a.ID())
	if len(conns) != 1 || !conns[0].Stat().Limited || ClassifyAddr(conns[0].RemoteMultiaddr()) != PathRelayed {
		t.Fatalf("b's connections to a: %v, want one limited relayed connection", conns)
	}
	s, err := b.NewStream(network.WithAllowLimitedConn(ctx, "test"), a.ID(), "/ipfs/id/1.0.0")
	if err != nil {
		t.Fatalf("stream over the circuit: %v", err)
	}
	_ = s.Reset()

	// Once a leaves the policy (left the room, untrusted), the relay
	// refuses circuits to it although its reservation lasts.
	if err := b.Network().ClosePeer(a.ID()); err != nil {
		t.Fatal(err)
	}
	own.set(a.ID(), false)
	b.Peerstore().ClearAddrs(a.ID()) // identify taught b a's direct addresses
	if err := b.Connect(ctx, circuitTo(t, relayHost.ID(), a.ID())); err == nil {
		t.Fatal("circuit to a peer no longer accepted")
	}
	// The same dial works when a is accepted again: the refusal was the
	// policy's.
	own.set(a.ID(), true)
	b.Peerstore().ClearAddrs(a.ID())
	b.Network().(*swarm.Swarm).Backoff().Clear(a.ID())
	if err := b.Connect(ctx, circuitTo(t, relayHost.ID(), a.ID())); err != nil {
		t.Fatalf("circuit once a is accepted again: %v", err)
	}
}
