package main_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/internal/proctest"
)

// TestManyDMsPacedToConnectedPeer: 300 /msg lines at once to a connected
// peer (issue 18: 129 arrived at once, the rest 5 minutes later) all
// arrive, in order, within twice the time the recipient's documented rate
// (burst 128, then 10/s) allows.
func TestManyDMsPacedToConnectedPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 20 s")
	}
	const n = 300
	allowed := time.Duration(float64(n-dm.DefaultPeerBurst) / dm.DefaultPeerRate * float64(time.Second))
	a, readyA := startPeer(t, "alice")
	b, readyB := startPeer(t, "bob", "--peer", firstAddr(t, readyA))
	bobID := readyB.Str("peer_id")
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == bobID })

	start := time.Now()
	for i := range n {
		a.Send(fmt.Sprintf("/msg %s m%03d", bobID, i))
	}
	// Alice's side: every message delivered (reading her events, so
	// that her output never blocks).
	delivered := 0
	a.Wait(2*allowed+time.Second, "dm_status", func(e proctest.Event) bool {
		if e.Str("state") == "delivered" && e.Str("reason") == "" {
			delivered++
		}
		return delivered == n
	})
	took := time.Since(start)
	if took > 2*allowed {
		t.Fatalf("%d DMs took %v, the rate allows %v; want at most %v", n, took, allowed, 2*allowed)
	}
	// Bob's side: each shown once, in order.
	var got []string
	for range n {
		got = append(got, b.Wait(5*time.Second, "dm", nil).Str("text"))
	}
	for i, text := range got {
		if want := fmt.Sprintf("m%03d", i); text != want {
			t.Fatalf("dm %d is %q, want %q (order)", i, text, want)
		}
	}
	t.Logf("%d DMs in %v (the rate allows %v)", n, took, allowed)
}
