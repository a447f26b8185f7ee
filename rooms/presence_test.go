package rooms

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
)

func TestPresence(t *testing.T) {
	fast := func(c *Config) {
		c.PresenceInterval = 100 * time.Millisecond
		c.PresenceTimeout = 600 * time.Millisecond
	}
	a, b := newNode(t, "alice", fast), newNode(t, "bob", fast)
	connect(t, a, b)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	bobIs := func(nick string, online bool) func(events.Event) bool {
		return func(e events.Event) bool {
			return e == events.Presence{Room: "lobby", PeerID: b.id(), Nick: nick, Online: online}
		}
	}
	a.events.wait(t, "bob online", bobIs("bob", true))
	who, err := a.svc.Who("lobby")
	if err != nil {
		t.Fatal(err)
	}
	if len(who) != 2 || !who[0].Self || who[0].PeerID != a.id() || who[0].Nick != "alice" ||
		who[1].PeerID != b.id() || who[1].Nick != "bob" || !who[1].Online ||
		who[1].Fingerprint != identity.ShortFingerprint(b.id()) || time.Since(who[1].LastSeen) > 5*time.Second {
		t.Fatalf("Who = %+v", who)
	}
	if r := a.svc.Rooms(); len(r) != 1 || r[0].Members != 2 {
		t.Fatalf("Rooms = %+v", r)
	}

	// A nick change shows up with the next announcement.
	b.setNick("robert")
	a.events.wait(t, "bob renamed", bobIs("robert", true))

	// Leaving is announced at once (well before the timeout).
	left := time.Now()
	if err := b.svc.Leave("lobby"); err != nil {
		t.Fatal(err)
	}
	a.events.wait(t, "bob left", bobIs("robert", false))
	if d := time.Since(left); d > 500*time.Millisecond {
		t.Errorf("leaving took %v to show", d)
	}
	if err := b.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	a.events.waitCount(t, "bob back", 2, bobIs("robert", true))

	// A member that stops announcing (its host dies) is gone after the
	// timeout.
	_ = b.h.Close()
	a.events.waitCount(t, "bob timed out", 2, bobIs("robert", false))
	who, err = a.svc.Who("lobby")
	if err != nil {
		t.Fatal(err)
	}
	if len(who) != 2 || who[1].Online || who[1].Nick != "robert" {
		t.Fatalf("Who after timeout = %+v", who)
	}
	// No presence events about ourselves.
	if n := a.events.count(func(e events.Event) bool {
		p, ok := e.(events.Presence)
		return ok && p.PeerID == a.id()
	}); n != 0 {
		t.Fatalf("%d presence events about self", n)
	}
}

func TestNewcomerLearnsMembersQuickly(t *testing.T) {
	// With a long interval, a newcomer still learns the members from
	// their replies to its first announcement.
	slow := func(c *Config) {
		c.PresenceInterval = time.Minute
		c.PresenceTimeout = 3 * time.Minute
	}
	a, b, c := newNode(t, "alice", slow), newNode(t, "bob", slow), newNode(t, "carol", slow)
	connect(t, a, b, c)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, b)
	if err := c.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b} {
		c.events.wait(t, "member known", func(e events.Event) bool {
			p, ok := e.(events.Presence)
			return ok && p.PeerID == n.id() && p.Online
		})
	}
}

func TestNickShared(t *testing.T) {
	a, b, c := newNode(t, "sam", nil), newNode(t, "Sam", nil), newNode(t, "carol", nil)
	connect(t, a, b, c)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b, c} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, b, c)
	for _, n := range []*tnode{a, b} {
		c.events.wait(t, "sam online", func(e events.Event) bool {
			p, ok := e.(events.Presence)
			return ok && p.PeerID == n.id() && p.Online
		})
	}
	if _, err := a.svc.Send(ctx, "lobby", "which sam?"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.svc.Send(ctx, "lobby", "carol here"); err != nil {
		t.Fatal(err)
	}
	if m := c.waitMessage("which sam?"); !m.NickShared || m.Fingerprint != identity.ShortFingerprint(a.id()) {
		t.Fatalf("shared nick not flagged: %+v", m)
	}
	if m := a.waitMessage("carol here"); m.NickShared {
		t.Fatalf("unique nick flagged: %+v", m)
	}
}

// A newcomer taking the nick of a member who just left is told apart too.
func TestNickSharedWithMemberWhoLeft(t *testing.T) {
	a, b, c := newNode(t, "sam", nil), newNode(t, "Sam", nil), newNode(t, "carol", nil)
	connect(t, a, b, c)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, c} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, c)
	c.events.wait(t, "sam online", func(e events.Event) bool {
		p, ok := e.(events.Presence)
		return ok && p.PeerID == a.id() && p.Online
	})
	if err := a.svc.Leave("lobby"); err != nil {
		t.Fatal(err)
	}
	c.events.wait(t, "sam gone", func(e events.Event) bool {
		p, ok := e.(events.Presence)
		return ok && p.PeerID == a.id() && !p.Online
	})
	if err := b.svc.Join(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	waitTopicPeers(t, "lobby", b, c)
	if _, err := b.svc.Send(ctx, "lobby", "I am sam"); err != nil {
		t.Fatal(err)
	}
	if m := c.waitMessage("I am sam"); !m.NickShared || m.Fingerprint != identity.ShortFingerprint(b.id()) {
		t.Fatalf("the nick of a member who just left is not flagged: %+v", m)
	}
}
