package dm

import (
	"bufio"
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

func TestDeliveredAndAcknowledged(t *testing.T) {
	a := newNode(t, "alice", testConfig())
	b := newNode(t, "bob", testConfig())
	c := newNode(t, "carol", testConfig())
	for _, n := range []*node{a, b, c} {
		n.start(t)
	}
	testnet.ConnectAll(t, []host.Host{a.h, b.h, c.h})

	before := time.Now()
	id := a.send(t, b, "hello bob, \u202eno tricks")
	a.rec.wait(t, "delivered", status(id, events.DMDelivered))
	if got, want := statesOf(a.rec, id), []string{"queued", "sent", "delivered"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("status sequence %v, want %v", got, want)
	}
	got := b.rec.wait(t, "dm at bob", isDM).(events.DM)
	if got.ID != id || got.From != a.id || got.Nick != "alice" || got.Text != "hello bob, \u202eno tricks" {
		t.Fatalf("bob got %+v", got)
	}
	if got.SentAt.Before(before.Add(-time.Second)) || got.SentAt.After(time.Now()) {
		t.Fatalf("sent_at %v out of range", got.SentAt)
	}
	if len(c.rec.all(isDM)) != 0 || c.svc.Counters() != (Counters{}) {
		t.Fatalf("carol saw something: %+v %+v", c.rec.all(isDM), c.svc.Counters())
	}
	if a.svc.Pending() != 0 {
		t.Fatalf("pending = %d after delivery", a.svc.Pending())
	}
	ha, err := a.svc.History(b.id, 10)
	if err != nil || len(ha) != 1 || !ha[0].Outgoing || ha[0].State != events.DMDelivered || ha[0].Text != got.Text {
		t.Fatalf("alice's history %+v, %v", ha, err)
	}
	hb, err := b.svc.History(a.id, 10)
	if err != nil || len(hb) != 1 || hb[0].Outgoing || hb[0].Nick != "alice" || hb[0].ID != id {
		t.Fatalf("bob's history %+v, %v", hb, err)
	}
	ca, cb := a.svc.Counters(), b.svc.Counters()
	if ca.Sent != 1 || ca.Delivered != 1 || cb.Received != 1 || cb.Duplicates != 0 {
		t.Fatalf("counters alice %+v bob %+v", ca, cb)
	}
	// Both sides list the conversation (user interfaces list it again
	// after a restart); carol has none.
	for _, side := range []struct {
		n    *node
		peer peer.ID
	}{{a, b.id}, {b, a.id}} {
		convs, err := side.n.svc.Conversations(10)
		if err != nil || len(convs) != 1 || convs[0].Peer != side.peer || convs[0].Last.IsZero() {
			t.Fatalf("%s's conversations %+v, %v", side.n.name, convs, err)
		}
	}
	if convs, err := c.svc.Conversations(10); err != nil || len(convs) != 0 {
		t.Fatalf("carol's conversations %+v, %v", convs, err)
	}
}

// TestManyInOrder sends more messages than fit on one stream.
func TestManyInOrder(t *testing.T) {
	a, b := newNode(t, "alice", testConfig()), newNode(t, "bob", testConfig())
	b.cfg.PeerBurst = 1000
	a.start(t)
	b.start(t)
	testnet.Connect(t, a.h, b.h)
	const n = MaxMessagesPerStream + 20
	var last string
	for i := range n {
		last = a.send(t, b, "msg "+string(rune('A'+i%26)))
	}
	a.rec.wait(t, "last delivered", status(last, events.DMDelivered))
	eventually(t, "all delivered", func() bool { return a.svc.Counters().Delivered == n })
	got := dms(b.rec)
	if len(got) != n {
		t.Fatalf("bob got %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if want := "msg " + string(rune('A'+i%26)); m.Text != want {
			t.Fatalf("message %d is %q, want %q (order)", i, m.Text, want)
		}
	}
}

// TestQueuedUntilRecipientReturns: bob goes away, alice queues a message,
// bob comes back with the same key and database (and a new address) and
// connects: the message is delivered once, and the one delivered before
// is not shown again.
func TestQueuedUntilRecipientReturns(t *testing.T) {
	a, b := newNode(t, "alice", testConfig()), newNode(t, "bob", testConfig())
	a.start(t)
	b.start(t)
	testnet.Connect(t, a.h, b.h)
	first := a.send(t, b, "first")
	a.rec.wait(t, "first delivered", status(first, events.DMDelivered))

	b.stop(t)
	eventually(t, "alice sees bob gone", func() bool { return len(a.h.Network().ConnsToPeer(b.id)) == 0 })
	second := a.send(t, b, "while you were away")
	// Let alice fail at least one attempt against the dead address.
	eventually(t, "a failed attempt", func() bool { return a.svc.Counters().Attempts >= 3 })
	if got := statesOf(a.rec, second); !reflect.DeepEqual(got, []string{"queued"}) {
		t.Fatalf("while bob is away: states %v, want [queued]", got)
	}

	b.start(t)
	testnet.Connect(t, b.h, a.h)
	a.rec.wait(t, "second delivered", status(second, events.DMDelivered))
	got := b.rec.wait(t, "dm at bob", isDM).(events.DM)
	if got.ID != second || got.Text != "while you were away" {
		t.Fatalf("bob got %+v", got)
	}
	// A later message proves the stream has drained: nothing else came.
	third := a.send(t, b, "third")
	a.rec.wait(t, "third delivered", status(third, events.DMDelivered))
	if n := len(dms(b.rec)); n != 2 {
		t.Fatalf("bob saw %d messages after restart, want 2: %+v", n, dms(b.rec))
	}
}

// TestSenderRestart: alice queues a message while bob does not speak the
// protocol yet, then restarts (same key and database, fresh peerstore).
// The new alice finds bob through the stored addresses and delivers once.
func TestSenderRestart(t *testing.T) {
	a, b := newNode(t, "alice", testConfig()), newNode(t, "bob", testConfig())
	a.start(t)
	b.startHost(t) // host up, dm service not yet
	a.h.Peerstore().AddAddrs(b.id, b.h.Addrs(), peerstore.TempAddrTTL)
	id := a.send(t, b, "survives restarts")
	eventually(t, "a failed attempt", func() bool { return a.svc.Counters().Attempts >= 2 })
	if got := statesOf(a.rec, id); !reflect.DeepEqual(got, []string{"queued"}) {
		t.Fatalf("states %v, want [queued]", got)
	}
	a.stop(t)
	b.startService(t)

	a.start(t)
	if len(a.h.Network().Peers()) != 0 {
		t.Fatal("new host already connected")
	}
	if a.svc.Pending() != 1 {
		t.Fatalf("pending after restart = %d", a.svc.Pending())
	}
	a.rec.wait(t, "delivered after restart", status(id, events.DMDelivered))
	b.rec.wait(t, "dm at bob", isDM)
	// Restart alice again: nothing is sent twice.
	a.stop(t)
	a.start(t)
	testnet.Connect(t, a.h, b.h)
	check := a.send(t, b, "check")
	a.rec.wait(t, "check delivered", status(check, events.DMDelivered))
	if got := dms(b.rec); len(got) != 2 || got[0].ID != id || got[1].ID != check {
		t.Fatalf("bob saw %+v", got)
	}
}

// TestLostAckIsNotDuplicated drops bob's first ack after he stored the
// message: alice retries, bob acknowledges again without showing it twice.
func TestLostAckIsNotDuplicated(t *testing.T) {
	var dropped atomic.Int32
	bcfg := testConfig()
	bcfg.hooks = &testHooks{dropAck: func([]byte) bool { return dropped.Add(1) <= 2 }}
	a, b := newNode(t, "alice", testConfig()), newNode(t, "bob", bcfg)
	a.start(t)
	b.start(t)
	testnet.Connect(t, a.h, b.h)
	id := a.send(t, b, "exactly once")
	a.rec.wait(t, "delivered", status(id, events.DMDelivered))
	if got := dms(b.rec); len(got) != 1 {
		t.Fatalf("bob saw %d messages: %+v", len(got), got)
	}
	cb := b.svc.Counters()
	if cb.Received != 1 || cb.Duplicates != 2 {
		t.Fatalf("bob's counters %+v, want 1 received, 2 duplicates", cb)
	}
	if got := statesOf(a.rec, id); !reflect.DeepEqual(got, []string{"queued", "sent", "delivered"}) {
		t.Fatalf("states %v", got)
	}
}

// TestRetransmissionAcrossRecipientRestart replays the same frame by hand,
// before and after bob restarts: one dm event in total.
func TestRetransmissionAcrossRecipientRestart(t *testing.T) {
	b := newNode(t, "bob", testConfig())
	b.start(t)
	raw := testnet.NewHost(t)
	msg := validMsg(t, "once")
	send := func() {
		testnet.Connect(t, raw, b.h)
		s := rawStream(t, raw, b.id)
		ack := exchange(t, s, bufio.NewReader(s), msg)
		if ack.Status != pb.Ack_STATUS_STORED {
			t.Fatalf("ack %v", ack)
		}
		_ = s.Close()
	}
	send()
	send()
	if n := len(dms(b.rec)); n != 1 {
		t.Fatalf("%d dm events before restart", n)
	}
	b.stop(t)
	eventually(t, "old connection gone", func() bool { return len(raw.Network().ConnsToPeer(b.id)) == 0 })
	b.start(t)
	send()
	if n := len(dms(b.rec)); n != 0 {
		t.Fatalf("replay after restart shown again (%d events)", n)
	}
	if c := b.svc.Counters(); c.Duplicates != 1 {
		t.Fatalf("counters after restart %+v", c)
	}
}

// TestExpiry: a message to a peer that never shows up fails with
// ErrExpired, also when the TTL passes while the sender is down.
func TestExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.TTL = 300 * time.Millisecond
	cfg.MaxMessageAge = time.Hour
	cfg.RetryMin, cfg.RetryMax = time.Second, 10*time.Second // expiry must not wait for a retry
	a := newNode(t, "alice", cfg)
	ghost := newNode(t, "ghost", testConfig())
	a.start(t)
	id := a.send(t, ghost, "anyone there?")
	e := a.rec.wait(t, "failed", status(id, events.DMFailed)).(events.DMStatus)
	if !strings.Contains(e.Error, ErrExpired.Error()) || e.To != ghost.id {
		t.Fatalf("failure %+v", e)
	}
	if a.svc.Pending() != 0 || a.svc.Counters().Failed != 1 {
		t.Fatalf("pending %d, counters %+v", a.svc.Pending(), a.svc.Counters())
	}

	id2 := a.send(t, ghost, "expires while alice is down")
	a.stop(t)
	time.Sleep(cfg.TTL)
	a.start(t)
	e = a.rec.wait(t, "failed after restart", status(id2, events.DMFailed)).(events.DMStatus)
	if !strings.Contains(e.Error, "expired") {
		t.Fatalf("failure %+v", e)
	}
	h, err := a.svc.History(ghost.id, 10)
	if err != nil || len(h) != 2 || h[0].State != events.DMFailed || h[1].State != events.DMFailed {
		t.Fatalf("history %+v %v", h, err)
	}
}

