package overlay

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testnet.LongLivedWorkers()...)
}

// recorder collects events for assertions.
type recorder struct{ *testnet.Recorder }

func newRecorder() *recorder { return &recorder{testnet.NewRecorder(0)} }

// wait blocks until an event matching f was emitted, or fails after d.
func (r *recorder) wait(t *testing.T, d time.Duration, what string, f func(events.Event) bool) time.Duration {
	t.Helper()
	start := time.Now()
	r.WaitWithin(t, d, what, f)
	return time.Since(start)
}

func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	if cfg.PrivKey == nil {
		cfg.PrivKey = testnet.NewKey(t)
	}
	if cfg.ListenAddrs == nil {
		cfg.ListenAddrs = mustAddrs("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1")
	}
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

// addrOf returns b's listen address for the given transport.
func addrOf(t *testing.T, h *Host, transport int) peer.AddrInfo {
	t.Helper()
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(transport); err == nil {
			return peer.AddrInfo{ID: h.ID(), Addrs: []ma.Multiaddr{a}}
		}
	}
	t.Fatalf("host has no address with protocol %d: %v", transport, h.Addrs())
	return peer.AddrInfo{}
}

func TestConnectAndPing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport int
	}{
		{"tcp", ma.P_TCP},
		{"quic-v1", ma.P_QUIC_V1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newHost(t, Config{}), newHost(t, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Connect(ctx, addrOf(t, b, tc.transport)); err != nil {
				t.Fatalf("connect: %v", err)
			}
			conns := a.Network().ConnsToPeer(b.ID())
			if len(conns) != 1 {
				t.Fatalf("%d connections", len(conns))
			}
			if _, err := conns[0].RemoteMultiaddr().ValueForProtocol(tc.transport); err != nil {
				t.Fatalf("connected over %s, want %s", conns[0].RemoteMultiaddr(), tc.name)
			}
			// QUIC brings its own TLS 1.3; on TCP, Noise is preferred.
			if got := conns[0].ConnState().Security; tc.transport == ma.P_TCP && got != "/noise" {
				t.Fatalf("security %q, want /noise", got)
			}
			res := <-ping.Ping(ctx, a.Host, b.ID())
			if res.Error != nil {
				t.Fatalf("ping: %v", res.Error)
			}
			t.Logf("%s ping rtt %v", tc.name, res.RTT)
		})
	}
}

func TestGaterRefusesDeniedPeer(t *testing.T) {
	b := newHost(t, Config{})
	a := newHost(t, Config{DenyPeers: []peer.ID{b.ID()}})
	// Outbound: a refuses to dial b.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.AddrInfo()); err == nil {
		t.Fatal("dial to a denied peer succeeded")
	}
	// Inbound: b dials a, a refuses after the handshake.
	err := b.Connect(ctx, a.AddrInfo())
	if err == nil {
		// The dialer may see its side of the connection before the
		// remote gater closes it; it must not stay up.
		waitFor(t, 5*time.Second, "denied connection closed", func() bool {
			return a.Network().Connectedness(b.ID()) != network.Connected
		})
	}
	if len(a.Network().ConnsToPeer(b.ID())) != 0 {
		t.Fatal("denied peer holds a connection")
	}
}

func TestGaterRefusesDeniedCIDR(t *testing.T) {
	n, err := ParseCIDR("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	a := newHost(t, Config{DenyCIDRs: []*net.IPNet{n}})
	b := newHost(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.AddrInfo()); err == nil {
		t.Fatal("dial into a denied CIDR succeeded")
	}
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	testnet.Eventually(t, d, what, f)
}

func TestKeepRedials(t *testing.T) {
	rec := newRecorder()
	bKey := testnet.NewKey(t)
	b := newHost(t, Config{PrivKey: bKey})
	a := newHost(t, Config{
		Peers:   []peer.AddrInfo{addrOf(t, b, ma.P_TCP)},
		Emitter: rec,
		Redial:  Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	connectedTo := func(p peer.ID) func(events.Event) bool {
		return func(e events.Event) bool {
			c, ok := e.(events.PeerConnected)
			return ok && c.PeerID == p
		}
	}
	rec.wait(t, 10*time.Second, "peer_connected", connectedTo(b.ID()))
	// Drop the connection from b's side once b has it too; a must redial.
	waitFor(t, 5*time.Second, "b sees a", func() bool {
		return b.Network().Connectedness(a.ID()) == network.Connected
	})
	rec.Take()
	if err := b.Network().ClosePeer(a.ID()); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, 10*time.Second, "peer_disconnected", func(e events.Event) bool {
		d, ok := e.(events.PeerDisconnected)
		return ok && d.PeerID == b.ID() && d.Reason == "closed"
	})
	rec.wait(t, 10*time.Second, "peer_connected after redial", connectedTo(b.ID()))
}

func TestLivenessDropsSilentPeer(t *testing.T) {
	rec := newRecorder()
	live := Liveness{Interval: 200 * time.Millisecond, Timeout: 300 * time.Millisecond, MaxFailures: 2}
	a := newHost(t, Config{Emitter: rec, Liveness: live})
	b := newHost(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	// A healthy peer survives several liveness rounds.
	time.Sleep(3 * live.Interval) // let rounds pass; nothing to await
	if a.Network().Connectedness(b.ID()) != network.Connected {
		t.Fatal("healthy peer was dropped")
	}
	// b now swallows pings without answering, like a hung process.
	var mu sync.Mutex
	var held []network.Stream
	b.SetStreamHandler(ping.ID, func(s network.Stream) {
		mu.Lock()
		held = append(held, s)
		mu.Unlock()
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range held {
			_ = s.Reset()
		}
	})
	took := rec.wait(t, 3*live.Window(), "peer_disconnected (liveness)", func(e events.Event) bool {
		d, ok := e.(events.PeerDisconnected)
		return ok && d.PeerID == b.ID() && d.Reason == "liveness"
	})
	if took > live.Window()+time.Second {
		t.Fatalf("silent peer reported after %v, window is %v", took, live.Window())
	}
	if len(a.Network().ConnsToPeer(b.ID())) != 0 {
		t.Fatal("connection to the silent peer was not closed")
	}
}

func TestDefaultLivenessWindow(t *testing.T) {
	if w := (Liveness{}).Window(); w > 15*time.Second {
		t.Fatalf("default liveness window %v exceeds the documented 15 s", w)
	}
}

func TestParsePeerAddr(t *testing.T) {
	good := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	if _, err := ParsePeerAddr(good); err != nil {
		t.Fatalf("good address: %v", err)
	}
	if _, err := ParsePeerAddr("/ip4/127.0.0.1/tcp/4001"); !errors.Is(err, ErrNoPeerID) {
		t.Fatalf("address without /p2p: %v", err)
	}
	if _, err := ParsePeerAddr("not-a-multiaddr"); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestSelfKeepRefused(t *testing.T) {
	a := newHost(t, Config{})
	if err := a.Keep(a.AddrInfo()); !errors.Is(err, ErrSelfDial) {
		t.Fatalf("err = %v", err)
	}
}
