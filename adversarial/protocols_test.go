package adversarial

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/transfer"
)

// protocolsOf returns the protocols the victim serves, minus none: every
// one of them is attacked.
func protocolsOf(t *testing.T, victim *party) []protocol.ID {
	t.Helper()
	ps := victim.host().Mux().Protocols()
	slices.Sort(ps)
	if !slices.Contains(ps, dm.ProtocolID) {
		t.Fatalf("victim does not serve %s: %v", dm.ProtocolID, ps)
	}
	return ps
}

func random(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// endedBy waits until the victim ends stream s (EOF or reset) and reports
// how long that took; ok is false when it is still open after d.
func endedBy(s network.Stream, d time.Duration) (took time.Duration, ok bool) {
	start := time.Now()
	_ = s.SetReadDeadline(start.Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := s.Read(buf)
		if err == nil {
			continue
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			return time.Since(start), false
		}
		return time.Since(start), true
	}
}

// slowResult is how one trickling stream fared: whether the node ended it
// and after how long.
type slowResult struct {
	proto protocol.ID
	took  time.Duration
	ended bool
}

// trickle opens a stream of each of protos from h to target and, on all
// of them at once, writes a frame claiming 100 bytes one byte every
// `every` (a slowloris), until the node ends the stream or window passes.
// It returns at once; wait waits for every stream and returns how each
// fared. A stream that cannot be opened is reported with refused (t.Logf
// or t.Errorf) and left out.
func trickle(t *testing.T, h host.Host, target peer.ID, protos []protocol.ID, every, window time.Duration,
	refused func(format string, args ...any)) (wait func() []slowResult) {
	t.Helper()
	var (
		mu      sync.Mutex
		results []slowResult
		wg      sync.WaitGroup
	)
	for _, p := range protos {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := h.NewStream(ctx, target, p)
		cancel()
		if err != nil {
			refused("%s: stream refused: %v", p, err)
			continue
		}
		frame := append([]byte{100}, random(t, 100)...)
		wg.Go(func() {
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				tick := time.NewTicker(every)
				defer tick.Stop()
				for _, c := range frame {
					if _, err := s.Write([]byte{c}); err != nil {
						return
					}
					select {
					case <-tick.C:
					case <-stop:
						return
					}
				}
			}()
			took, ended := endedBy(s, window)
			close(stop)
			_ = s.Reset()
			<-done
			mu.Lock()
			results = append(results, slowResult{p, took, ended})
			mu.Unlock()
		})
	}
	return func() []slowResult {
		wg.Wait()
		return results
	}
}

// undecodablePayloads are bytes that are not a valid frame of any
// protocol, by name.
func undecodablePayloads(t testing.TB) map[string][]byte {
	t.Helper()
	var huge [binary.MaxVarintLen64]byte
	hugeLen := binary.PutUvarint(huge[:], 1<<63)
	var twoMiB [binary.MaxVarintLen64]byte
	twoLen := binary.PutUvarint(twoMiB[:], 2<<20)
	return map[string][]byte{
		"random bytes":       random(t, 4096),
		"length 2^63":        append(huge[:hugeLen:hugeLen], random(t, 64)...),
		"length 2 MiB, sent": append(twoMiB[:twoLen:twoLen], make([]byte, 2<<20)...),
		"overlong varint":    []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"truncated frame":    {0x40, 0x0a, 0x10},
		"empty":              nil,
	}
}

// TestUndecodableOnEveryProtocol writes bytes that are not a valid frame to
// every protocol the node serves, among them a length prefix claiming 2^63
// bytes and one claiming 2 MiB followed by the bytes: each stream is ended
// by the node (closed or reset), and the node keeps serving honest peers.
func TestUndecodableOnEveryProtocol(t *testing.T) {
	t.Parallel()
	victim, honest, mallory := underAttack(t)

	payloads := undecodablePayloads(t)
	for _, proto := range protocolsOf(t, victim) {
		for name, payload := range payloads {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := mallory.NewStream(ctx, victim.peerID(), proto)
			cancel()
			if err != nil {
				// Refusing the stream outright is a fine answer too.
				t.Logf("%s / %s: stream refused: %v", proto, name, err)
				continue
			}
			_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = s.Write(payload) // the node may reset before it read it all
			_ = s.CloseWrite()
			took, ended := endedBy(s, 15*time.Second)
			_ = s.Reset()
			if !ended {
				t.Errorf("%s / %s: the node kept the stream open for %v", proto, name, took)
			}
		}
	}
	stillServes(t, honest, victim, "after garbage")
}

// TestOversizePubsubRPC sends a GossipSub RPC larger than the 1 MiB limit
// and a well-formed RPC carrying a 70 KiB message (over the rooms' 64 KiB
// limit): the first stream is reset, the message is refused, the honest
// member's messages still arrive.
func TestOversizePubsubRPC(t *testing.T) {
	victim, honest, mallory := underAttack(t)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := mallory.NewStream(ctx, victim.peerID(), gossipSubID)
	if err != nil {
		t.Fatal(err)
	}
	var prefix [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(prefix[:], 1<<20+1)
	_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = s.Write(prefix[:n])
	_, _ = s.Write(make([]byte, 64<<10))
	if _, ended := endedBy(s, 10*time.Second); !ended {
		t.Fatal("oversize RPC: stream still open")
	}
	_ = s.Reset()

	// A signed, well-formed message whose data is over the rooms limit.
	ps := rawPubSub(t, mallory)
	tp := joinTopic(t, ps, lobbyTopic, victim.peerID())
	big := strings.Repeat("x", 70<<10)
	if err := tp.Publish(ctx, []byte(big)); err != nil {
		t.Fatal(err)
	}
	stillServes(t, honest, victim, "after oversize")
	if victim.messages(big) != 0 {
		t.Fatal("oversize message delivered")
	}
}

// TestSlowloris trickles one byte every 500 ms (a byte a minute, sped up)
// on a stream of every protocol at once. Parley's own protocols end such a
// stream once a frame takes longer than their deadline (the shortened dm
// StreamTimeout and transfer ControlTimeout of 2 s); libp2p's protocols keep at most one such stream
// per peer and protocol within the resource limits. Honest peers are
// served throughout.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	victim, honest, mallory := underAttack(t)

	const window = 8 * time.Second
	wait := trickle(t, mallory, victim.peerID(), protocolsOf(t, victim), 500*time.Millisecond, window, t.Logf)
	// Honest traffic flows while the streams trickle.
	stillServes(t, honest, victim, "during slowloris")
	for _, r := range wait() {
		switch {
		case r.ended:
			t.Logf("%-40s ended by the node after %v", r.proto, r.took.Round(100*time.Millisecond))
		default:
			t.Logf("%-40s still open after %v (bounded: one stream per peer and protocol)", r.proto, window)
		}
		if (r.proto == dm.ProtocolID || r.proto == transfer.ID) && (!r.ended || r.took > 4*time.Second) {
			t.Errorf("%s: trickling stream ended=%v after %v, want a reset within the 2 s deadline", r.proto, r.ended, r.took)
		}
	}
	stillServes(t, honest, victim, "after slowloris")
}
