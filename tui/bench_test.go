package tui

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
)

// BenchmarkViewEmpty is the baseline: drawing an 80x24 screen with an
// empty conversation.
func BenchmarkViewEmpty(b *testing.B) {
	h := newHarness(b, newFakeNode(), 80, 24)
	b.ReportAllocs()
	for b.Loop() {
		_ = h.m.View()
	}
}

// BenchmarkViewFullScrollback draws a conversation holding the whole
// scrollback (only the visible lines are wrapped, and they are cached).
func BenchmarkViewFullScrollback(b *testing.B) {
	h := newHarness(b, newFakeNode(), 80, 24)
	h.events(manyMessages(maxEntries)...)
	b.ReportAllocs()
	for b.Loop() {
		_ = h.m.View()
	}
}

// BenchmarkEventBatch is a flood: one batch of 256 messages into the
// conversation shown, then a redraw, as the runner does it.
func BenchmarkEventBatch(b *testing.B) {
	h := newHarness(b, newFakeNode(), 80, 24)
	batch := manyMessages(maxBatch)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range batch {
			m := batch[j].(events.Message)
			m.ID = fmt.Sprintf("%016x%016x", i, j)
			batch[j] = m
		}
		h.events(batch...)
		_ = h.m.View()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*maxBatch), "ns/event")
}

func manyMessages(n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		out[i] = msg("lobby", idAlice, "alice", fmt.Sprintf("message %d with some words to wrap around the edge of the pane, like people write", i), time.Duration(i)*time.Millisecond)
	}
	return out
}
