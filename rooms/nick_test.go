package rooms

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/testnet"
)

// nickShared compares nicks as identity.SameNick does (as trust pins
// them), not only case-insensitively.
func TestNickSharedComparesAsTrustPins(t *testing.T) {
	newID := func() peer.ID {
		id, err := peer.IDFromPrivateKey(testnet.NewKey(t))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	self, author, other := newID(), newID(), newID()
	tests := []struct {
		name            string
		member, claimed string
		shared          bool
	}{
		{"same", "alice", "alice", true},
		{"case", "alice", "ALICE", true},
		{"full width", "alice", "ａｌｉｃｅ", true},
		{"full width member", "ａｌｉｃｅ", "Alice", true},
		{"ligature", "ﬁona", "fiona", true},
		{"other nick", "alice", "alicia", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoom("lobby")
			r.observe(other, tc.member, false, time.Now())
			if got := r.nickShared(author, self, tc.claimed, "carol"); got != tc.shared {
				t.Errorf("member %q, author claims %q: nickShared = %v, want %v", tc.member, tc.claimed, got, tc.shared)
			}
			// This node's own nick counts the same way.
			if got := newRoom("lobby").nickShared(author, self, tc.claimed, tc.member); got != tc.shared {
				t.Errorf("self %q, author claims %q: nickShared = %v, want %v", tc.member, tc.claimed, got, tc.shared)
			}
		})
	}
}

// A full-width "ａｌｉｃｅ" pins as the same nick as "alice" in trust, so a
// room flags both as shared and shows their fingerprints.
func TestNickSharedFullWidth(t *testing.T) {
	a, w, c := newNode(t, "alice", nil), newNode(t, "ａｌｉｃｅ", nil), newNode(t, "carol", nil)
	connect(t, a, w, c)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, w, c} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, w, c)
	online := func(n *tnode, who peer.ID) {
		n.events.wait(t, "member online", func(e events.Event) bool {
			p, ok := e.(events.Presence)
			return ok && p.PeerID == who && p.Online
		})
	}
	online(c, a.id())
	online(c, w.id())
	online(a, w.id())
	online(w, a.id())

	for _, from := range []*tnode{a, w} {
		text := "hello from " + *from.nick.Load()
		sent, err := from.svc.Send(ctx, "lobby", text)
		if err != nil {
			t.Fatal(err)
		}
		if !sent.NickShared {
			t.Errorf("%q's own message not flagged: %+v", *from.nick.Load(), sent)
		}
		for _, to := range []*tnode{a, w, c} {
			if to == from {
				continue
			}
			m := to.waitMessage(text)
			if !m.NickShared || m.Fingerprint != identity.ShortFingerprint(from.id()) {
				t.Errorf("%q's message at %q not flagged: %+v", *from.nick.Load(), *to.nick.Load(), m)
			}
		}
	}
}
