package rooms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
)

// TestShedderQueueShare: the strangers' messages waiting for validation
// are capped in all and per relaying subnet, freed when GossipSub's
// tracer sees them leave the queue, and forgotten after queuedTTL when
// it never does.
func TestShedderQueueShare(t *testing.T) {
	sh := newShedder(nil, nil, nil)
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
	sh := newShedder(nil, func(p peer.ID) bool { return p == "fresh" }, nil)
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

// TestShedderFrontBucketPerAuthor: one identity flooding directly is cut
// to its front bucket before it takes the shared budgets, so another
// stranger's line still goes in; copies of one message are charged once;
// the flooder is marked for the validator's penalty.
func TestShedderFrontBucketPerAuthor(t *testing.T) {
	s := &Service{shed: newShedder(nil, nil,
		newLimiters(frontRateFactor*DefaultRateLimit, frontRateFactor*DefaultRateBurst, 1000))}
	r := &room{topicName: "lobby"}
	now := time.Now()
	msg := func(author peer.ID, seq int) *pubsubpb.Message {
		return &pubsubpb.Message{From: []byte(author), Seqno: []byte(fmt.Sprint(seq)), Topic: &r.topicName}
	}
	send := func(author, from peer.ID, seq int) string {
		m := msg(author, seq)
		reason := s.shedFront(r, m, from, "127.0.0.0/8", now)
		if reason == "" {
			s.shed.dequeued(msgID(string(m.GetFrom()), m.GetSeqno())) // validated at once
		}
		return reason
	}
	const mallory, honest, relay = peer.ID("mallory"), peer.ID("honest"), peer.ID("relay")
	in := 0
	for i := range 500 {
		if send(mallory, mallory, i) == "" {
			in++
		}
	}
	if want := frontRateFactor * DefaultRateBurst; in != want {
		t.Fatalf("flooder got %d of 500 past the front, want its front burst %d", in, want)
	}
	if !s.shed.flooded(mallory, now) || s.shed.flooded(honest, now) {
		t.Fatal("the direct flooder is not marked, or the honest author is")
	}
	if got := s.Shed().Author; got != 500-uint64(in) {
		t.Fatalf("Author shed count %d, want %d", got, 500-in)
	}
	for i := range 3 {
		if reason := send(honest, relay, i); reason != "" {
			t.Fatalf("honest stranger's line %d shed (%s) after the flood", i, reason)
		}
	}
	// Eight copies of one honest message take one token.
	for range 8 {
		send(honest, relay, 99)
	}
	for i := 3; i < frontRateFactor*DefaultRateBurst-1; i++ {
		if reason := send(honest, relay, i); reason != "" {
			t.Fatalf("honest line %d shed (%s): copies were charged more than once", i, reason)
		}
	}
}

// Lines a node shed under load (here: its validation queue just
// overflowed, so every stranger's message is shed for a while) are taken
// in by a history sync once the shedding is over: each once, marked
// caught up.
func TestShedLinesRecoveredBySync(t *testing.T) {
	ctx := ctxT(t)
	a, b := newNode(t, "ann", fastRate), newNode(t, "bo", fastRate)
	connect(t, a, b)
	for _, n := range []*tnode{a, b} {
		if err := n.svc.Join(ctx, "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitTopicPeers(t, "lobby", a, b)
	b.svc.shed.hotUntil.Store(time.Now().Add(time.Second).UnixNano())
	const total = 20
	for i := range total {
		if _, err := a.svc.Send(ctx, "lobby", fmt.Sprintf("shed %02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	b.events.waitCount(t, "shed lines recovered", total, func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && strings.HasPrefix(m.Text, "shed ")
	})
	if b.svc.Shed().Full == 0 {
		t.Fatal("nothing was shed: the test did not test the recovery")
	}
	seen := map[string]int{}
	caught := 0
	for _, m := range b.roomMessages("lobby", "shed ") {
		seen[m.Text]++
		if m.CaughtUp {
			caught++
		}
	}
	for i := range total {
		if text := fmt.Sprintf("shed %02d", i); seen[text] != 1 {
			t.Errorf("%q shown %d times, want once", text, seen[text])
		}
	}
	if caught == 0 {
		t.Error("no line came by the sync")
	}
}
