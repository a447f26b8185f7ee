package mailbox

import (
	"context"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// keptReceipts counts the receipts c keeps to deposit.
func (c *chatPeer) keptReceipts() int {
	n := 0
	_ = c.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(bucketReceipts)).Stats().KeyN
		return nil
	})
	return n
}

// TestReceiptsSurviveRecipientRestart: carol picks up alice's deposits
// while alice's holder is down, so her receipts cannot be deposited; she
// restarts; once alice's holder is back, the receipts kept on disk reach
// it, and alice, back later, sees every message delivered.
func TestReceiptsSurviveRecipientRestart(t *testing.T) {
	hsC, hhC := startHolder(t, nil) // carol's holder
	hsA, hhA := startHolder(t, nil) // alice's holder, down while carol picks up
	alice, carol := newChatPeer(t, "alice"), newChatPeer(t, "carol")
	alice.eligible = func(p peer.ID) bool { return p == hhA.ID() }
	carol.eligible = func(p peer.ID) bool { return p == hhC.ID() }

	carol.start(t)
	carol.connectTo(t, hhC)
	testnet.Eventually(t, waitFor, "carol's record at her holder", func() bool { return hsC.owner(carol.id) != nil })
	carol.stop(t)

	alice.start(t)
	alice.connectTo(t, hhA)
	testnet.Connect(t, alice.h, hhC) // where alice finds carol's record
	const n = 5
	for i := range n {
		if _, err := alice.dm.Send(context.Background(), carol.id, fmt.Sprintf("note %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	alice.rec.WaitCount(t, "deposited", n, func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.Reason == events.DMWaitDeposited && s.Via == hhC.ID().String()
	})
	alice.stop(t)
	if err := hsA.Close(); err != nil {
		t.Fatal(err)
	}

	carol.start(t)
	testnet.Connect(t, carol.h, hhC)
	carol.rec.WaitCount(t, "dm", n, func(e events.Event) bool { _, ok := e.(events.DM); return ok })
	testnet.Eventually(t, waitFor, "carol keeps her receipts", func() bool { return carol.keptReceipts() == n })
	testnet.Eventually(t, waitFor, "carol's deposits deleted", func() bool { return hsC.Counters().Deleted >= n })
	carol.stop(t)

	// Alice's holder is back, on the same host and store.
	hsA2, err := NewHolder(context.Background(), HolderConfig{Host: hhA, DB: hsA.db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hsA2.Close() })
	carol.start(t)
	testnet.Eventually(t, waitFor, "carol's receipts deposited", func() bool { return carol.keptReceipts() == 0 })
	if c, _ := hsA2.Held(); c == 0 {
		t.Fatal("alice's holder holds no receipt")
	}
	carol.stop(t)

	alice.start(t)
	testnet.Connect(t, alice.h, hhA)
	alice.rec.WaitCount(t, "delivered", n, func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.State == events.DMDelivered && s.Via == hhA.ID().String()
	})
	if got := len(dmsFrom(carol.rec, alice.id)); got != 0 {
		t.Fatalf("carol showed %d messages again after her restart", got)
	}
}
