package main_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// TestFailedPeersReportedInOneLine: a --peer behind a closed port and a
// --peer whose address answers with another key are each reported within
// seconds as one peer_dial_failed event naming what happened, and again
// on the retry; /connect to a closed port answers with one line.
func TestFailedPeersReportedInOneLine(t *testing.T) {
	live, readyLive := startPeer(t, "live")
	_ = live
	_, readyOther := startPeer(t, "other")
	liveAddr := firstAddr(t, readyLive)
	otherID := readyOther.Str("peer_id")
	// The live peer's address with another peer's ID.
	wrong := liveAddr[:strings.LastIndex(liveAddr, "/p2p/")] + "/p2p/" + otherID
	closed := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", freeTCPPort(t), otherID)
	short := func(id string) string { return id[:4] + "…" + id[len(id)-4:] }

	cases := []struct {
		name, peer, reason, says string
	}{
		{"closed port", closed, "refused", "refused the connection"},
		{"wrong peer id", wrong, "wrong_peer", "is " + short(readyLive.Str("peer_id")) + ", not " + short(otherID)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p, _ := startPeer(t, "dialer", "--peer", tc.peer)
			for i := range 2 { // the first failure and its retry
				e := p.Find(10*time.Second, "peer_dial_failed", nil)
				if i == 1 {
					e = p.Wait(10*time.Second, "peer_dial_failed", nil)
				}
				if e.Str("peer_id") != otherID || e.Str("reason") != tc.reason || !strings.Contains(e.Str("error"), tc.says) ||
					strings.ContainsAny(e.Str("error"), "\n\\") || !strings.Contains(e.Str("addr"), "127.0.0.1:") {
					t.Fatalf("attempt %d: %v: want reason %s saying %q in one line", i+1, e, tc.reason, tc.says)
				}
				if i == 0 {
					if d := time.Since(start); d > 10*time.Second {
						t.Errorf("first failure reported after %v", d)
					}
				}
			}
		})
	}

	t.Run("connect to a closed port", func(t *testing.T) {
		p, _ := startPeer(t, "connector")
		start := time.Now()
		p.Send("/connect " + closed)
		e := p.Wait(10*time.Second, "error", nil)
		msg := e.Str("error")
		if !strings.Contains(msg, "refused the connection") || strings.ContainsAny(msg, "\n\\") || strings.Contains(msg, "x0a") {
			t.Fatalf("/connect error %q: want one line saying refused", msg)
		}
		t.Logf("/connect answered in %v: %s", time.Since(start).Round(time.Millisecond), msg)
	})
}

// TestQueuedDMSaysWhy: a DM to a peer that is offline (its address known
// from a connection earlier in the run, nothing listening there now) says
// why it waits.
func TestQueuedDMSaysWhy(t *testing.T) {
	a, readyA := startPeer(t, "alice")
	b, readyB := startPeer(t, "bob", "--peer", firstAddr(t, readyA))
	idB := readyB.Str("peer_id")
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
	b.Send("/quit")
	if err := b.Exited(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	a.Find(20*time.Second, "peer_disconnected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })

	a.Send("/msg " + idB + " are you there?")
	q := a.Wait(10*time.Second, "dm_status", func(e proctest.Event) bool { return e.Str("state") == "queued" })
	why := a.Wait(10*time.Second, "dm_status", func(e proctest.Event) bool { return e.Str("id") == q.Str("id") && e.Str("reason") != "" })
	if why.Str("state") != "queued" || why.Str("reason") != "dial_failed" || !strings.Contains(why.Str("detail"), "127.0.0.1:") {
		t.Fatalf("waiting dm_status %v: want queued, dial_failed, the address", why)
	}
}
