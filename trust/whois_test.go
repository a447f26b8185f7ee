package trust

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/overlay"
)

func TestWhoisDirect(t *testing.T) {
	hs := testnet.NewHosts(t, 2)
	a, b := hs[0], hs[1]
	s, _ := openStore(t)

	w := Whois(a, s, b.ID())
	if w.Known || w.Path != overlay.PathNone || len(w.Conns) != 0 || w.Fingerprint != identity.Fingerprint(b.ID()) {
		t.Fatalf("before connecting: %+v", w)
	}
	testnet.Connect(t, a, b)
	observe(t, s, b.ID(), "bob")
	if err := s.Trust(b.ID()); err != nil {
		t.Fatal(err)
	}
	w = Whois(a, s, b.ID())
	// A loopback connection is "lan", as /peers and peer_path say.
	if !w.Known || w.Nick != "bob" || !w.Trusted || !w.Pinned || w.Path != overlay.PathLAN ||
		len(w.Conns) != 1 || w.Conns[0].Relayed || w.Conns[0].Path != overlay.PathLAN ||
		w.Conns[0].Direction != "Outbound" || len(w.Addrs) == 0 {
		t.Fatalf("connected: %+v", w)
	}
	// Its text: present.Whois (TestWhoisText).
	if w := Whois(a, nil, b.ID()); w.Known || w.Fingerprint == "" || w.Path != overlay.PathLAN {
		t.Fatalf("without a store: %+v", w)
	}
}

// TestWhoisRelayed connects a to b through a circuit relay r, all on
// loopback, and checks that the path is reported as relayed.
func TestWhoisRelayed(t *testing.T) {
	r := testnet.NewHost(t)
	if _, err := relay.New(r); err != nil {
		t.Fatalf("start relay: %v", err)
	}
	a := testnet.NewHost(t, libp2p.EnableRelay())
	b := testnet.NewHost(t, libp2p.EnableRelay())
	testnet.Connect(t, b, r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Reserve(ctx, b, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	circuit, err := ma.NewMultiaddr(r.Addrs()[0].String() + "/p2p/" + r.ID().String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("connect through relay: %v", err)
	}
	w := Whois(a, nil, b.ID())
	if w.Path != overlay.PathRelayed || len(w.Conns) != 1 || !w.Conns[0].Relayed || w.Conns[0].Path != overlay.PathRelayed {
		t.Fatalf("relayed: %+v", w)
	}
	// The relay is named, by peer ID and, from the store, by nick.
	if w.Via != r.ID() || w.Conns[0].Via != r.ID() || w.HolePunched || w.Conns[0].HolePunched || w.ViaNick != "" {
		t.Fatalf("relayed: via %q (conn %q), want %s", w.Via, w.Conns[0].Via, r.ID())
	}
	s, _ := openStore(t)
	observe(t, s, r.ID(), "relayer")
	if w := Whois(a, s, b.ID()); w.Via != r.ID() || w.ViaNick != "relayer" {
		t.Fatalf("relayed, with a store: via %q nick %q", w.Via, w.ViaNick)
	}
	raw, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Via   string `json:"via"`
		Conns []struct {
			Via string `json:"via"`
		} `json:"conns"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Via != r.ID().String() || len(m.Conns) != 1 || m.Conns[0].Via != r.ID().String() {
		t.Fatalf("whois JSON %s: want via %s", raw, r.ID())
	}
	if strings.Contains(string(raw), "hole_punched") {
		t.Fatalf("whois JSON %s: hole_punched is omitted when false", raw)
	}
}

// /whois names a connection's path with the words /peers, peer_path and
// the peer list use (overlay.Path), classified the same way: a loopback
// connection was "direct" in /whois and "lan" in /peers.
func TestWhoisPathIsOverlayPath(t *testing.T) {
	hs := testnet.NewHosts(t, 2)
	a, b := hs[0], hs[1]
	if w := Whois(a, nil, b.ID()); w.Path != overlay.PathNone || len(w.Conns) != 0 {
		t.Fatalf("not connected: %+v", w)
	}
	testnet.Connect(t, a, b)
	conns := a.Network().ConnsToPeer(b.ID())
	best, _ := overlay.BestPath(conns)
	w := Whois(a, nil, b.ID())
	if w.Path != best || w.Path != overlay.PathLAN {
		t.Fatalf("whois path %q, overlay.BestPath %q, want %q", w.Path, best, overlay.PathLAN)
	}
	for i, c := range w.Conns {
		if want := overlay.ConnPath(conns[i]); c.Path != want || c.Relayed != (want == overlay.PathRelayed) {
			t.Errorf("conn %s: path %q relayed %v, overlay.ConnPath %q", c.Addr, c.Path, c.Relayed, want)
		}
	}
}

func TestWhoisJSONSaysNotConnected(t *testing.T) {
	p := testnet.NewHost(t).ID()
	w := WhoisInfo{PeerInfo: PeerInfo{ID: p, Nick: "bob"}}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["path"] != PathNotConnected || m["nick"] != "bob" || m["peer_id"] != p.String() {
		t.Fatalf("whois JSON %s", b)
	}
	w.Path = overlay.PathLAN
	if b, _ := json.Marshal(w); !strings.Contains(string(b), `"path":"lan"`) {
		t.Fatalf("whois JSON %s", b)
	}
}

// punchingHost marks every connection hole-punched, as overlay.Host does
// for those DCUtR opened (on loopback nothing is punched: no NAT).
type punchingHost struct{ host.Host }

func (punchingHost) HolePunched(network.Conn) bool { return true }

func TestWhoisHolePunched(t *testing.T) {
	hs := testnet.NewHosts(t, 2)
	a, b := hs[0], hs[1]
	testnet.Connect(t, a, b)
	if w := Whois(a, nil, b.ID()); w.HolePunched || w.Conns[0].HolePunched {
		t.Fatalf("a plain host marks hole punching: %+v", w)
	}
	w := Whois(punchingHost{a}, nil, b.ID())
	if !w.HolePunched || len(w.Conns) != 1 || !w.Conns[0].HolePunched || w.Via != "" {
		t.Fatalf("hole-punched: %+v", w)
	}
	if raw, _ := json.Marshal(w); !strings.Contains(string(raw), `"hole_punched":true`) {
		t.Fatalf("whois JSON %s", raw)
	}
}
