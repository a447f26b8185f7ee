package dm

import (
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
