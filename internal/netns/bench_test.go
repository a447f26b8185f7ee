//go:build linux

package netns_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/netns"
	"github.com/parley-chat/parley/internal/proctest"
)

// BenchmarkFirstConnection measures the time from a peer being ready to
// its first connection with a peer it has to find: on a LAN by mDNS, and
// across subnets by DHT rendezvous through a serve node. The baseline is
// a peer given the other's address (--peer), on the same LAN. Each
// iteration starts fresh processes with new identities. Run as root, e.g.
//
//	PROCTEST_NORACE=1 go test -run '^$' -bench FirstConnection -benchtime 5x ./internal/netns/
func BenchmarkFirstConnection(b *testing.B) {
	b.Run("baseline-known-address", func(b *testing.B) {
		lab := netns.New(b)
		lan := lab.LAN()
		measure(b, func(i int) (*proctest.Peer, string, *proctest.Peer) {
			a, idA, ready := chatReady(b, lan.A, fmt.Sprintf("a%d", i), "--no-mdns")
			bp, _ := chat(b, lan.B, fmt.Sprintf("b%d", i), "--no-mdns", "--peer", addrOn(b, ready, lan.AddrA))
			return bp, idA, a
		})
	})
	b.Run("lan-mdns", func(b *testing.B) {
		lab := netns.New(b)
		lan := lab.LAN()
		measure(b, func(i int) (*proctest.Peer, string, *proctest.Peer) {
			a, idA := chat(b, lan.A, fmt.Sprintf("a%d", i))
			bp, _ := chat(b, lan.B, fmt.Sprintf("b%d", i))
			return bp, idA, a
		})
	})
	b.Run("subnets-dht-rendezvous", func(b *testing.B) {
		lab := netns.New(b)
		n := lab.Subnets()
		_, hub := serve(b, n.Router, n.RouterA)
		hubB := strings.Replace(hub, n.RouterA, n.RouterB, 1)
		measure(b, func(i int) (*proctest.Peer, string, *proctest.Peer) {
			ns := fmt.Sprintf("bench/%d", i)
			a, idA := chat(b, n.A, fmt.Sprintf("a%d", i), "--no-mdns", "--bootstrap", hub, "--rendezvous", ns)
			a.Wait(connectWait, "reachability", func(e proctest.Event) bool {
				rs, _ := e["relays"].([]any)
				return len(rs) > 0 // connected to the serve node
			})
			bp, _ := chat(b, n.B, fmt.Sprintf("b%d", i), "--no-mdns", "--bootstrap", hubB, "--rendezvous", ns)
			return bp, idA, a
		})
	})
}

// measure runs start b.N times; start returns the searching peer (already
// ready), the ID it must connect to, and the other peer. The time from
// the searching peer's ready to its peer_connected is reported.
func measure(b *testing.B, start func(i int) (*proctest.Peer, string, *proctest.Peer)) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		searcher, target, other := start(i)
		t0 := time.Now()
		connected(b, searcher, target)
		total += time.Since(t0)
		for _, p := range []*proctest.Peer{searcher, other} {
			p.Signal(syscall.SIGTERM)
			_ = p.Exited(10 * time.Second)
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/first-conn")
}

// chatReady is chat that also returns the ready event.
func chatReady(t testing.TB, ns *netns.NS, name string, args ...string) (*proctest.Peer, string, proctest.Event) {
	t.Helper()
	p := ns.Start(t, bin, name, append([]string{"--data-dir", t.TempDir() + "/" + name, "--nick", name}, args...)...)
	ready := p.Wait(readyWait, "ready", nil)
	return p, ready.Str("peer_id"), ready
}

// addrOn returns the ready event's TCP address on IP ip.
func addrOn(t testing.TB, ready proctest.Event, ip string) string {
	t.Helper()
	addrs, _ := ready["addrs"].([]any)
	for _, a := range addrs {
		s, _ := a.(string)
		if strings.HasPrefix(s, "/ip4/"+ip+"/tcp/") {
			return s
		}
	}
	t.Fatalf("no TCP address on %s in %v", ip, addrs)
	return ""
}
