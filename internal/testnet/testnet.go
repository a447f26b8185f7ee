// Package testnet holds the helpers tests share. It builds real libp2p
// hosts on loopback: TCP on 127.0.0.1 with a random port, Noise, yamux, no
// mDNS, no NAT port mapping, no relay. It records events (Recorder, and
// Log for anything else a test collects) with waits bounded in time, and
// opens bbolt databases in the test's temporary directory. Everything it
// opens is closed by t.Cleanup.
package testnet

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

// NewKey returns a new Ed25519 identity key.
func NewKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return sk
}

// NewHost starts a loopback-only host. Extra options are appended to the
// defaults (and may override them, e.g. libp2p.Identity).
func NewHost(t testing.TB, opts ...libp2p.Option) host.Host {
	t.Helper()
	base := []libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}
	h, err := libp2p.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("new loopback host: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// NewHosts starts n loopback hosts.
func NewHosts(t testing.TB, n int, opts ...libp2p.Option) []host.Host {
	t.Helper()
	hs := make([]host.Host, n)
	for i := range hs {
		hs[i] = NewHost(t, opts...)
	}
	return hs
}

// Connect dials b from a and waits for the connection.
func Connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect %s -> %s: %v", a.ID(), b.ID(), err)
	}
}

// ConnectAll connects every pair of hosts.
func ConnectAll(t testing.TB, hs []host.Host) {
	t.Helper()
	for i := range hs {
		for j := i + 1; j < len(hs); j++ {
			Connect(t, hs[i], hs[j])
		}
	}
}

// ConnectChain connects hosts[i] to hosts[i+1]: a sparse line topology.
func ConnectChain(t testing.TB, hs []host.Host) {
	t.Helper()
	for i := 0; i+1 < len(hs); i++ {
		Connect(t, hs[i], hs[i+1])
	}
}

// WaitTopicPeers waits, at most timeout, until GossipSub lists every one
// of peers on topic tp (the peers it would send tp's messages to). It
// polls: GossipSub has no event for a peer becoming listed.
func WaitTopicPeers(t testing.TB, tp *pubsub.Topic, timeout time.Duration, peers ...peer.ID) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, p := range peers {
		for !slices.Contains(tp.ListPeers(), p) {
			if time.Now().After(deadline) {
				t.Fatalf("peer %s never appeared on %s within %v", p, tp.String(), timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Eventually polls cond every 10 ms until it holds, and fails the test when
// d passes first. Only for state that no event announces: wait on a
// Recorder where one does.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LongLivedWorkers are the goleak options for the process-wide workers
// that go-libp2p and its dependencies start once and never stop, for a
// package's goleak.VerifyTestMain.
func LongLivedWorkers() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreTopFunction("github.com/quic-go/quic-go.(*Transport).listen"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	}
}
