package adversarial

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
)

// dhtProtocol is the protocol of Parley's own DHT, served by `parley serve`.
const dhtProtocol = protocol.ID(overlay.DHTProtocolPrefix + "/kad/1.0.0")

// newOverlay starts an overlay host on loopback; mod adjusts cfg.
func newOverlay(t testing.TB, name string, mod func(*overlay.Config)) *overlay.Host {
	t.Helper()
	cfg := overlay.Config{
		PrivKey: testnet.NewKey(t),
		ListenAddrs: []multiaddr.Multiaddr{
			multiaddr.StringCast("/ip4/127.0.0.1/tcp/0"),
			multiaddr.StringCast("/ip6/::1/tcp/0"),
		},
		Logger:    quiet().With("node", name),
		UserAgent: "parley/adversarial " + name,
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := overlay.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return h
}

// serveBed is a `parley serve` node (overlay.Config.ServeRole, the
// configuration cmd/parley's serve command uses) with two honest chat
// peers that use it as DHT bootstrap node, relay and AutoNAT server.
type serveBed struct {
	t      *testing.T
	serve  *overlay.Host
	alice  *overlay.Host // advertises, reserves a relay slot
	bob    *overlay.Host // searches, asks for AutoNAT dial-backs
	checks int
}

func newServeBed(t *testing.T) *serveBed {
	t.Helper()
	serve := newOverlay(t, "serve", func(c *overlay.Config) { c.ServeRole() })
	boot := []peer.AddrInfo{serve.AddrInfo()}
	client := func(c *overlay.Config) {
		// As `parley chat --bootstrap`: a DHT client, the bootstrap
		// node also its relay.
		c.DHTMode = overlay.DHTClient
		c.Bootstrap = boot
		c.Relays = boot
	}
	b := &serveBed{t: t, serve: serve, alice: newOverlay(t, "alice", client), bob: newOverlay(t, "bob", client)}
	for _, h := range []*overlay.Host{b.alice, b.bob} {
		testnet.Connect(t, h, serve)
	}
	b.stillServes("before the attack")
	return b
}

// serveOnlyProtocols returns the protocols the serve node serves that a
// chat node (node.Node with a DHT client, as `parley chat`) does not: the
// ones TestUndecodableOnEveryProtocol and TestSlowloris do not reach. It
// fails when the DHT, relay hop or AutoNAT protocol is missing, so that a
// change in the serve configuration shows up here.
func serveOnlyProtocols(t *testing.T, serve *overlay.Host) []protocol.ID {
	t.Helper()
	chat := newParty(t, "chat", func(c *node.Config) { c.Overlay.DHTMode = overlay.DHTClient })
	chatProtos := chat.host().Mux().Protocols()
	var ps []protocol.ID
	for _, p := range serve.Mux().Protocols() {
		if !slices.Contains(chatProtos, p) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	for _, want := range []protocol.ID{dhtProtocol, proto.ProtoIDv2Hop, autonat.AutoNATProto} {
		if !slices.Contains(ps, want) {
			t.Fatalf("the serve node does not serve %s (serve-only protocols: %v)", want, ps)
		}
	}
	t.Logf("serve-only protocols: %v", ps)
	return ps
}

// stillServes asserts that the serve node still does its three jobs for
// honest peers: alice advertises a fresh rendezvous namespace through the
// DHT and bob finds her there; alice renews her relay reservation; bob's
// AutoNAT dial-back request gets an answer (a refusal: loopback addresses
// are never dialled back).
func (b *serveBed) stillServes(tag string) {
	b.t.Helper()
	b.checks++
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ns := fmt.Sprintf("adversarial/%d", b.checks)
	// The clients' routing tables fill once identify with the serve node
	// has completed, which no event of the overlay reports: the first
	// advertisement and search are retried, a bounded number of times.
	var err error
	if !retry(ctx, func() bool { _, err = b.alice.Advertise(ctx, ns); return err == nil }) {
		b.t.Fatalf("%s: alice cannot advertise through the serve node: %v", tag, err)
	}
	var found []peer.AddrInfo
	if !retry(ctx, func() bool {
		found, err = b.bob.FindPeers(ctx, ns, 0)
		return slices.ContainsFunc(found, func(ai peer.AddrInfo) bool { return ai.ID == b.alice.ID() })
	}) {
		b.t.Fatalf("%s: bob's DHT search found %v, %v; want alice %s", tag, found, err, b.alice.ID())
	}
	if _, err := client.Reserve(ctx, b.alice, b.serve.AddrInfo()); err != nil {
		b.t.Fatalf("%s: relay reservation refused: %v", tag, err)
	}
	err = autonat.NewAutoNATClient(b.bob, nil, nil).DialBack(ctx, b.serve.ID())
	var ae autonat.Error
	if !errors.As(err, &ae) {
		b.t.Fatalf("%s: AutoNAT dial-back request got %v, want an AutoNAT answer", tag, err)
	}
}

// retry calls f until it succeeds, at most 100 times 100 ms apart, while
// ctx lasts.
func retry(ctx context.Context, f func() bool) bool {
	for range 100 {
		if f() {
			return true
		}
		tm := time.NewTimer(100 * time.Millisecond)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return false
		}
	}
	return false
}

// TestUndecodableOnServeProtocols writes the payloads of
// TestUndecodableOnEveryProtocol (garbage, a length prefix claiming 2^63
// bytes, 2 MiB sent, an overlong varint, a truncated frame, nothing), a
// well-framed invalid protobuf and an empty message to
// every protocol that only `parley serve` serves: the DHT, the relay hop
// and AutoNAT. Each stream is ended by the serve node, and after each
// protocol's attacks an honest peer still advertises and finds through
// the DHT, reserves a relay slot and gets an AutoNAT answer.
func TestUndecodableOnServeProtocols(t *testing.T) {
	t.Parallel()
	bed := newServeBed(t)
	mallory := attackerOf(t, bed.serve)
	payloads := undecodablePayloads(t)
	// Well framed, but not the protocol's message: an invalid protobuf
	// (field 31, wire type 7) and an empty message (each protocol's
	// default type with no fields: a DHT PUT_VALUE, which Parley's DHT
	// does not take, a relay RESERVE, an AutoNAT DIAL without peer info).
	payloads["framed invalid protobuf"] = append([]byte{16}, bytes.Repeat([]byte{0xff}, 16)...)
	payloads["empty message"] = []byte{0}
	for _, p := range serveOnlyProtocols(t, bed.serve) {
		for _, name := range slices.Sorted(maps.Keys(payloads)) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := mallory.NewStream(ctx, bed.serve.ID(), p)
			cancel()
			if err != nil {
				t.Logf("%s / %s: stream refused: %v", p, name, err)
				continue
			}
			_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = s.Write(payloads[name])
			_ = s.CloseWrite()
			took, ended := endedBy(s, 15*time.Second)
			_ = s.Reset()
			if !ended {
				t.Errorf("%s / %s: the serve node kept the stream open for %v", p, name, took)
			} else {
				t.Logf("%s / %s: ended after %v", p, name, took.Round(time.Millisecond))
			}
		}
		bed.stillServes("after garbage on " + string(p))
	}
}

