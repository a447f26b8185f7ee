package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/rooms"
)

// inRoom makes a test node join room with quick presence.
func inRoom(room string, relay bool) func(*node.Config) {
	return func(c *node.Config) {
		c.Rooms = []string{room}
		c.RoomsConfig = rooms.Config{PresenceInterval: 300 * time.Millisecond, PresenceTimeout: 5 * time.Second}
		c.RelayForOwnPeople = relay
	}
}

func connectNodes(t *testing.T, from, to *node.Node) {
	t.Helper()
	testnet.Connect(t, from.Host(), to.Host())
}

// TestRelayForOwnPeople: a chat node relays for a member of its room and
// for a trusted peer, and refuses a stranger both a reservation and a
// circuit, through the real relay client.
func TestRelayForOwnPeople(t *testing.T) {
	relay, _ := nodetest.New(t, inRoom("dev", true))
	member, _ := nodetest.New(t, inRoom("dev", false))
	trusted, _ := nodetest.New(t, inRoom("elsewhere", false))
	stranger, _ := nodetest.New(t, inRoom("elsewhere", false))
	for _, n := range []*node.Node{member, trusted, stranger} {
		connectNodes(t, n, relay)
	}
	if _, err := relay.Trust(trusted.Host().ID()); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 15*time.Second, "the member online in the relay's room", func() bool {
		ms, err := relay.Members("dev")
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.PeerID == member.Host().ID() && m.Online {
				return true
			}
		}
		return false
	})

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	relayInfo := relay.Host().AddrInfo()
	for _, tc := range []struct {
		name string
		n    *node.Node
		ok   bool
	}{{"room member", member, true}, {"trusted peer", trusted, true}, {"stranger", stranger, false}} {
		_, err := client.Reserve(ctx, tc.n.Host(), relayInfo)
		var re client.ReservationError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: reservation refused: %v", tc.name, err)
		case !tc.ok && (!errors.As(err, &re) || re.Status != pbv2.Status_PERMISSION_DENIED):
			t.Errorf("%s: reservation: err = %v, want permission denied", tc.name, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	toMember := peer.AddrInfo{ID: member.Host().ID(), Addrs: []ma.Multiaddr{
		ma.StringCast("/p2p/" + relay.Host().ID().String() + "/p2p-circuit")}}
	if err := stranger.Host().Connect(ctx, toMember); err == nil {
		t.Fatal("a stranger opened a circuit to the member")
	}
	if err := trusted.Host().Connect(ctx, toMember); err != nil {
		t.Fatalf("the trusted peer's circuit to the member: %v", err)
	}
	conns := trusted.Host().Network().ConnsToPeer(member.Host().ID())
	if len(conns) != 1 || !conns[0].Stat().Limited {
		t.Fatalf("trusted peer's connections to the member: %v, want one relayed", conns)
	}
	if stranger.Host().Network().Connectedness(member.Host().ID()) == network.Connected {
		t.Fatal("stranger connected to the member")
	}

	// A DM goes over the circuit (a limited connection DMs may use).
	if _, err := trusted.SendDM(ctx, member.Host().ID(), "through the relay"); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, "the DM delivered", func() bool {
		h, err := trusted.DMHistory(member.Host().ID(), 1)
		return err == nil && len(h) == 1 && h[0].State == events.DMDelivered
	})
}
