package node_test

import (
	"context"
	"errors"
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
	a, _ := nodetest.New(t, limits(20, 2))
	b, sinkB := nodetest.New(t, limits(20, 2))
	testnet.Connect(t, a.Host(), b.Host())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const lines = 10
	start := time.Now()
	for i := range lines {
		if _, err := a.Say(ctx, node.DefaultRoom, string(rune('a'+i))); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	took := time.Since(start)
	// 2 at once, then 8 more at 20 a second: at least 0.4 s.
	if want := 350 * time.Millisecond; took < want {
		t.Fatalf("%d lines took %v: not paced (want ≥ %v)", lines, took, want)
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
	if got != "abcdefghij" {
		t.Fatalf("b received %q, want every line in order", got)
	}

	slow, _ := nodetest.New(t, limits(0.01, 1)) // one line per 100 s
	if _, err := slow.Say(ctx, node.DefaultRoom, "first"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err := slow.Say(ctx, node.DefaultRoom, "second")
	if !errors.Is(err, rooms.ErrRateLimited) || time.Since(t0) > time.Second {
		t.Fatalf("a line 100 s away: err %v after %v; want ErrRateLimited at once", err, time.Since(t0))
	}
}
