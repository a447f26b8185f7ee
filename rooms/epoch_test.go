package rooms

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

// epochNode is a test node that records the epoch keys it installs.
type epochNode struct {
	*tnode
	keys *broadcastLog[uint64]
}

func newEpochNode(t *testing.T, nick string) *epochNode {
	t.Helper()
	keys := newLog[uint64]()
	n := newNode(t, nick, func(c *Config) {
		c.testHookEpochKey = func(_ string, e uint64) { keys.add(e) }
	})
	return &epochNode{tnode: n, keys: keys}
}

// waitKey waits until n holds the key of epoch e.
func (n *epochNode) waitKey(e uint64) {
	n.t.Helper()
	n.keys.wait(n.t, "epoch key", func(got uint64) bool { return got == e })
}

// waitChange waits for n's membership event of op about subject.
func (n *tnode) waitChange(op string, subject peer.ID) events.Membership {
	n.t.Helper()
	e := n.events.wait(n.t, "membership "+op, func(e events.Event) bool {
		m, ok := e.(events.Membership)
		return ok && m.Op == op && m.Subject == subject
	})
	return e.(events.Membership)
}

// sealedAs builds a chat line in room as n, sealed in epoch e with the
// key n holds (whatever n's log says), signed by n: what a removed member
// that keeps every old key could publish with a modified client.
func sealedAs(t *testing.T, n *tnode, room string, e uint64, text string) *pubsubpb.Message {
	t.Helper()
	r, err := n.svc.joined(room)
	if err != nil {
		t.Fatal(err)
	}
	env, err := newEnvelope(pb.Kind_KIND_TEXT, "mallory", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	env.text = text
	plain, err := env.marshal()
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	if e == 0 {
		nonce, ct, err := seal(&r.keys, n.id(), plain)
		if err != nil {
			t.Fatal(err)
		}
		data, _ = proto.Marshal(&pb.Sealed{Nonce: nonce, Ciphertext: ct})
	} else {
		m := r.membership
		m.mu.Lock()
		k := m.keys[e]
		m.mu.Unlock()
		if k == nil {
			t.Fatalf("%s holds no key of epoch %d", n.id(), e)
		}
		if data, err = sealEpoch(k, r.topicName, n.id(), e, plain); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := signMessage(n.key, n.id(), r.topicName, data)
	if err != nil {
		t.Fatal(err)
	}
	var msg pubsubpb.Message
	if err := proto.Unmarshal(raw, &msg); err != nil {
		t.Fatal(err)
	}
	return &msg
}

// TestRemovedMemberReadsAndWritesNothing: A creates a room, B and C join
// by invite and are added; all talk; A rotates (all hold epoch 1), then
// removes C (epoch 2). C, still subscribed and holding the room key and
// the epoch 1 key, opens nothing sent afterwards, and A and B refuse what
// it posts in any epoch it holds. B reads everything. Then B goes offline,
// A rotates again, and B, back, gets the new key and reads the new epoch,
// including what was said while it was away.
func TestRemovedMemberReadsAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	a, b, c := newEpochNode(t, "alice"), newEpochNode(t, "bob"), newEpochNode(t, "carol")
	connect(t, a.tnode, b.tnode, c.tnode)
	invite, err := a.svc.Create(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	a.waitChange("create", a.id())
	for _, n := range []*epochNode{b, c} {
		if _, err := n.svc.JoinInvite(ctx, invite); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "team", a.tnode, b.tnode, c.tnode)
	// A, the admin, adds each member that proves the room key.
	for _, n := range []*epochNode{a, b, c} {
		n.waitChange("add", b.id())
		n.waitChange("add", c.id())
	}
	if _, err := a.svc.Send(ctx, "team", "epoch 0 from a"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage("epoch 0 from a")
	c.waitMessage("epoch 0 from a")

	if err := b.svc.Rotate(ctx, "team"); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("rotate by a member: %v, want ErrNotAdmin", err)
	}
	if err := a.svc.Rotate(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	b.waitKey(1)
	c.waitKey(1)
	if _, err := c.svc.Send(ctx, "team", "epoch 1 from c"); err != nil {
		t.Fatal(err)
	}
	a.waitMessage("epoch 1 from c")
	b.waitMessage("epoch 1 from c")

	if err := a.svc.Kick(ctx, "team", c.id()); err != nil {
		t.Fatal(err)
	}
	ev := b.waitChange("remove", c.id())
	if ev.By != a.id() || ev.Epoch != 2 {
		t.Fatalf("remove event %+v", ev)
	}
	b.waitKey(2)
	c.waitChange("remove", c.id()) // C learns that it was removed
	if c.keys.count(func(e uint64) bool { return e == 2 }) != 0 {
		t.Fatal("the removed member got the new epoch's key")
	}

	for _, tc := range []struct{ from *epochNode }{{a}, {b}} {
		text := "epoch 2 from " + *tc.from.nick.Load()
		if _, err := tc.from.svc.Send(ctx, "team", text); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*epochNode{a, b} {
			n.waitMessage(text)
		}
		// C received it on the topic and could not open it.
		c.waitVerdict("unreadable "+text, func(v verdictEntry) bool {
			return v.from == tc.from.id() && v.v.reason == reasonEpochKey
		})
	}
	// C's own client refuses; a modified one, sealing with every key C
	// still holds (the room key's epoch 0 and epoch 1), is refused by A
	// and B.
	if _, err := c.svc.Send(ctx, "team", "c after removal"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("send by the removed member: %v, want ErrNotMember", err)
	}
	for _, e := range []uint64{0, 1} {
		msg := sealedAs(t, c.tnode, "team", e, "forged")
		for _, n := range []*epochNode{a, b} {
			injectRPC(t, c.h, n.id(), msg)
			n.waitVerdict("removed member's post", func(v verdictEntry) bool {
				return v.from == c.id() && v.v.reason == reasonNotMember
			})
		}
	}
	for _, n := range []*epochNode{a, b, c} {
		for _, m := range n.messages() {
			if m.Text == "forged" || m.Text == "c after removal" {
				t.Fatalf("%s delivered %q", *n.nick.Load(), m.Text)
			}
		}
	}
	for _, m := range c.messages() {
		if m.Text == "epoch 2 from alice" || m.Text == "epoch 2 from bob" {
			t.Fatalf("the removed member read %q", m.Text)
		}
	}

	// B goes offline; A rotates and talks; B comes back.
	if err := b.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	_ = b.h.Close()
	if err := a.svc.Rotate(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Send(ctx, "team", "while b was away"); err != nil {
		t.Fatal(err)
	}
	b.restartHost()
	connect(t, a.tnode, b.tnode)
	b.waitKey(3)
	b.waitMessage("while b was away")
	if _, err := a.svc.Send(ctx, "team", "b is back"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage("b is back")
	if _, err := b.svc.Send(ctx, "team", "b in epoch 3"); err != nil {
		t.Fatal(err)
	}
	a.waitMessage("b in epoch 3")
}

// restartHost starts the host, database and service again after they
// were closed, with the same identity and database.
func (n *tnode) restartHost() {
	n.t.Helper()
	n.h = testnet.NewHost(n.t, libp2p.Identity(n.key))
	n.openDB()
	n.start()
}
