package dm

import (
	"bufio"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/internal/testnet"
)

// TestBusyIsPaced: 300 messages queued at once, one Send each (as 300
// /msg commands), to a connected recipient with the default rate limit
// (burst 128, then 10/s) and the sender's default backoff (2 s to 5 min).
// All arrive, in order, within twice the time the rate allows, and the
// busy answers neither grow the backoff nor multiply the attempts.
func TestBusyIsPaced(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 20 s")
	}
	cfg := Config{DialTimeout: 5 * time.Second, StreamTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	a, b := newNode(t, "alice", cfg), newNode(t, "bob", cfg)
	a.start(t)
	b.start(t)
	testnet.Connect(t, a.h, b.h)
	const n = 300
	allowed := time.Duration(float64(n-DefaultPeerBurst) / DefaultPeerRate * float64(time.Second))
	start := time.Now()
	var last string
	for i := range n {
		last = a.send(t, b, fmt.Sprintf("m%03d", i))
	}
	deadline := 2 * allowed
	a.rec.WaitWithin(t, deadline+time.Second, "last delivered", status(last, events.DMDelivered))
	took := time.Since(start)
	eventually(t, "all delivered", func() bool { return a.svc.Counters().Delivered == n })
	if took > deadline {
		t.Fatalf("%d messages took %v, the rate allows %v; want at most %v", n, took, allowed, deadline)
	}
	got := dms(b.rec)
	if len(got) != n {
		t.Fatalf("bob got %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if want := fmt.Sprintf("m%03d", i); m.Text != want {
			t.Fatalf("message %d is %q, want %q (order)", i, m.Text, want)
		}
	}
	// 300 messages fit on 5 streams; each busy wait costs one more.
	c := a.svc.Counters()
	if c.Attempts > n/10 {
		t.Fatalf("%d attempts for %d messages: retries multiplied", c.Attempts, n)
	}
	t.Logf("%d messages in %v (rate allows %v), %d attempts, %d busy answers", n, took, allowed, c.Attempts, b.svc.Counters().RateLimited)
}

// TestRetryAfter: a busy ack says how long to wait; on a stream, the n-th
// refused message asks for the time n tokens take.
func TestRetryAfter(t *testing.T) {
	_, b := abuseTarget(t, func(c *Config) { c.PeerRate, c.PeerBurst = 10, 2 })
	raw := testnet.NewHost(t)
	testnet.Connect(t, raw, b.h)
	s := rawStream(t, raw, b.id)
	br := bufio.NewReader(s)
	var burst []byte
	msgs := make([]*pb.Message, 6)
	for i := range msgs {
		msgs[i] = validMsg(t, "x")
		burst = append(burst, frameBytes(t, msgs[i])...)
	}
	if _, err := s.Write(burst); err != nil {
		t.Fatal(err)
	}
	var prev uint32
	for i := range msgs {
		var ack pb.Ack
		if err := pbframe.Read(br, MaxAckSize, &ack); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if ack.Status != pb.Ack_STATUS_STORED || ack.RetryAfterMs != 0 {
				t.Fatalf("ack %d: %v, want stored", i, &ack)
			}
			continue
		}
		refused := i - 1
		// refused tokens at 10/s, less what refilled meanwhile.
		hi := uint32(refused * 100)
		if ack.Status != pb.Ack_STATUS_BUSY || ack.RetryAfterMs > hi || ack.RetryAfterMs < hi-60 || ack.RetryAfterMs <= prev {
			t.Fatalf("ack %d: %v, want busy with retry after about %d ms, more than %d", i, &ack, hi, prev)
		}
		prev = ack.RetryAfterMs
	}
}

// TestBusyDoesNotGrowBackoff: a recipient that is busy three times, asking
// for 100 ms each time, gets the message 300 ms later, not after the
// backoff (RetryMin 2 s) doubled three times.
func TestBusyDoesNotGrowBackoff(t *testing.T) {
	cfg := testConfig()
	cfg.RetryMin, cfg.RetryMax = 2*time.Second, time.Minute
	a, b := newNode(t, "alice", cfg), newNode(t, "bob", cfg)
	a.start(t)
	b.startHost(t)
	fakeRecipient(t, b.h, func(n int, m *pb.Message) *pb.Ack {
		if n <= 3 {
			return &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_BUSY, Reason: pb.Ack_REASON_STORAGE, RetryAfterMs: 100}
		}
		return &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_STORED}
	})
	testnet.Connect(t, a.h, b.h)
	start := time.Now()
	id := a.send(t, b, "hello")
	a.rec.wait(t, "delivered", status(id, events.DMDelivered))
	if took := time.Since(start); took > 1500*time.Millisecond || took < 300*time.Millisecond {
		t.Fatalf("delivered after %v, want about 300 ms", took)
	}
	if c := a.svc.Counters(); c.Attempts != 4 {
		t.Fatalf("%d attempts, want 4", c.Attempts)
	}
}
