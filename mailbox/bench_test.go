package mailbox

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/mailbox/pb"
)

// Offline delivery against direct delivery, in one run (docs/BENCHMARKS.md,
// "Offline delivery"). Run with -benchtime=1x: each iteration is a whole
// scenario of benchMessages messages; stores are fsynced (the product).
const benchMessages = 1000

// sealedNotes seals n notes from alice to carol's record.
func sealedNotes(b *testing.B, alice, carol *chatPeer, n int) []DepositReq {
	b.Helper()
	kem, err := DeriveKEMKey(carol.key)
	if err != nil {
		b.Fatal(err)
	}
	crec, err := SignRecord(carol.key, kem.PublicKey(), nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	akem, err := DeriveKEMKey(alice.key)
	if err != nil {
		b.Fatal(err)
	}
	arec, err := SignRecord(alice.key, akem.PublicKey(), nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]DepositReq, n)
	now := time.Now()
	for i := range reqs {
		id := make([]byte, 16)
		id[0], id[1] = byte(i>>8), byte(i)
		note := &pb.Note{Id: id, Text: fmt.Sprintf("offline message %d of a benchmark", i), Nick: "alice", SentAtMs: now.UnixMilli(), Seq: int64(i)}
		s, err := Seal(alice.key, arec.Envelope, crec, note)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = DepositReq{Mailbox: crec.MailboxID(), Sealed: s, Expires: now.Add(time.Hour)}
	}
	return reqs
}

func countDMs(r *testnet.Recorder) int {
	return r.Count(func(e events.Event) bool { _, ok := e.(events.DM); return ok })
}

func waitDMs(b *testing.B, r *testnet.Recorder, n int) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for countDMs(r) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages within 2 min", countDMs(r), n)
		}
		select {
		case <-r.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// BenchmarkOffline: deposit = deposits per second one holder absorbs from
// one depositor (sealed beforehand; 256 per stream); pickup = from the
// recipient connecting to the holder to the last of 1000 waiting messages
// stored and shown; direct = the baseline, 1000 DMs sent over a live
// connection until the last is shown (the recipient's per-peer rate limit
// raised, as a pickup is not rate-limited: the holder's quotas bound it).
func BenchmarkOffline(b *testing.B) {
	b.Run("deposit", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			_, hh := startHolder(b, nil)
			alice, carol := newChatPeer(b, "alice"), newChatPeer(b, "carol")
			reqs := sealedNotes(b, alice, carol, benchMessages)
			h := testnet.NewHost(b)
			testnet.Connect(b, h, hh)
			b.StartTimer()
			start := time.Now()
			sts, err := clientOf(h).Deposit(context.Background(), hh.ID(), reqs)
			if err != nil || sts[len(sts)-1] != pb.Status_STATUS_STORED {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(reqs))/time.Since(start).Seconds(), "deposits/s")
		}
	})
	b.Run("pickup", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			_, hh := startHolder(b, nil)
			alice, carol := newChatPeer(b, "alice"), newChatPeer(b, "carol")
			reqs := sealedNotes(b, alice, carol, benchMessages)
			h := testnet.NewHost(b)
			testnet.Connect(b, h, hh)
			if _, err := clientOf(h).Deposit(context.Background(), hh.ID(), reqs); err != nil {
				b.Fatal(err)
			}
			carol.start(b)
			b.StartTimer()
			start := time.Now()
			testnet.Connect(b, carol.h, hh)
			waitDMs(b, carol.rec, benchMessages)
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-last")
		}
	})
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			alice, carol := newChatPeer(b, "alice"), newChatPeer(b, "carol")
			carol.peerRate = 1e6 // the recipient's rate limit off: the protocol's own speed
			alice.start(b)
			carol.start(b)
			testnet.Connect(b, alice.h, carol.h)
			b.StartTimer()
			start := time.Now()
			for i := range benchMessages {
				if _, err := alice.dm.Send(context.Background(), carol.id, fmt.Sprintf("direct message %d of a benchmark", i)); err != nil {
					b.Fatal(err)
				}
			}
			waitDMs(b, carol.rec, benchMessages)
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-last")
		}
	})
}
