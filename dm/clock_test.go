package dm

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
)

// A message written just now and refused for its timestamp means this
// node's clock is off: the user is told once per clockWarnEvery (code
// clock_skew); an old message refused for its age says nothing.
func TestRefusedTimestampWarnsOnce(t *testing.T) {
	a := newNode(t, "alice", testConfig())
	b := newNode(t, "bob", testConfig())
	a.start(t)
	clockWarnings := func() int {
		return len(a.rec.all(func(e events.Event) bool {
			er, ok := e.(events.Error)
			return ok && er.Code == events.ErrClockSkew
		}))
	}
	old := &pb.OutboxRecord{Id: newMsgID(t), CreatedMs: time.Now().Add(-time.Hour).UnixMilli()}
	a.svc.clockRefused(b.id, old)
	if n := clockWarnings(); n != 0 {
		t.Fatalf("an hour-old message refused: %d warnings, want 0", n)
	}
	for range 3 {
		a.svc.clockRefused(b.id, &pb.OutboxRecord{Id: newMsgID(t), CreatedMs: time.Now().UnixMilli()})
	}
	if n := clockWarnings(); n != 1 {
		t.Fatalf("3 fresh messages refused: %d warnings, want 1", n)
	}
	// After clockWarnEvery it warns again.
	a.svc.clockWarned.Store(time.Now().Add(-clockWarnEvery - time.Second).UnixNano())
	a.svc.clockRefused(b.id, &pb.OutboxRecord{Id: newMsgID(t), CreatedMs: time.Now().UnixMilli()})
	if n := clockWarnings(); n != 2 {
		t.Fatalf("after %v: %d warnings, want 2", clockWarnEvery, n)
	}
}

// TestFutureMessageWarnsRecipient: a recipient whose clock is behind
// refuses honest messages as sent in the future; before, only the
// senders heard of it (their messages failed) and its own user nothing.
// Now it warns (clock_skew, once per clockWarnEvery); a message refused
// for another reason, or for its age, does not.
func TestFutureMessageWarnsRecipient(t *testing.T) {
	b := newNode(t, "bob", testConfig())
	b.start(t)
	sender := newNode(t, "alice", testConfig())
	warnings := func() []events.Error {
		var out []events.Error
		for _, e := range b.rec.all(func(e events.Event) bool {
			er, ok := e.(events.Error)
			return ok && er.Code == events.ErrClockSkew
		}) {
			out = append(out, e.(events.Error))
		}
		return out
	}
	msg := func(sentAt time.Time) *pb.Message {
		m := validMsg(t, "hello")
		m.SentAtMs = sentAt.UnixMilli()
		return m
	}
	for _, m := range []*pb.Message{msg(time.Now().Add(-40 * 24 * time.Hour)), {Id: newMsgID(t), SentAtMs: time.Now().UnixMilli()}} {
		if ack, err := b.svc.accept(sender.id, "", m); err != nil || ack.Status != pb.Ack_STATUS_REJECTED {
			t.Fatalf("ack %v, %v; want rejected", ack, err)
		}
	}
	if w := warnings(); len(w) != 0 {
		t.Fatalf("an old or empty message warned: %+v", w)
	}
	for range 3 {
		ack, err := b.svc.accept(sender.id, "", msg(time.Now().Add(24*time.Hour)))
		if err != nil || ack.Status != pb.Ack_STATUS_REJECTED || ack.Reason != pb.Ack_REASON_BAD_TIMESTAMP {
			t.Fatalf("ack %v, %v; want rejected for its timestamp", ack, err)
		}
	}
	w := warnings()
	if len(w) != 1 || !strings.Contains(w[0].Error, "24h0m0s ahead of this computer's clock") {
		t.Fatalf("warnings %+v, want one saying by how much", w)
	}
}
