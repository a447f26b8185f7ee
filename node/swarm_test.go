package node_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
)

// A member that fetched a room share announces in the room that it holds
// it: the other members then count it among the share's holders, and a
// fetch succeeds from it alone once the sharer stops serving.
func TestFetchedShareAnnouncedAndServed(t *testing.T) {
	a, sinkA := nodetest.New(t, nil)
	b, sinkB := nodetest.New(t, nil)
	c, sinkC := nodetest.New(t, nil)
	testnet.Connect(t, a.Host(), b.Host())
	testnet.Connect(t, a.Host(), c.Host())
	testnet.Connect(t, b.Host(), c.Host())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := []byte("swarm me, please: " + t.Name())
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The sharer sees both members in the lobby first: an announcement
	// published while a member is joining can miss it live (GossipSub does
	// not send it again; the sync's shares set brings it at the member's
	// next sync, rooms.TestSharesCaughtUpAfterBeingAway), which is not what
	// this test is about.
	seen := map[peer.ID]bool{}
	testnet.Eventually(t, 30*time.Second, "b and c in the lobby at a", func() bool {
		for _, e := range sinkA.Take() {
			if p, ok := e.(events.Presence); ok && p.Room == node.DefaultRoom && p.Online {
				seen[p.PeerID] = true
			}
		}
		return seen[b.Host().ID()] && seen[c.Host().ID()]
	})
	id, err := a.Share(ctx, node.DefaultRoom, path)
	if err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 30*time.Second, "share announced", func() bool {
		return slices.ContainsFunc(sinkA.Take(), func(e events.Event) bool { _, ok := e.(node.ShareAnnounced); return ok })
	})
	offered := func(sink *nodetest.Sink) func() bool {
		return func() bool {
			return slices.ContainsFunc(sink.Take(), func(e events.Event) bool { o, ok := e.(events.FileOffer); return ok && o.TransferID == id })
		}
	}
	testnet.Eventually(t, 30*time.Second, "offer at b", offered(sinkB))
	testnet.Eventually(t, 30*time.Second, "offer at c", offered(sinkC))
	if err := b.Fetch(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitTransfer(ctx, id); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 30*time.Second, "b among the holders at c", func() bool {
		hs, err := c.ShareHolders(id)
		return err == nil && slices.Equal(hs, []peer.ID{a.Host().ID(), b.Host().ID()})
	})
	if err := a.Cancel(id); err != nil {
		t.Fatal(err)
	}
	fetchShare(ctx, t, c, id, data)
}

// A member that fetched a room share serves it again after a restart:
// once the sharer stops serving, a fetch succeeds from it alone.
func TestFetchedShareServedAfterRestart(t *testing.T) {
	a, sinkA := nodetest.New(t, nil)
	var cfgB node.Config
	b, _ := nodetest.New(t, func(c *node.Config) { cfgB = *c })
	c, sinkC := nodetest.New(t, nil)
	testnet.Connect(t, a.Host(), b.Host())
	testnet.Connect(t, a.Host(), c.Host())
	testnet.Connect(t, b.Host(), c.Host())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := []byte("held across a restart: " + t.Name())
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := a.Share(ctx, node.DefaultRoom, path)
	if err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 30*time.Second, "share announced", func() bool {
		return slices.ContainsFunc(sinkA.Take(), func(e events.Event) bool { _, ok := e.(node.ShareAnnounced); return ok })
	})
	testnet.Eventually(t, 30*time.Second, "offer at c", func() bool {
		return slices.ContainsFunc(sinkC.Take(), func(e events.Event) bool { o, ok := e.(events.FileOffer); return ok && o.TransferID == id })
	})
	testnet.Eventually(t, 30*time.Second, "share known at b", func() bool {
		_, err := b.ShareHolders(id)
		return err == nil
	})
	if err := b.Fetch(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitTransfer(ctx, id); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 30*time.Second, "b among the holders at c", func() bool {
		hs, err := c.ShareHolders(id)
		return err == nil && slices.Contains(hs, b.Host().ID())
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := node.New(context.Background(), cfgB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b2.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	testnet.Connect(t, b2.Host(), c.Host())
	if err := a.Cancel(id); err != nil {
		t.Fatal(err)
	}
	fetchShare(ctx, t, c, id, data)
}

// fetchShare makes n fetch the share id and checks that it got data.
func fetchShare(ctx context.Context, t *testing.T, n *node.Node, id string, data []byte) {
	t.Helper()
	if err := n.Fetch(ctx, id); err != nil {
		t.Fatal(err)
	}
	res, err := n.WaitTransfer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(res.Path); err != nil || string(got) != string(data) {
		t.Fatalf("fetched %q, %v", got, err)
	}
}
