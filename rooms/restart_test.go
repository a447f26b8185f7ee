package rooms

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRestartedMemberBackInMesh restarts a member (Close, then a new host
// with the same key and store, as a process restart does) and checks that
// its old mesh peer takes it back into its mesh within a few heartbeats.
// Close must not PRUNE the mesh peers: a PRUNE backoff (10 s, refreshed to
// 60 s when the restarted member GRAFTs during it) would keep the member
// out of their meshes, so that it missed messages for up to a minute
// (seen in the churn benchmark, bench.Churn).
func TestRestartedMemberBackInMesh(t *testing.T) {
	grafted := newLog[peer.ID]()
	pruned := newLog[peer.ID]()
	watchA := func(c *Config) {
		c.PubSubOptions = []pubsub.Option{pubsub.WithRawTracer(&testTracer{
			onGraft: func(p peer.ID, _ string) { grafted.add(p) },
			onPrune: func(p peer.ID, _ string) { pruned.add(p) },
		})}
	}
	a, b := newNode(t, "alice", watchA), newNode(t, "bob", nil)
	connect(t, a, b)
	ctx := ctxT(t)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	bob := b.id()
	grafted.wait(t, "alice grafts bob", func(p peer.ID) bool { return p == bob })
	before := grafted.count(func(p peer.ID) bool { return p == bob })

	b.restart()
	connect(t, a, b)
	deadline := time.NewTimer(5 * time.Second) // five heartbeats
	defer deadline.Stop()
	for {
		changed := grafted.Changed()
		if grafted.count(func(p peer.ID) bool { return p == bob }) > before {
			break
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("alice did not take the restarted bob back into her mesh within 5 s (%d PRUNEs of bob)",
				pruned.count(func(p peer.ID) bool { return p == bob }))
		}
	}
	// And the restarted bob gets messages through it.
	if _, err := a.svc.Send(ctx, "lobby", "welcome back"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage("welcome back")
}
