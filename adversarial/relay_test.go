package adversarial

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
)

// relayFlood is how many throwaway identities attack the chat node's
// relay service.
const relayFlood = 40

// relayHost is a bare loopback host that can dial through relays.
func relayHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics(), libp2p.EnableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// circuitVia is /p2p/<relay>/p2p-circuit to dest.
func circuitVia(relay, dest peer.ID) peer.AddrInfo {
	return peer.AddrInfo{ID: dest, Addrs: []multiaddr.Multiaddr{
		multiaddr.StringCast("/p2p/" + relay.String() + "/p2p-circuit")}}
}

// relayScene is a chat node relaying for its own people (victim) and a
// room member of it (honest) that holds a reservation on it; ctx bounds
// the test (2 min).
func relayScene(t *testing.T) (ctx context.Context, victim, honest *party, victimInfo peer.AddrInfo) {
	t.Helper()
	// IPv4 only: the relay's limits count reservations per IP, and a
	// party listening on 127.0.0.1 and ::1 could be reached on either.
	ip4 := func(c *node.Config) {
		c.Overlay.ListenAddrs = []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")}
	}
	victim = newParty(t, "victim", func(c *node.Config) { ip4(c); c.RelayForOwnPeople = true })
	honest = newParty(t, "honest", ip4)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	victimInfo = peer.AddrInfo{ID: victim.peerID(), Addrs: victim.host().Addrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if _, err := client.Reserve(ctx, honest.host(), victimInfo); err != nil {
		t.Fatalf("honest member's reservation: %v", err)
	}
	return ctx, victim, honest, victimInfo
}

// TestRelayFloodFromStrangers: a chat node relays for its own people
// only. Throwaway identities that share no room with it, one after the
// other, ask for a reservation and for a circuit to a room member; every
// request is refused with PERMISSION_DENIED, and afterwards the honest
// member still reserves a slot, a trusted peer still reaches it through
// the relay, and the node still chats.
func TestRelayFloodFromStrangers(t *testing.T) {
	// The honest member holds a reservation before the flood.
	ctx, victim, honest, victimInfo := relayScene(t)

	deadline := time.Now().Add(90 * time.Second)
	refused := 0
	for i := 0; i < relayFlood && time.Now().Before(deadline); i++ {
		m := relayHost(t)
		if err := m.Connect(ctx, victimInfo); err != nil {
			t.Fatalf("throwaway %d connect: %v", i, err)
		}
		_, err := client.Reserve(ctx, m, victimInfo)
		var re client.ReservationError
		if !errors.As(err, &re) || re.Status != pbv2.Status_PERMISSION_DENIED {
			t.Fatalf("throwaway %d reservation: err = %v, want permission denied", i, err)
		}
		err = m.Connect(ctx, circuitVia(victim.peerID(), honest.peerID()))
		if err == nil || !strings.Contains(err.Error(), "PERMISSION_DENIED") {
			t.Fatalf("throwaway %d circuit to the member: err = %v, want permission denied", i, err)
		}
		if m.Network().Connectedness(honest.peerID()) != network.NotConnected {
			t.Fatalf("throwaway %d reached the member", i)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		refused++
	}
	if refused != relayFlood {
		t.Fatalf("only %d of %d throwaway identities tried within the time bound", refused, relayFlood)
	}

	// The limits are untouched: the member renews its reservation, and a
	// trusted peer (in no room) reaches it through the relay.
	if _, err := client.Reserve(ctx, honest.host(), victimInfo); err != nil {
		t.Fatalf("honest member's reservation after the flood: %v", err)
	}
	friend := relayHost(t)
	if _, err := victim.n.Trust(friend.ID()); err != nil {
		t.Fatal(err)
	}
	if err := friend.Connect(ctx, victimInfo); err != nil {
		t.Fatal(err)
	}
	if err := friend.Connect(ctx, circuitVia(victim.peerID(), honest.peerID())); err != nil {
		t.Fatalf("trusted peer's circuit to the member after the flood: %v", err)
	}
	conns := friend.Network().ConnsToPeer(honest.peerID())
	if len(conns) == 0 || !conns[0].Stat().Limited {
		t.Fatalf("trusted peer's connections to the member: %v, want a relayed one", conns)
	}
	stillServes(t, honest, victim, "after the relay flood")
}

// TestRelayLimitsHoldForTrustedFlood: even peers the node accepts cannot
// take more than the chat limits allow. Trusted throwaway identities on
// one address (loopback) reserve until the per-IP limit of
// overlay.ChatRelayResources refuses them; the honest member, who
// reserved first, still renews its slot.
func TestRelayLimitsHoldForTrustedFlood(t *testing.T) {
	ctx, victim, honest, victimInfo := relayScene(t)
	perIP := overlay.ChatRelayResources().MaxReservationsPerIP
	granted, refused := 1, 0 // the honest member's
	deadline := time.Now().Add(90 * time.Second)
	const flood = 12 // trusted throwaways, more than the per-IP limit leaves
	for i := 0; i < flood && time.Now().Before(deadline); i++ {
		m := relayHost(t)
		if _, err := victim.n.Trust(m.ID()); err != nil {
			t.Fatal(err)
		}
		if err := m.Connect(ctx, victimInfo); err != nil {
			t.Fatalf("trusted throwaway %d connect: %v", i, err)
		}
		_, err := client.Reserve(ctx, m, victimInfo)
		var re client.ReservationError
		switch {
		case err == nil:
			granted++
		case errors.As(err, &re) && re.Status == pbv2.Status_RESERVATION_REFUSED:
			refused++
		default:
			t.Fatalf("trusted throwaway %d reservation: %v", i, err)
		}
	}
	if granted != perIP || refused != flood+1-perIP {
		t.Fatalf("granted %d, refused %d reservations from one address; want %d and %d", granted, refused, perIP, flood+1-perIP)
	}
	if _, err := client.Reserve(ctx, honest.host(), victimInfo); err != nil {
		t.Fatalf("honest member's renewal under the limit: %v", err)
	}
}

// TestRelaySlotsOfLobbyStrangers (issue 19, relay slots): a chat node
// relays for its own people, and the members of its public lobby count
// among them, yet anyone can be one. 18 throwaway identities on 3
// addresses of one subnet (127.0.0.2-4, 6 each: under the per-IP limit
// of 8, which is all that bounded them before, when they took the 15
// slots the honest member left) say a line in the lobby and ask for a
// reservation: together with the honest member (a stranger too) they
// hold the subnet's share of ChatRelayShares; a trusted peer still
// reserves, and the honest member renews its slot.
func TestRelaySlotsOfLobbyStrangers(t *testing.T) {
	ctx, victim, honest, victimInfo := relayScene(t)
	shares := overlay.ChatRelayShares()
	quiet := time.Now()
	if _, err := client.Reserve(ctx, honest.host(), victimInfo); err != nil {
		t.Fatal(err)
	}
	quietTook := time.Since(quiet)
	granted, denied := 0, 0
	for ip := 2; ip <= 4; ip++ {
		for i := range 6 {
			m := hostOn(t, fmt.Sprintf("/ip4/127.0.0.%d/tcp/0", ip))
			if err := m.Connect(ctx, victimInfo); err != nil {
				t.Fatal(err)
			}
			tp := joinTopic(t, rawPubSub(t, m), lobbyTopic, victim.peerID())
			line := fmt.Sprintf("sybil %d.%d here", ip, i)
			if err := tp.Publish(ctx, envelopeBytes(t, fmt.Sprintf("sybil%d%d", ip, i), line)); err != nil {
				t.Fatal(err)
			}
			victim.ev.wait(t, "victim shows "+line, func(e events.Event) bool {
				msg, ok := e.(events.Message)
				return ok && msg.From == m.ID()
			})
			_, err := client.Reserve(ctx, m, victimInfo)
			var re client.ReservationError
			switch {
			case err == nil:
				granted++
			case errors.As(err, &re) && (re.Status == pbv2.Status_PERMISSION_DENIED || re.Status == pbv2.Status_RESERVATION_REFUSED):
				denied++
			default:
				t.Fatalf("lobby sybil reservation: %v", err)
			}
		}
	}
	friend := relayHost(t)
	if _, err := victim.n.Trust(friend.ID()); err != nil {
		t.Fatal(err)
	}
	if err := friend.Connect(ctx, victimInfo); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := client.Reserve(ctx, friend, victimInfo); err != nil {
		t.Fatalf("trusted peer's reservation after the lobby crowd: %v", err)
	}
	loaded := time.Since(start)
	t.Logf("lobby sybils of one subnet: %d reservations granted, %d denied (subnet share %d, the honest member's included); trusted peer reserved in %v (honest member before: %v)",
		granted, denied, shares.PerSubnet, loaded, quietTook)
	if granted+1 > shares.PerSubnet {
		t.Fatalf("lobby strangers of one subnet hold %d relay slots; the share is %d", granted+1, shares.PerSubnet)
	}
	if _, err := client.Reserve(ctx, honest.host(), victimInfo); err != nil {
		t.Fatalf("honest member's renewal: %v", err)
	}
}
