package tui

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
)

// TestShownConfirmsEventsTakenIn: with Options.Shown, every event of a
// batch is confirmed once the model has taken it in, in order, and the
// message is on screen then.
func TestShownConfirmsEventsTakenIn(t *testing.T) {
	h := newHarness(t, newFakeNode(), 100, 30)
	var got []events.Event
	h.m.shown = func(e events.Event) { got = append(got, e) }
	msg := events.Message{Room: "lobby", ID: strings.Repeat("ab", 16), From: seededID(2), Nick: "bob",
		Text: "seen on screen", SentAt: t0.Add(time.Minute)}
	dm := events.DM{ID: strings.Repeat("cd", 16), From: seededID(3), Nick: "carol", Text: "hi", SentAt: t0}
	h.events(msg, dm)
	if want := []events.Event{msg, dm}; !reflect.DeepEqual(got, want) {
		t.Fatalf("confirmed %+v, want %+v", got, want)
	}
	if s := h.screen(); !strings.Contains(s, "seen on screen") {
		t.Fatalf("the confirmed message is not on screen:\n%s", s)
	}
}
