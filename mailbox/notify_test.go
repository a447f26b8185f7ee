package mailbox

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/mailbox/pb"
)

// TestHolderNotifiesConnectedOwner: carol stays connected to her holder
// and does not poll (an hour); each deposit left for her reaches her
// screen within the bound, on the holder's notification.
func TestHolderNotifiesConnectedOwner(t *testing.T) {
	const bound = 2 * time.Second
	hs, hh := startHolder(t, nil)
	carol := newChatPeer(t, "carol")
	carol.poll = time.Hour
	carol.start(t)
	carol.connectTo(t, hh)
	testnet.Eventually(t, waitFor, "carol's first pickup", func() bool { return hs.owner(carol.id) != nil })

	sender := newOwner(t)
	h := testnet.NewHost(t)
	testnet.Connect(t, h, hh)
	crec := carol.cou.Record()
	var worst time.Duration
	for i := range 5 {
		id := make([]byte, 16)
		id[0] = byte(i + 1)
		note := &pb.Note{Id: id, Text: fmt.Sprintf("note %d", i), Nick: "sender", SentAtMs: time.Now().UnixMilli()}
		sealed, err := Seal(sender.key, sender.rec.Envelope, crec, note)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		sts, err := clientOf(h).Deposit(ctxT(t), hh.ID(), []DepositReq{{Mailbox: crec.MailboxID(), Sealed: sealed, Expires: start.Add(time.Hour)}})
		if err != nil || sts[0] != pb.Status_STATUS_STORED {
			t.Fatalf("deposit %d: %v %v", i, sts, err)
		}
		carol.rec.WaitWithin(t, bound, "the dm", func(e events.Event) bool {
			m, ok := e.(events.DM)
			return ok && m.Text == note.Text
		})
		worst = max(worst, time.Since(start))
	}
	t.Logf("deposit → shown at the connected owner: at most %v (bound %v), %d notifications", worst, bound, hs.Counters().Notified)
	if hs.Counters().Notified == 0 {
		t.Fatal("no notification sent")
	}
}

// TestUnreachableHolderDropped: carol's holder goes away; after every
// attempt to reach it failed for HolderStaleAfter, her record no longer
// names it.
func TestUnreachableHolderDropped(t *testing.T) {
	hs, hh := startHolder(t, nil)
	carol := newChatPeer(t, "carol")
	carol.staleAfter = time.Second
	carol.start(t)
	carol.connectTo(t, hh)
	testnet.Eventually(t, waitFor, "carol's first pickup", func() bool { return hs.owner(carol.id) != nil })
	issued := carol.cou.Record().Issued
	if err := hs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hh.Close(); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, waitFor, "the holder dropped", func() bool { return !carol.cou.isHolder(hh.ID()) })
	if rec := carol.cou.Record(); len(rec.Holders) != 0 || !rec.Issued.After(issued) {
		t.Fatalf("record after the drop: %d holders, issued %v (before %v)", len(rec.Holders), rec.Issued, issued)
	}
	if f := carol.cou.holderFailing(hh.ID()); !f.first.IsZero() {
		t.Fatalf("failures still recorded: %+v", f)
	}
}

// TestHolderStaleness: failures count towards HolderStaleAfter only
// while they come at most staleGap apart; a success forgets them.
func TestHolderStaleness(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }
	tests := []struct {
		name    string
		fails   []time.Time
		okAfter int // index of fails after which the holder answers; -1: never
		dropped bool
	}{
		{"failing every 6 h for 3 days", []time.Time{h(0), h(6), h(12), h(24), h(36), h(48), h(60), h(72)}, -1, true},
		{"not yet 3 days", []time.Time{h(0), h(24), h(48), h(71)}, -1, false},
		{"away 5 days in between", []time.Time{h(0), h(1), h(121), h(140)}, -1, false},
		{"answered on day 2", []time.Time{h(0), h(24), h(48), h(60), h(96)}, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, hh := startHolder(t, nil)
			carol := newChatPeer(t, "carol")
			carol.poll = time.Hour
			carol.start(t)
			carol.connectTo(t, hh)
			for i, at := range tc.fails {
				carol.cou.holderFailed(hh.ID(), at)
				if i == tc.okAfter {
					carol.cou.holderOK(hh.ID())
				}
			}
			if got := !carol.cou.isHolder(hh.ID()); got != tc.dropped {
				t.Fatalf("dropped %v, want %v", got, tc.dropped)
			}
		})
	}
}