func TestSendValidation(t *testing.T) {
	cfg := testConfig()
	cfg.MaxPending = 2
	a, ghost := newNode(t, "alice", cfg), newNode(t, "ghost", testConfig())
	a.start(t)
	ctx := context.Background()
	cases := []struct {
		name string
		to   peer.ID
		text string
		want error
	}{
		{"empty", ghost.id, "", ErrEmptyText},
		{"too long", ghost.id, strings.Repeat("x", MaxTextBytes+1), ErrTextTooLong},
		{"bad utf8", ghost.id, "a\xffb", ErrInvalidUTF8},
		{"self", a.id, "hi me", ErrSelf},
		{"bad peer", peer.ID("nope"), "hi", ErrInvalidPeer},
	}
	for _, tc := range cases {
		if _, err := a.svc.Send(ctx, tc.to, tc.text); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := a.svc.Send(ctx, ghost.id, strings.Repeat("é", MaxTextBytes/2)); err != nil {
		t.Fatalf("longest message refused: %v", err)
	}
	a.send(t, ghost, "2")
	if _, err := a.svc.Send(ctx, ghost.id, "3"); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("third pending message: err = %v, want ErrOutboxFull", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.svc.Send(cctx, ghost.id, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ctx: err = %v", err)
	}
	if err := a.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Send(ctx, ghost.id, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
	if err := a.svc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewRequiresHostAndDB(t *testing.T) {
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Fatal("New without host accepted")
	}
	h := testnet.NewHost(t)
	if _, err := New(context.Background(), Config{Host: h}); err == nil {
		t.Fatal("New without DB accepted")
	}
}

func TestNextBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	cur := time.Duration(0)
	for range 20 {
		cur = nextBackoff(cur, lo, hi)
		if cur < lo || cur > hi+hi/4+1 {
			t.Fatalf("backoff %v outside [%v, %v]", cur, lo, hi+hi/4)
		}
	}
	if cur < hi {
		t.Fatalf("backoff did not reach the maximum: %v", cur)
	}
}

// TestDeliveryCap: with one delivery at a time, unreachable recipients do
// not starve a reachable one.
func TestDeliveryCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxDeliveries = 1
	a, b := newNode(t, "alice", cfg), newNode(t, "bob", testConfig())
	a.start(t)
	b.start(t)
	for i := range 5 {
		a.send(t, newNode(t, "ghost", testConfig()), "hello ghost "+string(rune('0'+i)))
	}
	testnet.Connect(t, a.h, b.h)
	id := a.send(t, b, "hi bob")
	a.rec.wait(t, "delivered", status(id, events.DMDelivered))
	a.svc.mu.Lock()
	workers := a.svc.workers
	a.svc.mu.Unlock()
	if workers > 1 {
		t.Fatalf("%d workers running, cap 1", workers)
	}
}

func TestBatchOf(t *testing.T) {
	recs := func(n, size int) []*pb.OutboxRecord {
		out := make([]*pb.OutboxRecord, n)
		for i := range out {
			out[i] = &pb.OutboxRecord{Text: strings.Repeat("x", size)}
		}
		return out
	}
	cases := []struct {
		n, size, want int
	}{
		{1, MaxTextBytes, 1},
		{3, 10, 3},
		{MaxMessagesPerStream + 5, 10, MaxMessagesPerStream},
		{10, MaxTextBytes, maxBatchBytes / MaxTextBytes},
		{10, maxBatchBytes/2 + 1, 1},
	}
	for _, tc := range cases {
		if got := len(batchOf(recs(tc.n, tc.size))); got != tc.want {
			t.Errorf("%d messages of %d bytes: batch of %d, want %d", tc.n, tc.size, got, tc.want)
		}
	}
}

// TestWaitingIsExplained: a message to a peer that cannot be reached says
// why it waits, once per reason: no address known, then (an address
// learned, nothing listening there) the dial refused.
func TestWaitingIsExplained(t *testing.T) {
	a, b := newNode(t, "alice", testConfig()), newNode(t, "bob", testConfig())
	a.start(t)
	waiting := func(id, reason string) func(events.Event) bool {
		return func(e events.Event) bool {
			s, ok := e.(events.DMStatus)
			return ok && s.ID == id && s.Reason == reason
		}
	}
	id := a.send(t, b, "are you there?")
	e := a.rec.wait(t, "no_address", waiting(id, events.DMWaitNoAddress)).(events.DMStatus)
	if e.State != events.DMQueued || e.Detail == "" {
		t.Fatalf("waiting event %+v", e)
	}
	// Many retries later the reason was told once.
	eventually(t, "more attempts", func() bool { return a.svc.Counters().Attempts >= 4 })

	// An address where nothing listens: bob's host, stopped.
	b.startHost(t)
	addrs := b.h.Addrs()
	b.stop(t)
	a.h.Peerstore().AddAddrs(b.id, addrs, peerstore.PermanentAddrTTL)
	e = a.rec.wait(t, "dial_failed", waiting(id, events.DMWaitDialFailed)).(events.DMStatus)
	if e.State != events.DMQueued || !strings.Contains(e.Detail, "127.0.0.1:") || strings.Contains(e.Detail, "\n") {
		t.Fatalf("waiting event %+v: want the address in one line", e)
	}
	start := a.svc.Counters().Attempts
	eventually(t, "more attempts", func() bool { return a.svc.Counters().Attempts >= start+3 })
	told := testnet.Events(a.rec.Recorder, func(s events.DMStatus) bool { return s.Reason != "" })
	if len(told) != 2 {
		t.Fatalf("reasons told %d times, want once each: %+v", len(told), told)
	}
	if got := statesOf(a.rec, id); !reflect.DeepEqual(got, []string{"queued"}) {
		t.Fatalf("states %v, want [queued]", got)
	}
}

// waitingFor matches the dm_status event saying why message id waits.
func waitingFor(id, reason string) func(events.Event) bool {
	return func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.ID == id && s.Reason == reason
	}
}

