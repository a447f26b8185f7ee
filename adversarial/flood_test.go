package adversarial

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
)

// TestTenThousandStreams opens 10 000 streams from one peer, on the direct
// message protocol and on ping, without ever closing them. The resource
// manager admits at most 256 inbound streams per peer, the dm service at
// most 4 at a time; every other stream is refused or reset, and honest
// peers are served throughout.
func TestTenThousandStreams(t *testing.T) {
	victim, honest, mallory := underAttack(t)

	const total = 10000
	var open []network.Stream
	defer func() {
		for _, s := range open {
			_ = s.Reset()
		}
	}()
	refused := 0
	deadline := time.Now().Add(60 * time.Second)
	for i := range total {
		if time.Now().After(deadline) {
			t.Fatalf("opened only %d streams in 60 s", i)
		}
		proto := protocol.ID(dm.ProtocolID)
		if i%2 == 1 {
			proto = ping.ID
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := mallory.NewStream(ctx, victim.peerID(), proto)
		cancel()
		if err != nil {
			refused++
			continue
		}
		open = append(open, s)
	}
	// Streams the victim reset while they were being negotiated count as
	// refused too: see which of the "open" ones are still alive.
	alive := 0
	for _, s := range open {
		_ = s.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := s.Read(make([]byte, 1)); err != nil && isTimeout(err) {
			alive++
		}
	}
	t.Logf("10000 streams: %d refused at open, %d alive at the end", refused, alive)
	if alive > overlay.DefaultLimits().PeerStreams/2 {
		t.Fatalf("%d streams from one peer alive, the per-peer inbound limit is %d", alive, overlay.DefaultLimits().PeerStreams/2)
	}
	stillServes(t, honest, victim, "during stream flood")
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// TestFiveHundredConnectionsFromOneAddress opens 500 TCP connections from
// one address (127.0.0.1) that never finish the handshake, the cheapest way
// to hold a node's connection slots. The victim applies the per-address
// limit to loopback here (LimitLoopback, as a remote address always has
// it): it holds at most ConnsPerIP of them and closes the rest at once.
// An honest peer that is connected keeps being served, and a new honest
// peer from another address (::1) still gets in.
func TestFiveHundredConnectionsFromOneAddress(t *testing.T) {
	limited := func(c *node.Config) {
		l := overlay.DefaultLimits()
		l.LimitLoopback = true
		c.Overlay.Limits = &l
	}
	victim := newParty(t, "victim", limited)
	honest := newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)

	target := tcpAddr(t, victim, ma.P_IP4)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range 500 {
		c, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			continue // refused at accept: fine
		}
		conns = append(conns, c)
	}
	// The victim closes what it refuses: count the survivors.
	var alive atomic.Int32
	done := make(chan struct{})
	for _, c := range conns {
		go func() {
			// The victim may greet first (multistream-select): read until
			// it closes the connection or the deadline passes.
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 256)
			for {
				if _, err := c.Read(buf); err != nil {
					if isTimeout(err) {
						alive.Add(1)
					}
					break
				}
			}
			done <- struct{}{}
		}()
	}
	for range conns {
		<-done
	}
	t.Logf("500 connections from 127.0.0.1: %d dialled, %d held by the victim", len(conns), alive.Load())
	if int(alive.Load()) > 8 {
		t.Fatalf("victim holds %d half-open connections from one address, limit 8", alive.Load())
	}
	stillServes(t, honest, victim, "during connection flood")

	// A new honest peer from another address connects and is served.
	late := newParty(t, "late", nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := late.host().Connect(ctx, peer.AddrInfo{ID: victim.peerID(), Addrs: []ma.Multiaddr{ma.StringCast("/ip6/::1/tcp/" + portOf(t, victim, ma.P_IP6))}}); err != nil {
		t.Fatalf("honest peer from ::1 during the flood: %v", err)
	}
	inLobby(t, late, victim)
	stillServes(t, late, victim, "new peer during connection flood")
}

// tcpAddr returns the victim's TCP listen address of the IP family code.
func tcpAddr(t *testing.T, p *party, family int) string {
	t.Helper()
	for _, a := range p.host().Addrs() {
		if _, err := a.ValueForProtocol(family); err != nil {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			continue
		}
		na, err := manet.ToNetAddr(a)
		if err == nil {
			return na.String()
		}
	}
	t.Fatalf("%s has no TCP address of family %d: %v", p.name, family, p.host().Addrs())
	return ""
}

func portOf(t *testing.T, p *party, family int) string {
	t.Helper()
	_, port, err := net.SplitHostPort(tcpAddr(t, p, family))
	if err != nil {
		t.Fatal(err)
	}
	return port
}
