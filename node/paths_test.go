package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/present"
)

// TestPathViaRelay: a peer reached through a chat node's relay is shown
// as relayed via that node in /peers, the peer list and /whois, in their
// data and their text.
func TestPathViaRelay(t *testing.T) {
	relay, _ := nodetest.New(t, func(c *node.Config) {
		inRoom("dev", true)(c)
		c.Nick = "relayer"
	})
	member, _ := nodetest.New(t, inRoom("dev", false))
	other, _ := nodetest.New(t, inRoom("dev", false))
	connectNodes(t, member, relay)
	connectNodes(t, other, relay)
	rid, mid := relay.Host().ID(), member.Host().ID()
	// The relay serves room members it has seen online, both ends.
	testnet.Eventually(t, 15*time.Second, "both online in the relay's room", func() bool {
		ms, err := relay.Members("dev")
		if err != nil {
			return false
		}
		online := 0
		for _, m := range ms {
			if (m.PeerID == mid || m.PeerID == other.Host().ID()) && m.Online {
				online++
			}
		}
		return online == 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := client.Reserve(ctx, member.Host(), relay.Host().AddrInfo()); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	var circuit []ma.Multiaddr
	for _, a := range relay.Host().Addrs() {
		circuit = append(circuit, a.Encapsulate(ma.StringCast("/p2p/"+rid.String()+"/p2p-circuit")))
	}
	// The room's presence may already have told other member's own
	// (loopback) addresses (docs/PROTOCOL.md §7a); forget them, so that
	// the only way to member is the relay, as this test means.
	other.Host().Peerstore().ClearAddrs(mid)
	if err := other.Host().Connect(ctx, peer.AddrInfo{ID: mid, Addrs: circuit}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	// The relay's nick reaches other by the room's presence.
	testnet.Eventually(t, 15*time.Second, "the relay's nick known", func() bool {
		return other.Peer(rid).Nick == "relayer"
	})

	var row node.PeerRow
	for _, r := range other.Peers() {
		if r.PeerID == mid {
			row = r
		}
	}
	if row.Path != overlay.PathRelayed || !row.Relayed || row.Via != rid || row.ViaNick != "relayer" || row.HolePunched {
		t.Fatalf("/peers row %+v, want relayed via %s (relayer)", row, rid)
	}
	raw, err := row.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"via":"`+rid.String()+`"`) || strings.Contains(string(raw), "hole_punched") {
		t.Fatalf("/peers JSON %s, want via %s and no hole_punched", raw, rid)
	}
	if text := present.Peers([]node.PeerRow{row}, "private", 0); !strings.Contains(text, "relayed via relayer") {
		t.Fatalf("/peers text %q does not name the relay", text)
	}

	if v := other.Peer(mid); !v.Online || v.Path != "relayed" || v.Via != rid || v.ViaNick != "relayer" {
		t.Fatalf("Peer(member) = %+v, want relayed via the relay", v)
	}
	var listed bool
	for _, v := range other.PeerList() {
		if v.PeerID == mid {
			listed = v.Path == "relayed" && v.Via == rid && v.ViaNick == "relayer"
		}
	}
	if !listed {
		t.Fatalf("peer list %+v: member not relayed via the relay", other.PeerList())
	}

	w := other.Whois(mid)
	if w.Path != overlay.PathRelayed || w.Via != rid || w.ViaNick != "relayer" {
		t.Fatalf("whois %+v, want relayed via the relay", w)
	}
	if text := present.Whois(w); !strings.Contains(text, "relayed via relayer") {
		t.Fatalf("whois text %q does not name the relay", text)
	}
}
