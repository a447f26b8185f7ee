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
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/overlay"
)

// hostOn is a bare host listening (and so dialling, TCP reuses the
// listening port) on listen, e.g. /ip4/127.0.0.3/tcp/0.
func hostOn(t testing.TB, listen string) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen), libp2p.DisableMetrics(), libp2p.EnableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// reserveAt connects h to relay and asks for a reservation: nil when
// granted; the refusal's status otherwise.
func reserveAt(ctx context.Context, t *testing.T, h host.Host, relay peer.AddrInfo) (time.Duration, error) {
	t.Helper()
	if err := h.Connect(ctx, relay); err != nil {
		t.Fatalf("connect to the relay: %v", err)
	}
	start := time.Now()
	_, err := client.Reserve(ctx, h, relay)
	return time.Since(start), err
}

// TestSybilReservationsLeaveRoomOnServeRelay (issue 19, relay slots): a
// `parley serve` relay (the product's ServeRole, no allow list: everyone
// is a stranger to it) is asked for reservations by 70 fresh identities
// on 5 addresses of one subnet (127.0.0.2-6, 14 each: under go-libp2p's
// per-IP limit of 32, which is all that bounded them before: all 70 were
// granted). They get the subnet's share (an eighth of the 512
// reservations), the rest are refused; a stranger from another subnet
// (::1) still reserves, and the renewal of a slot the crowd holds is not
// refused. Every identity is a newcomer here, as in the hour after a
// serve node restarts (the age split: overlay TestRelayShares).
func TestSybilReservationsLeaveRoomOnServeRelay(t *testing.T) {
	serve := newOverlay(t, "serve", func(c *overlay.Config) {
		c.ServeRole()
		c.ListenAddrs = []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0"), multiaddr.StringCast("/ip6/::1/tcp/0")}
		c.Newcomer = func(peer.ID) bool { return true } // as in the hour after a restart
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The crowd dials 127.0.0.1, the other subnet's strangers ::1.
	info, info6 := peer.AddrInfo{ID: serve.ID()}, peer.AddrInfo{ID: serve.ID()}
	for _, a := range serve.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_IP4); err == nil {
			info.Addrs = append(info.Addrs, a)
		} else {
			info6.Addrs = append(info6.Addrs, a)
		}
	}
	shares := overlay.RelaySharesOf(overlay.ServeRelayResources(), false)

	quiet, err := reserveAt(ctx, t, hostOn(t, "/ip6/::1/tcp/0"), info6)
	if err != nil {
		t.Fatalf("a stranger's reservation before the crowd: %v", err)
	}
	granted, refused := 0, 0
	var first host.Host
	for ip := 2; ip <= 6; ip++ {
		for range 14 {
			h := hostOn(t, fmt.Sprintf("/ip4/127.0.0.%d/tcp/0", ip))
			_, err := reserveAt(ctx, t, h, info)
			var re client.ReservationError
			switch {
			case err == nil:
				granted++
				if first == nil {
					first = h
				}
			case errors.As(err, &re) && re.Status == pbv2.Status_PERMISSION_DENIED:
				refused++
			default:
				t.Fatalf("crowd reservation: %v", err)
			}
		}
	}
	loaded, err := reserveAt(ctx, t, hostOn(t, "/ip6/::1/tcp/0"), info6)
	t.Logf("crowd of one subnet: %d reservations granted, %d refused (share %d); another subnet's stranger reserved in %v (quiet: %v); refused in all %d",
		granted, refused, shares.PerSubnet, loaded, quiet, serve.RelayRefused())
	if err != nil {
		t.Fatalf("a stranger of another subnet after the crowd: %v", err)
	}
	if granted != shares.PerSubnet {
		t.Fatalf("a crowd of one subnet got %d reservations; its share is %d", granted, shares.PerSubnet)
	}
	if _, err := client.Reserve(ctx, first, info); err != nil {
		t.Fatalf("renewal of a held slot: %v", err)
	}
}

