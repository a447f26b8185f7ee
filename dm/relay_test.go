package dm

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// TestDeliveryOverRelay sends a message over a circuit relay connection
// (limited), all on loopback: the relay only forwards Noise-encrypted
// bytes, and the stream is allowed on the limited connection.
func TestDeliveryOverRelay(t *testing.T) {
	r := testnet.NewHost(t)
	if _, err := relay.New(r); err != nil {
		t.Fatalf("start relay: %v", err)
	}
	a, b := newNode(t, "alice", testConfig()), newNode(t, "bob", testConfig())
	a.start(t, libp2p.EnableRelay())
	b.start(t, libp2p.EnableRelay())
	testnet.Connect(t, b.h, r)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := client.Reserve(ctx, b.h, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	circuit, err := ma.NewMultiaddr(r.Addrs()[0].String() + "/p2p/" + r.ID().String() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.id, Addrs: []ma.Multiaddr{circuit}}); err != nil {
		t.Fatalf("connect through relay: %v", err)
	}
	conns := a.h.Network().ConnsToPeer(b.id)
	if len(conns) != 1 || !conns[0].Stat().Limited {
		t.Fatalf("want one limited connection, got %d", len(conns))
	}
	id := a.send(t, b, "via relay")
	a.rec.wait(t, "delivered via relay", status(id, events.DMDelivered))
	if got := b.rec.wait(t, "dm", isDM).(events.DM); got.From != a.id || got.Text != "via relay" {
		t.Fatalf("bob got %+v", got)
	}
}

// TestCloseLeavesNoGoroutines runs a delivery, a queued message in
// backoff and a held inbound stream, closes everything, and checks that
// no goroutine is left behind.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	cfg := testConfig()
	cfg.StreamTimeout = time.Minute
	a, b, ghost := newNode(t, "alice", cfg), newNode(t, "bob", cfg), newNode(t, "ghost", cfg)
	a.start(t)
	b.start(t)
	testnet.Connect(t, a.h, b.h)
	id := a.send(t, b, "hi")
	a.rec.wait(t, "delivered", status(id, events.DMDelivered))
	a.send(t, ghost, "queued forever")
	s := rawStream(t, a.h, b.id)
	if _, err := s.Write([]byte{0x80}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stream held", func() bool { return b.svc.inboundStreams(a.id) == 1 })
	b.stop(t) // must abort the held stream
	a.stop(t) // must stop the worker in backoff

	goleak.VerifyNone(t, opts...)
}
