package node_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/rooms"
)

// Lines written faster than the room's rate limit are paced, not
// dropped: all arrive, in order, at the limit's pace; a line that would
// wait longer than the pacing bound is refused at once.
func TestSayPacesInsteadOfDropping(t *testing.T) {
	limits := func(every rate.Limit, burst int) func(*node.Config) {
		return func(c *node.Config) { c.RoomsConfig.RateLimit, c.RoomsConfig.RateBurst = every, burst }
	}
	// The receiver's bucket is the same: a burst of 10 lets it take
	// lines bunched up by a stall of the loaded test machine.
	a, _ := nodetest.New(t, limits(20, 10))
	b, sinkB := nodetest.New(t, limits(20, 10))
	testnet.Connect(t, a.Host(), b.Host())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const lines = 30
	want := ""
	start := time.Now()
	for i := range lines {
		text := string(rune('A' + i))
		want += text
		if _, err := a.Say(ctx, node.DefaultRoom, text); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	took := time.Since(start)
	// 9 at once (one token less than the burst), then 21 more at 80% of
	// 20 a second: about 1.3 s.
	if min := 1100 * time.Millisecond; took < min {
		t.Fatalf("%d lines took %v: not paced (want ≥ %v)", lines, took, min)
	}
	got := ""
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < lines && time.Now().Before(deadline) {
		for _, e := range sinkB.Take() {
			if m, ok := e.(events.Message); ok && m.From == a.Host().ID() {
				got += m.Text
			}
		}
		time.Sleep(20 * time.Millisecond) // the sink has no wake-up; bounded by deadline
	}
	// GossipSub validates concurrently, so lines sent close together
	// may be shown out of order; every one must arrive, and the history
	// keeps them in sent order.
	sorted := []rune(got)
	slices.Sort(sorted)
	if string(sorted) != want {
		t.Fatalf("b received %q, want every line (%q)", got, want)
	}
	h, err := b.RoomHistory(node.DefaultRoom, lines)
	if err != nil {
		t.Fatal(err)
	}
	inOrder := ""
	for _, m := range h {
		inOrder += m.Text
	}
	if inOrder != want {
		t.Fatalf("b's history %q, want sent order %q", inOrder, want)
	}

	slow, _ := nodetest.New(t, limits(0.01, 1)) // one line per 100 s
	if _, err := slow.Say(ctx, node.DefaultRoom, "first"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err = slow.Say(ctx, node.DefaultRoom, "second")
	if !errors.Is(err, rooms.ErrRateLimited) || time.Since(t0) > time.Second {
		t.Fatalf("a line 100 s away: err %v after %v; want ErrRateLimited at once", err, time.Since(t0))
	}
}
