package overlay

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

func reachCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Each way of reaching a peer works on its own: known addresses, the DHT,
// a relay both sides are connected to.
func TestReachWays(t *testing.T) {
	t.Run("known addresses", func(t *testing.T) {
		a := newHost(t, Config{})
		b := newHost(t, Config{})
		a.Peerstore().AddAddrs(b.ID(), b.Addrs(), peerstore.TempAddrTTL)
		if err := a.Reach(reachCtx(t), b.ID()); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Path(b.ID()); got == PathRelayed {
			t.Fatalf("path = %v, want direct", got)
		}
	})
	t.Run("DHT", func(t *testing.T) {
		serve := newServe(t)
		boot := []peer.AddrInfo{serve.AddrInfo()}
		b := newHost(t, Config{Bootstrap: boot})
		waitFor(t, 15*time.Second, "b connected to the serve node", func() bool {
			return serve.Network().Connectedness(b.ID()) == network.Connected
		})
		// a starts now: its routing table is still empty, which must
		// make the lookup wait, not fail.
		a := newHost(t, Config{Bootstrap: boot})
		if err := a.Reach(reachCtx(t), b.ID()); err != nil {
			t.Fatal(err)
		}
		if a.Network().Connectedness(b.ID()) != network.Connected {
			t.Fatal("Reach returned without a connection")
		}
	})
	t.Run("relay", func(t *testing.T) {
		relayHost := newServe(t)
		recB := newRecorder()
		b := newHost(t, Config{Relays: []peer.AddrInfo{relayHost.AddrInfo()}, Emitter: recB, NoHolePunching: true})
		recB.wait(t, 15*time.Second, "b's relay reservation", func(e events.Event) bool {
			r, ok := e.(events.Reachability)
			return ok && len(r.RelayAddrs) > 0
		})
		// No DHT: the serve node would tell a b's direct addresses.
		a := newHost(t, Config{NoHolePunching: true, DHTMode: DHTOff})
		testnet.Connect(t, a.Host, relayHost.Host)
		waitFor(t, 10*time.Second, "a identified the relay", func() bool {
			ok, _ := a.Peerstore().SupportsProtocols(relayHost.ID(), "/libp2p/circuit/relay/0.2.0/hop")
			return len(ok) > 0
		})
		if err := a.Reach(reachCtx(t), b.ID()); err != nil {
			t.Fatal(err)
		}
		if got, addr := a.Path(b.ID()); got != PathRelayed || !strings.Contains(addr, relayHost.ID().String()) {
			t.Fatalf("path = %v over %q, want relayed via %s", got, addr, relayHost.ID())
		}
	})
}

// A failed Reach is one line naming what happened and what was tried.
func TestReachFailures(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	stranger, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("nothing known", func(t *testing.T) {
		err := a.Reach(reachCtx(t), stranger)
		de, ok := errors.AsType[*DialError](err)
		if !ok || de.Kind != DialNoAddress {
			t.Fatalf("err = %v, want a no_address DialError", err)
		}
	})
	t.Run("closed port", func(t *testing.T) {
		a.Peerstore().AddAddr(stranger, closedTCPAddr(t), peerstore.TempAddrTTL)
		t.Cleanup(func() { a.Peerstore().ClearAddrs(stranger) })
		err := a.Reach(reachCtx(t), stranger)
		de, ok := errors.AsType[*DialError](err)
		if !ok || de.Kind != DialRefused || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %q, want one line, kind refused", err)
		}
	})
	// A record claiming b's address for another peer cannot redirect a
	// DM: the handshake checks the peer ID, and Reach says who answered.
	t.Run("address of another peer", func(t *testing.T) {
		a.Peerstore().AddAddrs(stranger, b.Network().ListenAddresses(), peerstore.TempAddrTTL)
		t.Cleanup(func() { a.Peerstore().ClearAddrs(stranger) })
		err := a.Reach(reachCtx(t), stranger)
		de, ok := errors.AsType[*DialError](err)
		if !ok || de.Kind != DialWrongPeer || de.Actual != b.ID() {
			t.Fatalf("err = %v, want wrong_peer answered by b", err)
		}
		if a.Network().Connectedness(stranger) == network.Connected {
			t.Fatal("connected to a peer that was never reached")
		}
		s, err := a.NewStream(reachCtx(t), stranger, "/parley/test/1")
		if err == nil {
			_ = s.Reset()
			t.Fatal("NewStream reached a peer at another peer's address")
		}
	})
	t.Run("DHT knows nobody", func(t *testing.T) {
		serve := newServe(t)
		c := newHost(t, Config{Bootstrap: []peer.AddrInfo{serve.AddrInfo()}})
		start := time.Now()
		err := c.Reach(reachCtx(t), stranger)
		de, ok := errors.AsType[*DialError](err)
		if !ok || de.Kind != DialNoAddress {
			t.Fatalf("err = %v, want a no_address DialError", err)
		}
		t.Logf("not found in %v: %v", time.Since(start), err)
	})
	t.Run("self", func(t *testing.T) {
		if err := a.Reach(reachCtx(t), a.ID()); !errors.Is(err, ErrSelfDial) {
			t.Fatalf("err = %v, want ErrSelfDial", err)
		}
	})
}

// Concurrent callers share one attempt, and NewStream reaches first.
func TestReachSharedAndNewStream(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	b.SetStreamHandler("/parley/test/1", func(s network.Stream) { _ = s.Close() })
	a.Peerstore().AddAddrs(b.ID(), b.Addrs(), peerstore.TempAddrTTL)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- a.Reach(reachCtx(t), b.ID()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(a.Network().ConnsToPeer(b.ID())); n != 1 {
		t.Fatalf("%d connections to b, want 1", n)
	}
	c := newHost(t, Config{})
	c.SetStreamHandler("/parley/test/1", func(s network.Stream) { _ = s.Close() })
	a.Peerstore().AddAddrs(c.ID(), c.Addrs(), peerstore.TempAddrTTL)
	s, err := a.NewStream(reachCtx(t), c.ID(), "/parley/test/1")
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

func TestReachErrorLine(t *testing.T) {
	p, err := peer.Decode("12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq")
	if err != nil {
		t.Fatal(err)
	}
	e := &ReachError{Tried: []string{ReachDHT, ReachAddrs, "relay via 12D3…abcd"}, Dial: &DialError{Peer: p, Kind: DialNoAddress}}
	want := "no address is known for " + ShortPeer(p) + " (tried DHT, known addresses and relay via 12D3…abcd)"
	if got := e.Error(); got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