// TestSybilCircuitsLeaveRoomOnServeRelay (issue 19, relay circuits): a
// destination holds a reservation at a `parley serve` relay; a crowd of
// fresh identities on addresses of one subnet (127.0.0.2-5) each opens a
// circuit to it and keeps the relayed connection open, until the relay
// refuses one. Before the circuits were split the crowd got all of the
// destination's MaxCircuits (32) and then nobody else reached it through
// the relay ("too many connections to destination"); now the subnet gets
// CircuitsPerSubnet (8) and a stranger of another subnet (::1) still
// connects to the destination through the relay.
func TestSybilCircuitsLeaveRoomOnServeRelay(t *testing.T) {
	serve := newOverlay(t, "serve", func(c *overlay.Config) { c.ServeRole() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	info, info6 := peer.AddrInfo{ID: serve.ID()}, peer.AddrInfo{ID: serve.ID()}
	var circuit, circuit6 multiaddr.Multiaddr
	for _, a := range serve.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_IP4); err == nil {
			info.Addrs = append(info.Addrs, a)
			circuit = a
		} else {
			info6.Addrs = append(info6.Addrs, a)
			circuit6 = a
		}
	}
	if circuit == nil || circuit6 == nil {
		t.Fatalf("serve listens on %v, want 127.0.0.1 and ::1", serve.Addrs())
	}
	dest := hostOn(t, "/ip4/127.0.0.1/tcp/0")
	if _, err := reserveAt(ctx, t, dest, info); err != nil {
		t.Fatalf("the destination's reservation: %v", err)
	}
	via := func(relayAddr multiaddr.Multiaddr) peer.AddrInfo {
		p2p := multiaddr.StringCast("/p2p/" + serve.ID().String() + "/p2p-circuit")
		return peer.AddrInfo{ID: dest.ID(), Addrs: []multiaddr.Multiaddr{relayAddr.Encapsulate(p2p)}}
	}
	// connectVia opens a circuit from h to dest: nil when h then has a
	// connection to dest.
	connectVia := func(h host.Host, relayAddr multiaddr.Multiaddr) error {
		if err := h.Connect(ctx, via(relayAddr)); err != nil {
			return err
		}
		if len(h.Network().ConnsToPeer(dest.ID())) == 0 {
			return errors.New("connected but no connection to the destination")
		}
		return nil
	}

	res := overlay.ServeRelayResources()
	per := overlay.CircuitsPerSubnet(res)
	granted := 0
	var crowd []host.Host
	var refusal error
	for i := range res.MaxCircuits + 1 { // bounded: the relay allows at most MaxCircuits
		h := hostOn(t, fmt.Sprintf("/ip4/127.0.0.%d/tcp/0", 2+i%4))
		if refusal = connectVia(h, circuit); refusal != nil {
			if !strings.Contains(refusal.Error(), "error opening relay circuit") {
				t.Fatalf("crowd circuit %d: %v", i, refusal)
			}
			break
		}
		crowd = append(crowd, h)
		granted++
	}
	// The crowd's relayed connections are still open.
	for i, h := range crowd {
		if len(h.Network().ConnsToPeer(dest.ID())) == 0 {
			t.Fatalf("crowd identity %d lost its relayed connection", i)
		}
	}
	otherErr := connectVia(hostOn(t, "/ip6/::1/tcp/0"), circuit6)
	t.Logf("crowd of one subnet: %d circuits to the destination granted (share %d of %d), then refused: %v; another subnet's stranger: %v; circuits refused in all %d",
		granted, per, res.MaxCircuits, refusal, otherErr, serve.RelayCircuitsRefused())
	if granted == 0 || granted > per {
		t.Fatalf("a crowd of one subnet opened %d circuits to one destination; its share is %d", granted, per)
	}
	if refusal == nil || !strings.Contains(refusal.Error(), "PERMISSION_DENIED") {
		t.Fatalf("the crowd's circuit beyond its share was not denied: %v", refusal)
	}
	if otherErr != nil {
		t.Fatalf("a stranger of another subnet could not reach the destination through the relay: %v", otherErr)
	}
	if serve.RelayCircuitsRefused() == 0 {
		t.Fatal("the crowd's refused circuit was not counted")
	}
}
