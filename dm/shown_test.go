package dm

import (
	"reflect"
	"testing"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// TestUnshownEventsComeBack: with ConfirmShown, the events nobody marked
// shown are emitted again by the next New, on both sides, and the ones
// marked are not.
func TestUnshownEventsComeBack(t *testing.T) {
	cfg := testConfig()
	cfg.ConfirmShown = true
	a, b := newNode(t, "alice", cfg), newNode(t, "bob", cfg)
	a.start(t)
	b.start(t)
	testnet.Connect(t, a.h, b.h)
	first := a.send(t, b, "first")
	a.rec.wait(t, "first delivered", status(first, events.DMDelivered))
	b.rec.wait(t, "dm at bob", isDM)
	// Bob shows the first message; alice shows nothing.
	if err := b.svc.MarkShown(b.rec.all(isDM)); err != nil {
		t.Fatal(err)
	}
	second := a.send(t, b, "second")
	a.rec.wait(t, "second delivered", status(second, events.DMDelivered))
	b.rec.Wait(t, "second at bob", func(e events.Event) bool { d, ok := e.(events.DM); return ok && d.ID == second })

	b.stop(t)
	b.start(t)
	if got := dms(b.rec); len(got) != 1 || got[0].ID != second || got[0].Text != "second" {
		t.Fatalf("bob after restart: %+v, want the second message again", got)
	}
	a.stop(t)
	a.start(t)
	for _, id := range []string{first, second} {
		if got := statesOf(a.rec, id); !reflect.DeepEqual(got, []string{"queued", "sent", "delivered"}) {
			t.Fatalf("alice after restart, %s: states %v", id, got)
		}
	}
	// Shown now: the next start is quiet.
	if err := a.svc.MarkShown(a.rec.all(func(events.Event) bool { return true })); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.MarkShown(b.rec.all(isDM)); err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	b.stop(t)
	a.startHost(t)
	a.startService(t)
	b.startHost(t)
	b.startService(t)
	if n := len(a.rec.All()) + len(b.rec.All()); n != 0 {
		t.Fatalf("%d events again after everything was shown: %+v %+v", n, a.rec.All(), b.rec.All())
	}
}
