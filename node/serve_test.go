package node

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/store"
)

type discard struct{}

func (discard) Emit(events.Event) {}

// TestNewServe starts a serve node on loopback: it has the serve role
// (DHT server, relay service), holds the data dir's store as a lock,
// reports itself as "serve" and exports its metric.
func TestNewServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "serve")
	id, _, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := ServeConfig{
		DataDir:  dir,
		Identity: id,
		Overlay:  overlay.Config{ListenAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")}},
		Metrics:  reg,
		Emitter:  discard{},
		Version:  "test",
	}
	s, err := NewServe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	r := s.Ready()
	if r.PeerID != id.ID || r.Nick != ServeNick || len(r.Addrs) == 0 {
		t.Fatalf("ready %+v", r)
	}
	protos := s.Host().Mux().Protocols()
	for _, want := range []protocol.ID{"/libp2p/circuit/relay/0.2.0/hop", protocol.ID(overlay.DHTProtocolPrefix + "/kad/1.0.0")} {
		if !slices.Contains(protos, want) {
			t.Errorf("a serve node does not serve %s: %v", want, protos)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		found = found || f.GetName() == "parley_serve_connected_peers"
	}
	if !found {
		t.Error("no parley_serve_connected_peers metric")
	}

	cfg.Metrics = nil
	if _, err := NewServe(context.Background(), cfg); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a second serve node on the data dir: %v, want %v", err, store.ErrLocked)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestServeListenAddrs(t *testing.T) {
	for _, tc := range []struct {
		tcpOnly bool
		n       int
	}{{false, 4}, {true, 2}} {
		addrs := ServeListenAddrs(tc.tcpOnly)
		if len(addrs) != tc.n {
			t.Errorf("tcpOnly=%v: %v", tc.tcpOnly, addrs)
		}
		for _, a := range addrs {
			if !strings.Contains(a.String(), "/4747") || (tc.tcpOnly && strings.Contains(a.String(), "quic")) {
				t.Errorf("tcpOnly=%v: %s", tc.tcpOnly, a)
			}
		}
	}
}

// TestServeKnown: a serve node's holder knows the peers of its allow list
// and those it dials, and nobody without an allow list.
func TestServeKnown(t *testing.T) {
	a, b, c, d := peer.ID("allowed"), peer.ID("dialled"), peer.ID("bootstrap"), peer.ID("stranger")
	tests := []struct {
		name  string
		cfg   overlay.Config
		known []peer.ID
	}{
		{"no allow list", overlay.Config{Peers: []peer.AddrInfo{{ID: b}}}, nil},
		{"allow list", overlay.Config{AllowPeers: []peer.ID{a}, Peers: []peer.AddrInfo{{ID: b}}, Bootstrap: []peer.AddrInfo{{ID: c}}},
			[]peer.ID{a, b, c}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := serveKnown(&tc.cfg)
			if tc.known == nil {
				if k != nil {
					t.Fatal("known peers without an allow list")
				}
				return
			}
			for _, p := range []peer.ID{a, b, c, d} {
				if got, want := k(p), slices.Contains(tc.known, p); got != want {
					t.Errorf("known(%s) = %v, want %v", p, got, want)
				}
			}
		})
	}
}
