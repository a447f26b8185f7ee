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

// BenchmarkFirstRoomMessage measures how soon a new peer talks with a
// peer it has to find: on a LAN by mDNS, and across subnets by the DHT
// rendezvous of their room through a serve node. The baseline is a peer
// given the other's address (--peer), on the same LAN. Each iteration
// starts fresh processes with new identities in a room of their own. The
// new peer sends a room message as soon as it is ready, and the benchmark
// reports, from that moment:
//
//   - ms/first-conn: until the new peer's peer_connected event about the
//     other peer;
//   - ms/first-msg: until the other peer's message event with that
//     message (time to first delivered room message).
//
// Run as root, e.g.
//
//	PROCTEST_NORACE=1 go test -run '^$' -bench FirstRoomMessage -benchtime 5x ./internal/netns/
func BenchmarkFirstRoomMessage(b *testing.B) {
	b.Run("baseline-known-address", func(b *testing.B) {
		lab := netns.New(b)
		lan := lab.LAN()
		measure(b, func(i int) (*proctest.Peer, string, *proctest.Peer) {
			room := fmt.Sprintf("bench-%d", i)
			a, idA, ready := chatReady(b, lan.A, fmt.Sprintf("a%d", i), "--no-mdns", "--room", room)
			bp, _ := chat(b, lan.B, fmt.Sprintf("b%d", i), "--no-mdns", "--room", room, "--peer", addrOn(b, ready, lan.AddrA))
			return bp, idA, a
		})
	})
	b.Run("lan-mdns", func(b *testing.B) {
		lab := netns.New(b)
		lan := lab.LAN()
		measure(b, func(i int) (*proctest.Peer, string, *proctest.Peer) {
			room := fmt.Sprintf("bench-%d", i)
			a, idA := chat(b, lan.A, fmt.Sprintf("a%d", i), "--room", room)
			bp, _ := chat(b, lan.B, fmt.Sprintf("b%d", i), "--room", room)
			return bp, idA, a
		})
	})
	b.Run("subnets-dht-rendezvous", func(b *testing.B) {
		lab := netns.New(b)
		n := lab.Subnets()
		_, hub := serve(b, n.Router, n.RouterA)
		hubB := strings.Replace(hub, n.RouterA, n.RouterB, 1)
		measure(b, func(i int) (*proctest.Peer, string, *proctest.Peer) {
			room := fmt.Sprintf("bench-%d", i)
			a, idA := chat(b, n.A, fmt.Sprintf("a%d", i), "--no-mdns", "--bootstrap", hub, "--room", room)
			a.Find(connectWait, "reachability", func(e proctest.Event) bool {
				rs, _ := e["relays"].([]any)
				return len(rs) > 0 // connected to the serve node
			})
			bp, _ := chat(b, n.B, fmt.Sprintf("b%d", i), "--no-mdns", "--bootstrap", hubB, "--room", room)
			return bp, idA, a
		})
	})
}

// measure runs start b.N times; start returns the searching peer (already
// ready), the ID of the other peer, which it must find, and the other
// peer, both with the room they were started with as current room. Right
// after ready the searching peer sends a line to the room, as a user who
// starts parley and types at once: Send holds it until the room has a
// peer (at most rooms.DefaultMeshWait after joining, 5 s).
func measure(b *testing.B, start func(i int) (*proctest.Peer, string, *proctest.Peer)) {
	var conn, msg time.Duration
	for i := 0; i < b.N; i++ {
		searcher, target, other := start(i)
		t0 := time.Now()
		searcher.Send(fmt.Sprintf("hello %d", i))
		connected(b, searcher, target)
		dc := time.Since(t0)
		conn += dc
		self := searcher.Find(readyWait, "ready", nil).Str("peer_id")
		other.Find(connectWait, "message", func(e proctest.Event) bool { return e.Str("from") == self })
		dm := time.Since(t0)
		msg += dm
		b.Logf("iteration %d: connected after %v, message delivered after %v", i, dc.Round(time.Microsecond), dm.Round(time.Microsecond))
		for _, p := range []*proctest.Peer{searcher, other} {
			p.Signal(syscall.SIGTERM)
			_ = p.Exited(10 * time.Second)
		}
	}
	b.ReportMetric(float64(conn.Microseconds())/1e3/float64(b.N), "ms/first-conn")
	b.ReportMetric(float64(msg.Microseconds())/1e3/float64(b.N), "ms/first-msg")
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
