package transfer

import (
	"errors"
	"testing"
	"time"

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
