package main_test

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// TestChainReachesAcrossTheRoom is issue 15's chain: Bob and Carol each
// start with --peer to Alice only. Bob learns Carol's addresses from her
// signed peer record in the lobby's presence (PROTOCOL.md §7a), so his
// first DM to her, by nick, is delivered without a manual /connect, and
// so is a file sent to her by nick.
func TestChainReachesAcrossTheRoom(t *testing.T) {
	_, readyA := startPeer(t, "alice")
	addrA := firstAddr(t, readyA)
	b, _ := startPeer(t, "bob", "--peer", addrA)
	c, readyC := startPeer(t, "carol", "--peer", addrA)
	idC := readyC.Str("peer_id")
	// Carol's presence reaches Bob through Alice.
	b.Find(30*time.Second, "presence", func(e proctest.Event) bool { return e.Str("peer_id") == idC && e["online"] == true })

	start := time.Now()
	b.Send("/msg carol hi carol")
	queued := b.Wait(10*time.Second, "dm_status", func(e proctest.Event) bool { return e.Str("to") == idC })
	b.Wait(10*time.Second, "dm_status", dmStatus(queued.Str("id"), "delivered"))
	took := time.Since(start)
	got := c.Wait(10*time.Second, "dm", nil)
	if got.Str("text") != "hi carol" {
		t.Fatalf("carol got %v", got)
	}
	if took > 3*time.Second {
		t.Errorf("the first DM to a non-neighbour took %v (issue 15: within 3 s)", took)
	}
	t.Logf("first DM bob→carol through the room's addresses: delivered in %v", took)

	// The path is reported: Bob now holds a direct (loopback: lan)
	// connection to Carol.
	b.Send("/whois carol")
	whois := b.Wait(10*time.Second, "info", func(e proctest.Event) bool {
		d, _ := e["data"].(map[string]any)
		return d != nil && d["peer_id"] == idC
	})
	if d := whois["data"].(map[string]any); d["path"] != "lan" {
		t.Errorf("/whois carol says path %v, want lan", d["path"])
	}

	path, hash := randomFile(t, t.TempDir(), "to-carol.bin", 20<<20)
	b.Send("/send carol " + path)
	offer := c.Wait(30*time.Second, "file_offer", nil)
	c.Send("/accept " + offer.Str("transfer_id"))
	done := c.Wait(120*time.Second, "file_done", nil)
	if fileHash(t, done.Str("path")) != hash {
		t.Fatalf("carol's file differs: %v", done)
	}
}
