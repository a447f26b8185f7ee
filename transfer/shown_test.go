package transfer

import (
	"reflect"
	"testing"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// outcomes returns the offer and outcome events r recorded.
func outcomes(r *recorder) []events.Event {
	return r.Filter(func(e events.Event) bool { _, ok := shownKey(e); return ok })
}

// TestUnshownOutcomesComeBack: with ConfirmShown, the file_offer and
// file_done events nobody marked shown are emitted again, the same
// events, by the next New on both sides (although the ended transfer's
// record is gone), and the ones marked shown are not.
func TestUnshownOutcomesComeBack(t *testing.T) {
	confirm := func(c *Config) { c.ConfirmShown = true }
	a, b := newNode(t, confirm), newNode(t, confirm)
	testnet.Connect(t, a.h, b.h)
	path, _ := writeFile(t, t.TempDir(), "report.bin", 3*MinChunkSize+5)
	id, err := offerAndWait(t, a, b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	offer := waitFor[events.FileOffer](t, b.rec, id)
	if err := b.svc.Accept(id); err != nil {
		t.Fatal(err)
	}
	doneB := waitFor[events.FileDone](t, b.rec, id)
	doneA := waitFor[events.FileDone](t, a.rec, id)
	// Bob's interface showed the offer; alice's nothing.
	if err := b.svc.MarkShown([]events.Event{offer}); err != nil {
		t.Fatal(err)
	}

	restart := func(n *node) []events.Event {
		n.stop()
		n.rec = newRecorder()
		n.start()
		return outcomes(n.rec) // emitted by New
	}
	if got := restart(b); !reflect.DeepEqual(got, []events.Event{doneB}) {
		t.Fatalf("bob after a restart: %+v, want %+v", got, doneB)
	}
	if got := restart(a); !reflect.DeepEqual(got, []events.Event{doneA}) {
		t.Fatalf("alice after a restart: %+v, want %+v", got, doneA)
	}
	for _, n := range []*node{a, b} {
		if err := n.svc.MarkShown(outcomes(n.rec)); err != nil {
			t.Fatal(err)
		}
		if got := restart(n); len(got) != 0 {
			t.Fatalf("after everything was shown: %+v", got)
		}
	}
}
