package rooms

import (
	"context"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
)

func newID(t *testing.T) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestLineBeforeItsKeyIsDelivered: B is a member of A's private room. A
// rotates and at once says a line in the new epoch; B receives the line
// before the key (its members exchanges are held back), cannot open it,
// and shows it live, once, when the key comes.
func TestLineBeforeItsKeyIsDelivered(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var gate chan struct{} // non-nil: B's exchanges wait until it closes
	hold := func() {
		mu.Lock()
		g := gate
		mu.Unlock()
		if g != nil {
			<-g
		}
	}
	open := func() {
		mu.Lock()
		defer mu.Unlock()
		if gate != nil {
			close(gate)
			gate = nil
		}
	}
	t.Cleanup(open)
	a := newEpochNode(t, "alice")
	keys := newLog[uint64]()
	bn := newNode(t, "bob", func(c *Config) {
		c.testHookEpochKey = func(_ string, e uint64) { keys.add(e) }
		c.testHookTakeMembers = hold
	})
	b := &epochNode{tnode: bn, keys: keys}
	connect(t, a.tnode, b.tnode)
	invite, err := a.svc.Create(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.JoinInvite(ctx, invite); err != nil {
		t.Fatal(err)
	}
	waitTopicPeers(t, "team", a.tnode, b.tnode)
	b.waitChange("add", b.id())

	mu.Lock()
	gate = make(chan struct{})
	mu.Unlock()
	if err := a.svc.Rotate(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	const text = "said before bob had the key"
	if _, err := a.svc.Send(ctx, "team", text); err != nil {
		t.Fatal(err)
	}
	b.waitVerdict("the line, unreadable yet", func(v verdictEntry) bool {
		return v.from == a.id() && v.v.reason == reasonEpochKey
	})
	open()
	b.waitKey(1)
	if m := b.waitMessage(text); m.CaughtUp {
		t.Errorf("the line was caught up by the sync, want it delivered from the hold as live")
	}
	if _, err := a.svc.Send(ctx, "team", "after"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage("after")
	n := 0
	for _, m := range b.messages() {
		if m.Text == text {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("bob shows the line %d times, want 1", n)
	}
}

// TestHoldBounds: the hold keeps at most holdPerAuthor messages of one
// author and holdMax in all; a crowd of authors cannot push out an
// honest author's single message while one of them holds more; epochs
// already held, or too far ahead, are not kept.
func TestHoldBounds(t *testing.T) {
	ctx := context.Background()
	a := newNode(t, "alice", nil)
	if _, err := a.svc.Create(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	r, err := a.svc.joined("team")
	if err != nil {
		t.Fatal(err)
	}
	var sizedOf func(from peer.ID, e uint64, n int) *pubsub.Message
	msgOf := func(from peer.ID, e uint64) *pubsub.Message {
		return sizedOf(from, e, 0)
	}
	sizedOf = func(from peer.ID, e uint64, n int) *pubsub.Message {
		data, err := proto.Marshal(&pb.Sealed{Epoch: e, Ciphertext: make([]byte, n)})
		if err != nil {
			t.Fatal(err)
		}
		return &pubsub.Message{Message: &pubsubpb.Message{From: []byte(from), Data: data}}
	}
	now := time.Now()
	for range 40 { // 40 authors × 60 KiB: over holdMaxBytes
		a.svc.keep(r, sizedOf(newID(t), 1, 60<<10), reasonEpochKey, now)
	}
	if h := &r.membership.hold; h.bytes > holdMaxBytes || len(h.take(now)) > holdMaxBytes/(60<<10) {
		t.Errorf("hold keeps %d bytes, want at most %d", h.bytes, holdMaxBytes)
	}
	honest := newID(t)
	a.svc.keep(r, msgOf(honest, 1), reasonEpochKey, now)
	flood := newID(t)
	for range 3 * holdPerAuthor {
		a.svc.keep(r, msgOf(flood, 1), reasonEpochKey, now)
	}
	for range 2 * holdMax {
		a.svc.keep(r, msgOf(newID(t), 1), reasonEpochKey, now)
	}
	a.svc.keep(r, msgOf(newID(t), 1+holdAhead+1), reasonEpochKey, now)
	a.svc.keep(r, msgOf(newID(t), 1), reasonReplay, now)
	h := &r.membership.hold
	h.mu.Lock()
	n, perFlood := len(h.msgs), 0
	for _, x := range h.msgs {
		if x.author == flood {
			perFlood++
		}
	}
	h.mu.Unlock()
	if n != holdMax {
		t.Errorf("hold keeps %d messages, want %d", n, holdMax)
	}
	if perFlood > holdPerAuthor {
		t.Errorf("one author holds %d, want at most %d", perFlood, holdPerAuthor)
	}
	if got := h.take(now.Add(holdTTL + time.Second)); len(got) != 0 {
		t.Errorf("%d messages outlived holdTTL", len(got))
	}
}