// slowServeDeadline bounds how long the serve-only protocols wait for a
// request: go-libp2p's relay and AutoNAT services set a one-minute
// deadline on the first message, go-libp2p-kad-dht resets a stream idle
// for a minute.
const slowServeDeadline = time.Minute

// TestSlowlorisOnServeProtocols trickles a frame claiming 100 bytes, one
// byte a second, on a stream of every protocol only `parley serve` serves,
// all at once. The frame would take 100 s; the serve node ends every
// stream at its one-minute deadline, and serves honest peers throughout.
func TestSlowlorisOnServeProtocols(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for one-minute deadlines")
	}
	t.Parallel()
	bed := newServeBed(t)
	mallory := attackerOf(t, bed.serve)

	window := slowServeDeadline + 15*time.Second
	wait := trickle(t, mallory, bed.serve.ID(), serveOnlyProtocols(t, bed.serve), time.Second, window, t.Errorf)
	bed.stillServes("during slowloris")
	for _, r := range wait() {
		t.Logf("%-32s ended=%v after %v", r.proto, r.ended, r.took.Round(100*time.Millisecond))
		if !r.ended {
			t.Errorf("%s: trickling stream still open after %v, want a reset at the %v deadline", r.proto, window, slowServeDeadline)
		}
	}
	bed.stillServes("after slowloris")
}

// heapInUse returns the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestDHTLengthPrefixHoldsNoMemory opens 200 DHT streams to the serve node
// and writes on each only a length prefix claiming 4 MiB - 1 (the DHT
// library's message limit). go-libp2p-kad-dht allocates what a prefix
// claims before the bytes arrive and waits a minute for them: the serve
// node held about 270 MiB for one peer's 4 bytes per stream (the
// resource manager admits 68 DHT streams per peer). Parley's DHT reads
// requests through a guard (overlay.MaxDHTRequest, 64 KiB) that resets
// such a stream at once. Not parallel: it measures the heap.
func TestDHTLengthPrefixHoldsNoMemory(t *testing.T) {
	bed := newServeBed(t)
	mallory := attackerOf(t, bed.serve)
	prefix := binary.AppendUvarint(nil, 4<<20-1)

	before := heapInUse()
	var open []network.Stream
	t.Cleanup(func() {
		for _, s := range open {
			_ = s.Reset()
		}
	})
	refused := 0
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := mallory.NewStream(ctx, bed.serve.ID(), dhtProtocol)
		cancel()
		if err != nil {
			refused++
			continue
		}
		_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Write(prefix); err != nil {
			refused++
			_ = s.Reset()
			continue
		}
		open = append(open, s)
	}
	// Every stream must end within 5 s; the heap is measured while the
	// ones that did not are still open.
	deadline := time.Now().Add(5 * time.Second)
	still := 0
	for _, s := range open {
		if _, ended := endedBy(s, max(time.Until(deadline), 100*time.Millisecond)); !ended {
			still++
		}
	}
	grown := int64(heapInUse()) - int64(before) // #nosec G115 -- heap sizes are far below 2^63
	t.Logf("%d streams took the prefix, %d refused at open, %d still open after 5 s; heap grew %d MiB",
		len(open), refused, still, grown>>20)
	if still > 0 {
		t.Errorf("%d streams with a 4 MiB length prefix still open after 5 s, want every one reset", still)
	}
	if grown > 32<<20 {
		t.Errorf("the heap grew %d MiB, want at most 32 MiB", grown>>20)
	}
	bed.stillServes("after 4 MiB length prefixes")
}
