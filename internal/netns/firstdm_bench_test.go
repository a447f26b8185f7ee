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

// BenchmarkFirstDM measures the time from /msg to the sender's
// `delivered` for the first DM to a peer the sender holds no connection
// to, found through the overlay (overlay.Host.Reach), against a same-run
// baseline: a DM to a peer it is already connected to. Each iteration
// starts fresh processes with new identities; the two measurements of an
// iteration alternate in order, and the metric ratio is computed from the
// sums.
//
//   - chain-loopback: Alice, and Bob and Carol each with --peer Alice only,
//     all in the lobby, on the machine's loopback. Bob's first DM to Carol
//     uses the addresses in her signed peer record; the baseline is Bob's
//     first DM to Alice, his neighbour.
//   - nat-relay: Alice and Bob behind NATs with a public serve node (the
//     hole punching lab, PublicNATs), in rooms of their own so that no
//     rendezvous connects them. Bob's first DM to Alice finds her through
//     the serve node's DHT and reaches her through its relay (hole
//     punching may follow); the baseline is his next DM, on the open
//     connection.
//
// Run as root:
//
//	PROCTEST_NORACE=1 go test -run '^$' -bench FirstDM -benchtime 5x -v ./internal/netns/
func BenchmarkFirstDM(b *testing.B) {
	b.Run("chain-loopback", func(b *testing.B) {
		var first, base time.Duration
		for i := 0; i < b.N; i++ {
			alice := proctest.Start(b, bin, "alice", append([]string{"--data-dir", b.TempDir(), "--nick", "alice"}, proctest.Loopback()...)...)
			readyA := alice.Wait(readyWait, "ready", nil)
			addrA := firstLoopback(b, readyA)
			bob := proctest.Start(b, bin, "bob", append([]string{"--data-dir", b.TempDir(), "--nick", "bob", "--peer", addrA}, proctest.Loopback()...)...)
			bob.Wait(readyWait, "ready", nil)
			carol := proctest.Start(b, bin, "carol", append([]string{"--data-dir", b.TempDir(), "--nick", "carol", "--peer", addrA}, proctest.Loopback()...)...)
			idC := carol.Wait(readyWait, "ready", nil).Str("peer_id")
			bob.Find(connectWait, "presence", func(e proctest.Event) bool { return e.Str("peer_id") == idC && e["online"] == true })
			bob.Find(connectWait, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == readyA.Str("peer_id") })
			var f, d time.Duration
			if i%2 == 0 {
				f = timeDM(b, bob, idC, "first to carol")
				d = timeDM(b, bob, readyA.Str("peer_id"), "first to alice")
			} else {
				d = timeDM(b, bob, readyA.Str("peer_id"), "first to alice")
				f = timeDM(b, bob, idC, "first to carol")
			}
			first += f
			base += d
			b.Logf("iteration %d: non-neighbour %v, neighbour %v", i, f.Round(time.Microsecond), d.Round(time.Microsecond))
			stopAll(alice, bob, carol)
		}
		report(b, first, base, "non-neighbour", "neighbour")
	})
	b.Run("nat-relay", func(b *testing.B) {
		lab := netns.New(b)
		n := lab.PublicNATs(false)
		_, hub := serve(b, n.Public, n.PublicAddr)
		hub = strings.Replace(hub, "/tcp/4747/", "/udp/4747/quic-v1/", 1)
		var first, base time.Duration
		for i := 0; i < b.N; i++ {
			a, idA := chat(b, n.A, fmt.Sprintf("alice%d", i), "--no-mdns", "--bootstrap", hub, "--room", fmt.Sprintf("a%d", i))
			a.Find(2*connectWait, "reachability", func(e proctest.Event) bool {
				rs, _ := e["relay_addrs"].([]any)
				return len(rs) > 0
			})
			bp, _ := chat(b, n.B, fmt.Sprintf("bob%d", i), "--no-mdns", "--bootstrap", hub, "--room", fmt.Sprintf("b%d", i))
			bp.Find(2*connectWait, "reachability", func(e proctest.Event) bool {
				rs, _ := e["relays"].([]any)
				return len(rs) > 0 // connected to the serve node
			})
			f := timeDM(b, bp, idA, "first")
			d := timeDM(b, bp, idA, "second")
			first += f
			base += d
			b.Logf("iteration %d: first (relay) %v, on the open connection %v", i, f.Round(time.Microsecond), d.Round(time.Microsecond))
			stopAll(a, bp)
		}
		report(b, first, base, "first-relayed", "connected")
	})
}

// timeDM sends a DM from p to peer id and returns the time until p shows
// it delivered.
func timeDM(b *testing.B, p *proctest.Peer, id, text string) time.Duration {
	b.Helper()
	t0 := time.Now()
	p.Send("/msg " + id + " " + text)
	st := p.Wait(connectWait, "dm_status", func(e proctest.Event) bool { return e.Str("to") == id })
	p.Find(connectWait, "dm_status", func(e proctest.Event) bool {
		return e.Str("id") == st.Str("id") && e.Str("state") == "delivered"
	})
	return time.Since(t0)
}

func stopAll(ps ...*proctest.Peer) {
	for _, p := range ps {
		p.Signal(syscall.SIGTERM)
		_ = p.Exited(10 * time.Second)
	}
}

func report(b *testing.B, first, base time.Duration, firstName, baseName string) {
	b.ReportMetric(float64(first.Microseconds())/1e3/float64(b.N), "ms/"+firstName)
	b.ReportMetric(float64(base.Microseconds())/1e3/float64(b.N), "ms/"+baseName)
	if base > 0 {
		b.ReportMetric(float64(first)/float64(base), "ratio")
	}
}

// firstLoopback returns the ready event's first 127.0.0.1 address.
func firstLoopback(b *testing.B, ready proctest.Event) string {
	b.Helper()
	return addrOn(b, ready, "127.0.0.1")
}
