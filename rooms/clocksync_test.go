package rooms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
)

// TestSkewedNodeTakesHonestSyncItems: a node whose clock is an hour
// behind sees honest items as sent in the future. It never takes them for
// lies (errSyncSkip, not errSyncLie: its own clock may be the error), and
// each such item counts as its author's clock sample; once the room's
// authors agree that its clock is off (3 of them, the item's author
// included), it judges items by the corrected clock: honest ones are
// stored, and one that is out of the window even so is skipped.
func TestSkewedNodeTakesHonestSyncItems(t *testing.T) {
	const behind = time.Hour
	n := newNode(t, "bob", func(c *Config) {
		c.testWallClock = func() time.Time { return time.Now().Add(-behind) }
	})
	ctx := ctxT(t)
	if err := n.svc.Join(ctx, "pub"); err != nil {
		t.Fatal(err)
	}
	pub, _ := n.svc.joined("pub")
	author := testnet.NewKey(t)
	aid := peerIDOf(t, author)
	item := func(text string, sentAt time.Time) []byte {
		env, err := newEnvelope(pb.Kind_KIND_TEXT, "alice", sentAt)
		if err != nil {
			t.Fatal(err)
		}
		env.text = text
		plain, _ := env.marshal()
		raw, err := signMessage(author, aid, pub.topicName, plain)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name    string
		samples int           // authors whose lines said the clock is behind
		sentAt  time.Duration // from the true time
		stored  int
	}{
		{"alone: skipped, no lie", 0, 0, 0},
		{"two authors are not a verdict: skipped", 1, 0, 0},
		{"the item's author makes the third: stored", 2, 0, 1},
		{"verdict: honest item stored", 3, 0, 1},
		{"verdict: an item an hour old stored", 3, -behind, 1},
		{"verdict: future even by the room's clock: refused, no penalty", 3, 2 * behind, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.svc.clock = clockWatch{} // fresh samples
			now := n.svc.wallNow()
			for a := range tt.samples {
				n.svc.observeClock(peer.ID(rune('a'+a)), now.Add(behind), now)
			}
			raw := item("line "+string(rune('0'+i)), time.Now().Add(tt.sentAt))
			got, err := n.svc.acceptSynced(pub, pb.SyncSet_SYNC_SET_HISTORY, [][]byte{raw}, nil)
			if got != tt.stored || err != nil {
				t.Fatalf("stored %d, err %v; want %d, no error", got, err, tt.stored)
			}
		})
	}
}

// TestSkewedNodeSyncsWithHonestPeers: a node whose clock is a day behind
// joins a room after three honest members wrote in it, and learns the
// lines by the sync only. Before the fix it took the first honest item
// for a lie and penalised each peer that served it; now no peer is
// penalised on either side, the user is warned (clock_skew), and once the
// items told it that its clock is off, it takes the lines in.
func TestSkewedNodeSyncsWithHonestPeers(t *testing.T) {
	const behind = 24 * time.Hour
	ctx := ctxT(t)
	honest := []*tnode{newNode(t, "alice", nil), newNode(t, "carol", nil), newNode(t, "dave", nil)}
	connect(t, honest...)
	for _, n := range honest {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", honest...)
	const perAuthor = 3
	for i := range perAuthor {
		for _, n := range honest {
			if _, err := n.svc.Send(ctx, "lobby", fmt.Sprintf("line %d from %s", i, *n.nick.Load())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range honest {
		n.events.waitCount(t, "lines at every honest node", len(honest)*perAuthor, func(e events.Event) bool {
			m, ok := e.(events.Message)
			return ok && strings.HasPrefix(m.Text, "line ")
		})
	}

	skewed := newNode(t, "bob", func(c *Config) {
		c.testWallClock = func() time.Time { return time.Now().Add(-behind) }
	})
	connect(t, append([]*tnode{skewed}, honest...)...)
	if err := skewed.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	ev := skewed.events.wait(t, "clock_skew warning from the synced items", func(e events.Event) bool {
		ev, ok := e.(events.Error)
		return ok && ev.Code == events.ErrClockSkew
	}).(events.Error)
	if !strings.Contains(ev.Error, "behind the clocks of") {
		t.Fatalf("warning %q", ev.Error)
	}
	// The lines it skipped before the verdict come with a later session
	// (each new topic peer, and the periodic rounds).
	skewed.events.waitCount(t, "honest lines taken in by the sync", len(honest)*perAuthor, func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && strings.HasPrefix(m.Text, "line ") && m.CaughtUp
	})
	for _, n := range honest {
		if skewed.svc.penalised(n.id()) {
			t.Errorf("the skewed node penalised honest %s", *n.nick.Load())
		}
		if n.svc.penalised(skewed.id()) {
			t.Errorf("honest %s penalised the skewed node", *n.nick.Load())
		}
	}
	if w := clockWarnings(skewed); len(w) != 1 {
		t.Fatalf("warned %d times", len(w))
	}
}
