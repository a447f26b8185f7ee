package rooms

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
)

// TestSkewedNodeTakesHonestSyncItems: a node whose clock is an hour
// behind sees honest items as sent in the future. Before its peers' lines
// tell it so, it refuses them as lies (what it can tell); once the room's
// authors agree that its clock is off, it judges items by the corrected
// clock: honest ones are stored, and one that is out of the window even
// so is refused without being held against the peer (errSyncSkip, not
// errSyncLie).
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
		err     error // nil, errSyncLie
	}{
		{"before any verdict: refused as a lie", 0, 0, 0, errSyncLie},
		{"two authors are not a verdict", 2, 0, 0, errSyncLie},
		{"verdict: honest item stored", 3, 0, 1, nil},
		{"verdict: an item an hour old stored", 3, -behind, 1, nil},
		{"verdict: future even by the room's clock: refused, no penalty", 3, 2 * behind, 0, nil},
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
			if got != tt.stored || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("stored %d, err %v; want %d, %v", got, err, tt.stored, tt.err)
			}
		})
	}
}
