package main_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// leaveShownWithin is the acceptance bound of issue 14: a peer that quits,
// by /quit, Ctrl-C or SIGTERM, is shown gone on the others within 2 s
// (the presence timeout, without a leaving announcement, is 90 s).
const leaveShownWithin = 2 * time.Second

// TestQuitIsShownAtOnce quits one of two peers in the same rooms in each
// way a user can, and checks that the other reports it gone (a presence
// event with online=false) in every room within leaveShownWithin.
func TestQuitIsShownAtOnce(t *testing.T) {
	cases := []struct {
		name string
		quit func(p *proctest.Peer)
	}{
		{"quit", func(p *proctest.Peer) { p.Send("/quit") }},
		{"sigint", func(p *proctest.Peer) { p.Signal(syscall.SIGINT) }},
		{"sigterm", func(p *proctest.Peer) { p.Signal(syscall.SIGTERM) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inRooms := []string{"--room", "dev", "--room", "lobby"}
			a, readyA := startPeer(t, "alice", inRooms...)
			b, readyB := startPeer(t, "bob", append(inRooms, "--peer", firstAddr(t, readyA))...)
			idB := readyB.Str("peer_id")
			bobIn := func(room string, online bool) func(proctest.Event) bool {
				return func(e proctest.Event) bool {
					return e.Str("room") == room && e.Str("peer_id") == idB && e["online"] == online
				}
			}
			rooms := []string{"dev", "lobby"}
			for _, room := range rooms {
				a.Find(30*time.Second, "presence", bobIn(room, true))
			}

			start := time.Now()
			tc.quit(b)
			for _, room := range rooms {
				// Find: the rooms may report in any order.
				a.Find(10*time.Second, "presence", bobIn(room, false))
				if took := time.Since(start); took > leaveShownWithin {
					t.Fatalf("alice showed bob gone from %s %v after he quit, want within %v",
						room, took.Round(time.Millisecond), leaveShownWithin)
				}
			}
			t.Logf("bob shown gone in %v", time.Since(start).Round(time.Millisecond))
			if err := b.Exited(5 * time.Second); err != nil {
				t.Fatalf("bob's exit: %v; stderr:\n%s", err, b.Stderr())
			}
		})
	}
}
