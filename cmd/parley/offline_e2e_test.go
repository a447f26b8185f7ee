package main_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// startServe runs `parley serve` on loopback (its mailbox holder is on by
// default) and returns it with its first address.
func startServe(t *testing.T) (*proctest.Peer, string) {
	t.Helper()
	s := proctest.StartCommand(t, bin, "serve", "serve", "--data-dir", filepath.Join(t.TempDir(), "serve"),
		"--listen", "/ip4/127.0.0.1/tcp/0")
	ready := s.Wait(20*time.Second, "ready", nil)
	return s, firstAddr(t, ready)
}

// TestOfflineDeliveryThroughServe: alice writes 50 DMs to carol, who is
// offline, and quits; carol comes back connected only to the serve node
// and gets all 50 within 5 s, once each, in order; alice comes back
// connected only to the serve node and sees all 50 delivered via it.
func TestOfflineDeliveryThroughServe(t *testing.T) {
	_, addrS := startServe(t)
	serveID := addrS[strings.LastIndex(addrS, "/")+1:]
	alice, carol := newFixedPeer(t, "alice"), newFixedPeer(t, "carol")

	// Carol has been online with the serve node before: it holds her
	// mailbox record.
	c, readyC := carol.start(t, "--peer", addrS)
	c.Find(20*time.Second, "mailbox_pickup", func(e proctest.Event) bool { return e.Str("holder") == serveID })
	c.Send("/quit")
	if err := c.Exited(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	carolID := readyC.Str("peer_id")

	a, _ := alice.start(t, "--peer", addrS)
	a.Find(20*time.Second, "mailbox_pickup", func(e proctest.Event) bool { return e.Str("holder") == serveID })
	const n = 50
	for i := range n {
		a.Send(fmt.Sprintf("/msg %s offline note %d", carolID, i))
	}
	queued := waitN(t, a, 10*time.Second, "dm_status", n, func(e proctest.Event) bool {
		return e.Str("state") == "queued" && e.Str("reason") == ""
	})
	ids := make([]string, n)
	for i, e := range queued {
		ids[i] = e.Str("id")
	}
	for _, e := range waitN(t, a, 30*time.Second, "dm_status", n, func(e proctest.Event) bool { return e.Str("reason") == "deposited" }) {
		if e.Str("via") != serveID {
			t.Fatalf("deposited via %q, want the serve node", e.Str("via"))
		}
	}
	a.Send("/quit")
	if err := a.Exited(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	c, _ = carol.start(t, "--peer", addrS)
	start := time.Now()
	for i := range n {
		m := c.Wait(5*time.Second, "dm", nil)
		if m.Str("id") != ids[i] || m.Str("text") != "offline note "+strconv.Itoa(i) || m.Str("via") != serveID {
			t.Fatalf("dm %d: %v", i, m)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("50 messages took %v, want at most 5 s", d)
	}
	t.Logf("carol had all %d messages %v after her ready event", n, time.Since(start))
	// Her receipts are deposited with the serve node once the pickup is
	// reported; she leaves before alice comes back.
	c.Find(10*time.Second, "mailbox_pickup", func(e proctest.Event) bool { return e.Str("holder") == serveID && items(e) >= n })
	c.Send("/quit")
	if err := c.Exited(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	a, _ = alice.start(t, "--peer", addrS)
	delivered := map[string]int{}
	for _, e := range waitN(t, a, 30*time.Second, "dm_status", n, func(e proctest.Event) bool { return e.Str("state") == "delivered" }) {
		if e.Str("via") != serveID {
			t.Fatalf("delivered via %q, want the serve node", e.Str("via"))
		}
		delivered[e.Str("id")]++
	}
	for _, id := range ids {
		if delivered[id] != 1 {
			t.Fatalf("%s delivered %d times", id, delivered[id])
		}
	}
	// Nothing twice on carol's side either.
	seen := map[string]int{}
	for _, e := range c.Seen() {
		if e.Type() == "dm" {
			seen[e.Str("id")]++
		}
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("carol showed %s %d times", id, k)
		}
	}
}

// waitN waits, at most d in all, until p has emitted n events of type typ
// that match (counting those already seen), and returns them in order.
func waitN(t *testing.T, p *proctest.Peer, d time.Duration, typ string, n int, match func(proctest.Event) bool) []proctest.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var got []proctest.Event
		for _, e := range p.Seen() {
			if e.Type() == typ && match(e) {
				got = append(got, e)
			}
		}
		if len(got) >= n {
			return got[:n]
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: %d of %d %s events within %v", p.Name, len(got), n, typ, d)
		}
		p.Wait(left, typ, match)
	}
}

// items is the items field of a mailbox_pickup event.
func items(e proctest.Event) int { f, _ := e["items"].(float64); return int(f) }
