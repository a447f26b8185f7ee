package dm

import (
	"bufio"
	"log/slog"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/internal/testnet"
)

func TestPrune(t *testing.T) {
	// A bare Service without its scheduler, which would prune on its own.
	db := testnet.TempDB(t)
	if err := createBuckets(db); err != nil {
		t.Fatal(err)
	}
	s := &Service{db: db, log: slog.New(slog.DiscardHandler), cfg: Config{MaxMessageAge: DefaultMaxMessageAge}}
	other := newNode(t, "bob", testConfig()).id
	now := time.Now()
	old := now.Add(-s.cfg.MaxMessageAge - time.Hour).UnixMilli()
	recent := now.Add(-time.Hour).UnixMilli()
	type rec struct {
		bucket string
		id     byte
		msg    any
		keep   bool
	}
	recs := []rec{
		{bucketSent, 1, &pb.OutboxRecord{State: pb.State_STATE_DELIVERED, UpdatedMs: old}, false},
		{bucketSent, 2, &pb.OutboxRecord{State: pb.State_STATE_FAILED, UpdatedMs: recent}, true},
		{bucketOutbox, 3, &pb.OutboxRecord{State: pb.State_STATE_QUEUED, UpdatedMs: old, ExpiresMs: now.Add(time.Hour).UnixMilli()}, true},
		{bucketInbox, 4, &pb.InboxRecord{ReceivedMs: old, SentAtMs: old}, false},
		// Arrived long ago but claims a recent sent_at: a replay would
		// pass the age check, so the dedup record must stay.
		{bucketInbox, 5, &pb.InboxRecord{ReceivedMs: old, SentAtMs: recent}, true},
		{bucketInbox, 6, &pb.InboxRecord{ReceivedMs: recent, SentAtMs: old}, true},
	}
	key := func(r rec) []byte { return recordKey(other, append(make([]byte, IDLen-1), r.id)) }
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			var err error
			switch m := r.msg.(type) {
			case *pb.OutboxRecord:
				m.Id, m.To = key(r)[1+len(other):], []byte(other)
				err = putRecord(tx.Bucket([]byte(r.bucket)), key(r), m)
			case *pb.InboxRecord:
				err = putRecord(tx.Bucket([]byte(r.bucket)), key(r), m)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := s.prune(now)
	if err != nil || removed != 2 {
		t.Fatalf("prune removed %d, %v; want 2", removed, err)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		for _, r := range recs {
			if got := tx.Bucket([]byte(r.bucket)).Get(key(r)) != nil; got != r.keep {
				t.Errorf("record %d in %s: kept=%v, want %v", r.id, r.bucket, got, r.keep)
			}
		}
		return nil
	})
	h, err := s.History(other, 2)
	if err != nil || len(h) != 2 {
		t.Fatalf("History limit 2: %d entries, %v", len(h), err)
	}
}

// TestDedupIsPerSender: the same message id from two senders is two
// messages; the id alone cannot suppress someone else's message.
func TestDedupIsPerSender(t *testing.T) {
	b := newNode(t, "bob", testConfig())
	b.start(t)
	msg := validMsg(t, "same id")
	for _, h := range testnet.NewHosts(t, 2) {
		testnet.Connect(t, h, b.h)
		s := rawStream(t, h, b.id)
		if ack := exchange(t, s, bufio.NewReader(s), msg); ack.Status != pb.Ack_STATUS_STORED {
			t.Fatalf("ack %v", ack)
		}
	}
	got := dms(b.rec)
	if len(got) != 2 || got[0].From == got[1].From {
		t.Fatalf("dm events %+v", got)
	}

}
