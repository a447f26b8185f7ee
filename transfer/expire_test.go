package transfer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

func withOfferTTL(d time.Duration) func(*Config) {
	return func(c *Config) { c.OfferTTL = d }
}

// An offer nobody answers expires at the recipient, which tells the
// sender; the slot it held is free again and it can no longer be accepted.
func TestOfferExpiresAtRecipient(t *testing.T) {
	const ttl = 300 * time.Millisecond
	a := newNode(t) // the sender keeps offers for 7 days
	b := newNode(t, withOfferTTL(ttl), func(c *Config) { c.MaxPendingOffers = 1 })
	testnet.Connect(t, a.h, b.h)
	path, _ := writeFile(t, t.TempDir(), "unanswered.bin", 100)
	id, err := offerAndWait(t, a, b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor[events.FileOffer](t, b.rec, id)
	for _, n := range []*node{b, a} {
		if _, err := n.svc.Wait(ctxT(t), id); !errors.Is(err, ErrExpired) {
			t.Fatalf("wait = %v, want ErrExpired", err)
		}
		if ev := waitFor[events.FileFailed](t, n.rec, id); ev.Code != "expired" {
			t.Fatalf("file_failed = %+v", ev)
		}
	}
	if err := b.svc.Accept(id); !errors.Is(err, ErrState) {
		t.Fatalf("accept after expiry = %v", err)
	}
	// The pending-offer slot is free: a new offer is not refused as BUSY.
	path2, _ := writeFile(t, t.TempDir(), "next.bin", 100)
	if _, err := offerAndWait(t, a, b.h.ID(), path2); err != nil {
		t.Fatalf("offer after expiry: %v", err)
	}
	if len(b.downloads()) != 0 {
		t.Fatalf("expired offer wrote %v", b.downloads())
	}
}

// A sender whose recipient went away gives up on its own after OfferTTL
// plus its grace, and the recipient learns it when it is back.
func TestOfferExpiresAtSender(t *testing.T) {
	const ttl = 200 * time.Millisecond // grace: min(ttl, 1 h) = ttl
	a := newNode(t, withOfferTTL(ttl))
	b := newNode(t)
	testnet.Connect(t, a.h, b.h)
	path, _ := writeFile(t, t.TempDir(), "gone.bin", 100)
	offered := time.Now()
	id, err := offerAndWait(t, a, b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor[events.FileOffer](t, b.rec, id)
	b.stop()
	if _, err := a.svc.Wait(ctxT(t), id); !errors.Is(err, ErrExpired) {
		t.Fatalf("sender wait = %v, want ErrExpired", err)
	}
	if e := time.Since(offered); e < 2*ttl {
		t.Fatalf("the sender gave up %v after offering, before OfferTTL and its grace (%v)", e, 2*ttl)
	}
	if ev := waitFor[events.FileFailed](t, a.rec, id); ev.Code != "expired" {
		t.Fatalf("sender file_failed = %+v", ev)
	}
	b.start()
	testnet.Connect(t, a.h, b.h)
	if _, err := b.svc.Wait(ctxT(t), id); !errors.Is(err, ErrCancelled) {
		t.Fatalf("recipient wait = %v, want ErrCancelled (the sender's notice)", err)
	}
}

// Offers restored from the store expire too: a node that was down longer
// than OfferTTL drops them at start.
func TestRestoredOfferExpires(t *testing.T) {
	a, b := newNode(t), newNode(t)
	testnet.Connect(t, a.h, b.h)
	path, _ := writeFile(t, t.TempDir(), "old.bin", 100)
	id, err := offerAndWait(t, a, b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor[events.FileOffer](t, b.rec, id)
	b.stop()
	b.opts = append(b.opts, withOfferTTL(time.Nanosecond))
	b.start()
	if _, err := b.svc.Wait(ctxT(t), id); !errors.Is(err, ErrExpired) {
		t.Fatalf("restored offer: wait = %v, want ErrExpired", err)
	}
}

// Pending offers from peers that are gone expire (issue 19, "abandoned
// work expires"): a stranger's offer that waited StrangerOfferTTL while
// its sender is not connected is dropped without a notice, counted in
// OffersExpired, and its slot is free; a connected stranger's offer and a
// known peer's, connected or not, keep waiting (for OfferTTL).
func TestStrangerOfferExpiresWhenSenderGone(t *testing.T) {
	const ttl = 200 * time.Millisecond
	friend, stays, leaves := newNode(t), newNode(t), newNode(t)
	b := newNode(t, func(c *Config) {
		c.StrangerOfferTTL = ttl
		c.Known = func(p peer.ID) bool { return p == friend.h.ID() }
	})
	ids := make(map[*node]string)
	for _, n := range []*node{friend, stays, leaves} {
		testnet.Connect(t, n.h, b.h)
		path, _ := writeFile(t, t.TempDir(), "offer.bin", 100)
		id, err := offerAndWait(t, n, b.h.ID(), path)
		if err != nil {
			t.Fatal(err)
		}
		waitFor[events.FileOffer](t, b.rec, id)
		ids[n] = id
	}
	friend.stop()
	leaves.stop()
	ctx, cancel := context.WithTimeout(ctxT(t), waitTimeout)
	defer cancel()
	if _, err := b.svc.Wait(ctx, ids[leaves]); !errors.Is(err, ErrExpired) {
		t.Fatalf("offer of the stranger gone: wait = %v, want ErrExpired", err)
	}
	if ev := waitFor[events.FileFailed](t, b.rec, ids[leaves]); ev.Code != "expired" {
		t.Fatalf("file_failed = %+v", ev)
	}
	time.Sleep(2 * ttl) // the expiry runs every ttl/4: the others had their chances
	states := make(map[string]State)
	for _, in := range b.svc.List() {
		states[in.ID] = in.State
	}
	for _, n := range []*node{friend, stays} {
		if st := states[ids[n]]; st != StateOffered {
			t.Fatalf("offer of %s: state %v, want still offered", n.h.ID(), st)
		}
	}
	if got := b.svc.Budget().OffersExpired; got != 1 {
		t.Fatalf("OffersExpired = %d, want 1", got)
	}
}
