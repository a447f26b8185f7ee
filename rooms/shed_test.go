package rooms

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestShedderQueueShare: the strangers' messages waiting for validation
// are capped in all and per relaying subnet, freed when GossipSub's
// tracer sees them leave the queue, and forgotten after queuedTTL when
// it never does.
func TestShedderQueueShare(t *testing.T) {
	sh := newShedder(nil, nil)
	now := time.Now()
	admit := func(via string, n int) int {
		took := 0
		for i := range n {
			if sh.queueRoom(via, now) {
				sh.enqueued(fmt.Sprint(via, i), via, now)
				took++
			}
		}
		return took
	}
	if got := admit("10.0.0.0/24", 100); got != strangerQueuePerVia {
		t.Fatalf("one subnet queued %d, want %d", got, strangerQueuePerVia)
	}
	if got := admit("10.0.1.0/24", 100); got != strangerQueue-strangerQueuePerVia {
		t.Fatalf("a second subnet queued %d, want %d", got, strangerQueue-strangerQueuePerVia)
	}
	if sh.queueRoom("10.0.2.0/24", now) {
		t.Fatal("a third subnet fits in a full strangers' queue")
	}
	sh.dequeued("10.0.0.0/240")
	if !sh.queueRoom("10.0.0.0/24", now) {
		t.Fatal("no room after a message left the queue")
	}
	sh.enqueued("one more", "10.0.2.0/24", now)
	if sh.queueRoom("10.0.2.0/24", now) {
		t.Fatal("room in a full strangers' queue")
	}
	if !sh.queueRoom("10.0.2.0/24", now.Add(2*queuedTTL)) || len(sh.queued) != 0 {
		t.Fatalf("entries never dequeued are kept past queuedTTL (%d left)", len(sh.queued))
	}
}

// TestShedderNewcomers: newcomers share a quarter of the strangers'
// budget; authors seen before keep the rest.
func TestShedderNewcomers(t *testing.T) {
	sh := newShedder(nil, func(p peer.ID) bool { return p == "fresh" })
	now := time.Now()
	fresh := 0
	for range 1000 {
		if sh.newcomers.AllowN(now, 1) {
			fresh++
		}
	}
	if fresh != newcomerBurst {
		t.Fatalf("newcomers got %d at once, want %d", fresh, newcomerBurst)
	}
	if !sh.newcomer("fresh") || sh.newcomer("old") {
		t.Fatal("newcomer predicate not used")
	}
	if !sh.strangers.AllowN(now, strangerBurst) {
		t.Fatal("newcomers took from the strangers' budget")
	}
}
