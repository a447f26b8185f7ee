package rooms

import (
	"testing"

	"go.uber.org/goleak"
)

func TestCloseLeavesNoGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// Cleanups run last-in first-out: this check runs after the services,
	// databases and hosts are closed.
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	a, b := newNode(t, "alice", nil), newNode(t, "bob", nil)
	connect(t, a, b)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
		if _, err := n.svc.JoinInvite(ctx, mustInvite(t, "priv")); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, b)
	if _, err := a.svc.Send(ctx, "lobby", "bye"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage("bye")
	if err := b.svc.Leave("priv"); err != nil {
		t.Fatal(err)
	}
}