// TestDeliveredWhenConnectedPeerStartsSpeaking: bob is connected but his
// dm service is not running yet, as when a starting node has dialed its
// peers before registering its handlers; alice's attempt on connecting is
// refused. Once bob's service runs (announced in an identify push) alice
// delivers at once, not after her backoff (an hour here).
func TestDeliveredWhenConnectedPeerStartsSpeaking(t *testing.T) {
	slow := testConfig()
	slow.RetryMin, slow.RetryMax = time.Hour, time.Hour
	a, b := newNode(t, "alice", slow), newNode(t, "bob", testConfig())
	a.start(t)
	b.startHost(t)
	testnet.Connect(t, b.h, a.h)
	id := a.send(t, b, "are you up yet?")
	a.rec.wait(t, "the refused attempt", waitingFor(id, events.DMWaitInterrupted))
	b.startService(t)
	a.rec.wait(t, "delivered", status(id, events.DMDelivered))
	b.rec.wait(t, "dm at bob", isDM)
}

// TestConnectionDuringFailingAttempt: alice's attempt dials a stale
// address of bob's that never answers; bob connects to alice meanwhile.
// When the attempt fails, the next one is due at once, over bob's
// connection, not after alice's backoff (an hour here).
func TestConnectionDuringFailingAttempt(t *testing.T) {
	slow := testConfig()
	slow.RetryMin, slow.RetryMax = time.Hour, time.Hour
	slow.DialTimeout = 2 * time.Second
	a, b := newNode(t, "alice", slow), newNode(t, "bob", testConfig())
	a.start(t)
	b.start(t)
	// A stale address: the kernel completes the TCP handshake, nobody
	// ever speaks, so the dial hangs until DialTimeout.
	stale, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stale.Close() })
	addr, err := manet.FromNetAddr(stale.Addr())
	if err != nil {
		t.Fatal(err)
	}
	a.h.Peerstore().AddAddrs(b.id, []ma.Multiaddr{addr}, peerstore.PermanentAddrTTL)
	id := a.send(t, b, "hello over the new connection")
	eventually(t, "the attempt started", func() bool { return a.svc.Counters().Attempts >= 1 })
	testnet.Connect(t, b.h, a.h)
	a.rec.wait(t, "delivered", status(id, events.DMDelivered))
	b.rec.wait(t, "dm at bob", isDM)
}
