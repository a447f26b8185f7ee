package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
)

// leaveShownWithin is how soon the others must show a closed member gone
// (the end-to-end acceptance is 2 s for a whole process).
const leaveShownWithin = 2 * time.Second

// TestCloseAnnouncesLeaving closes a member's service and then its host,
// as node.Close does, and checks that the other member shows it gone at
// once, long before the presence timeout. The "constructor ctx ended"
// case is what a signal did: the ctx given to New (main's signal context)
// ends before Close runs.
func TestCloseAnnouncesLeaving(t *testing.T) {
	tests := []struct {
		name      string
		cancelCtx bool // cancel the ctx given to New before Close
	}{
		{"close", false},
		{"constructor ctx ended", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The timeout is far beyond the wait: only the leaving
			// announcement can make bob see alice gone.
			slowTimeout := func(c *Config) { c.PresenceTimeout = 10 * time.Minute }
			actx, acancel := context.WithCancel(context.Background())
			t.Cleanup(acancel)
			a := newNodeCtx(t, actx, "alice", slowTimeout)
			b := newNode(t, "bob", slowTimeout)
			connect(t, a, b)
			ctx := ctxT(t)
			for _, n := range []*tnode{a, b} {
				if err := n.svc.Join(ctx, "lobby"); err != nil {
					t.Fatal(err)
				}
			}
			aliceIs := func(online bool) func(events.Event) bool {
				return func(e events.Event) bool {
					p, ok := e.(events.Presence)
					return ok && p.Room == "lobby" && p.PeerID == a.id() && p.Online == online
				}
			}
			b.events.wait(t, "alice online", aliceIs(true))

			if tt.cancelCtx {
				acancel()
			}
			start := time.Now()
			if err := a.svc.Close(); err != nil {
				t.Fatal(err)
			}
			if err := a.h.Close(); err != nil {
				t.Fatal(err)
			}
			b.events.wait(t, "alice gone", aliceIs(false))
			if d := time.Since(start); d > leaveShownWithin {
				t.Fatalf("alice shown gone %v after Close, want within %v", d.Round(time.Millisecond), leaveShownWithin)
			}
		})
	}
}
