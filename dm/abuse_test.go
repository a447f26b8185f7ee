package dm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/internal/testnet"
)

func uvarint(x uint64) []byte { return binary.AppendUvarint(nil, x) }

func frameBytes(t testing.TB, m *pb.Message) []byte {
	b, err := pbframe.Append(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawMessage hand-encodes a Message with any bytes as text, which the
// protobuf library would refuse to encode.
func rawMessage(id, text []byte) []byte {
	var b []byte
	b = append(b, 0x0a, byte(len(id)))
	b = append(b, id...)
	b = append(b, 0x12, byte(len(text)))
	return append(b, text...)
}

func withLen(body []byte) []byte { return append(uvarint(uint64(len(body))), body...) }

// abuseTarget starts bob with short stream deadlines and an honest alice
// connected to him.
func abuseTarget(t *testing.T, mutate func(*Config)) (a, b *node) {
	t.Helper()
	bcfg := testConfig()
	bcfg.StreamTimeout = 500 * time.Millisecond
	if mutate != nil {
		mutate(&bcfg)
	}
	a, b = newNode(t, "alice", testConfig()), newNode(t, "bob", bcfg)
	a.start(t)
	b.start(t)
	testnet.Connect(t, a.h, b.h)
	return a, b
}

// honest checks that bob still serves alice.
func honest(t *testing.T, a, b *node, text string) {
	t.Helper()
	id := a.send(t, b, text)
	a.rec.wait(t, "honest message delivered", status(id, events.DMDelivered))
}

func TestBadStreamsAreResetAndCounted(t *testing.T) {
	a, b := abuseTarget(t, nil)
	mallory := testnet.NewHost(t)
	testnet.Connect(t, mallory, b.h)
	id := newMsgID(t)
	valid := frameBytes(t, validMsg(t, "a perfectly fine message"))

	cases := []struct {
		name    string
		payload []byte
		closeW  bool // half-close after the payload
		slow    bool // trickle the payload a byte at a time
		counter func(Counters) uint64
	}{
		{"garbage protobuf", withLen([]byte{0xff, 0xff, 0xff, 0xff, 0xff}), false, false, malformed},
		{"invalid utf8 text", withLen(rawMessage(id, []byte{0xff, 0xfe})), false, false, malformed},
		{"short id", withLen(rawMessage([]byte{1, 2, 3}, []byte("hi"))), false, false, malformed},
		{"empty frame", withLen(nil), false, false, malformed},
		{"truncated frame", append(uvarint(100), make([]byte, 10)...), true, false, malformed},
		{"truncated length", []byte{0x80}, true, false, malformed},
		{"non-minimal length", []byte{0x85, 0x00}, false, false, malformed},
		{"length 2^63", uvarint(1 << 63), false, false, oversize},
		{"length 2^64-1", uvarint(1<<64 - 1), false, false, oversize},
		{"length 1 MiB", uvarint(1 << 20), false, false, oversize},
		{"length one over", uvarint(MaxFrameSize + 1), false, false, oversize},
		{"varint of 11 bytes", append(bytes.Repeat([]byte{0xff}, 10), 0x01), false, false, oversize},
		{"silent after one byte", []byte{0x80}, false, false, timeouts},
		{"slowloris", valid, false, true, timeouts},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counter(b.svc.Counters())
			s := rawStream(t, mallory, b.id)
			if tc.slow {
				go trickle(s, tc.payload, 100*time.Millisecond)
			} else if _, err := s.Write(tc.payload); err != nil {
				t.Fatalf("write: %v", err)
			}
			if tc.closeW {
				_ = s.CloseWrite()
			}
			expectReset(t, s)
			eventually(t, "counter", func() bool { return tc.counter(b.svc.Counters()) == before+1 })
			if len(dms(b.rec)) != 0 {
				t.Fatalf("bad stream produced a dm: %+v", dms(b.rec))
			}
		})
	}
	honest(t, a, b, "still here")
	// Mallory's bad streams did not ban her either.
	s := rawStream(t, mallory, b.id)
	if ack := exchange(t, s, bufio.NewReader(s), validMsg(t, "sorry")); ack.Status != pb.Ack_STATUS_STORED {
		t.Fatalf("ack %v", ack)
	}
}

func malformed(c Counters) uint64 { return c.Malformed }
func oversize(c Counters) uint64  { return c.Oversize }
func timeouts(c Counters) uint64  { return c.Timeouts }

// trickle writes p one byte at a time; it stops at the first error (the
// reset).
func trickle(s network.Stream, p []byte, every time.Duration) {
	for i := range p {
		if _, err := s.Write(p[i : i+1]); err != nil {
			return
		}
		time.Sleep(every)
	}
}

func TestTooManyStreams(t *testing.T) {
	a, b := abuseTarget(t, func(c *Config) {
		c.MaxStreamsPerPeer = 2
		c.StreamTimeout = 2 * time.Second
	})
	mallory := testnet.NewHost(t)
	testnet.Connect(t, mallory, b.h)
	var held []network.Stream
	for range 2 {
		s := rawStream(t, mallory, b.id)
		if _, err := s.Write([]byte{0x80}); err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	eventually(t, "two streams held", func() bool { return b.svc.inboundStreams(mallory.ID()) == 2 })
	extra := rawStream(t, mallory, b.id)
	if _, err := extra.Write([]byte{0x80}); err != nil {
		t.Fatal(err)
	}
	expectReset(t, extra)
	if c := b.svc.Counters(); c.TooManyStreams != 1 {
		t.Fatalf("counters %+v", c)
	}
	// Alice is served while mallory holds her slots.
	honest(t, a, b, "not blocked by mallory")
	for _, s := range held {
		expectReset(t, s)
	}
	if c := b.svc.Counters(); c.Timeouts != 2 {
		t.Fatalf("held streams: counters %+v, want 2 timeouts", c)
	}
}

func TestRejectedMessagesKeepTheStream(t *testing.T) {
	_, b := abuseTarget(t, func(c *Config) { c.PeerBurst = 100 })
	raw := testnet.NewHost(t)
	testnet.Connect(t, raw, b.h)
	s := rawStream(t, raw, b.id)
	br := bufio.NewReader(s)
	now := time.Now()
	msg := func(text, nick string, sent time.Time) *pb.Message {
		return &pb.Message{Id: newMsgID(t), Text: text, Nick: nick, SentAtMs: sent.UnixMilli()}
	}
	cases := []struct {
		name   string
		m      *pb.Message
		reason pb.Ack_Reason
	}{
		{"empty text", msg("", "raw", now), pb.Ack_REASON_EMPTY_TEXT},
		{"text too long", msg(strings.Repeat("x", MaxTextBytes+1), "raw", now), pb.Ack_REASON_TEXT_TOO_LONG},
		{"escape in nick", msg("hi", "evil\x1b[2J", now), pb.Ack_REASON_INVALID_NICK},
		{"bidi nick", msg("hi", "\u202eecila", now), pb.Ack_REASON_INVALID_NICK},
		{"zero sent_at", &pb.Message{Id: newMsgID(t), Text: "hi"}, pb.Ack_REASON_BAD_TIMESTAMP},
		{"from the future", msg("hi", "raw", now.Add(2*time.Hour)), pb.Ack_REASON_BAD_TIMESTAMP},
		{"too old", msg("hi", "raw", now.Add(-31*24*time.Hour)), pb.Ack_REASON_BAD_TIMESTAMP},
		{"ok, no nick", msg("hi", "", now), pb.Ack_REASON_UNSPECIFIED},
		{"ok, longest", msg(strings.Repeat("y", MaxTextBytes), "raw", now.Add(-29*24*time.Hour)), pb.Ack_REASON_UNSPECIFIED},
	}
	stored := 0
	for _, tc := range cases {
		ack := exchange(t, s, br, tc.m)
		want := pb.Ack_STATUS_REJECTED
		if tc.reason == pb.Ack_REASON_UNSPECIFIED {
			want = pb.Ack_STATUS_STORED
			stored++
		}
		if ack.Status != want || ack.Reason != tc.reason || !bytes.Equal(ack.Id, tc.m.Id) {
			t.Errorf("%s: ack %v, want %v %v", tc.name, ack, want, tc.reason)
		}
	}
	if c := b.svc.Counters(); c.Rejected != uint64(len(cases)-stored) || c.Received != uint64(stored) {
		t.Fatalf("counters %+v", c)
	}
	if got := dms(b.rec); len(got) != stored {
		t.Fatalf("%d dm events, want %d", len(got), stored)
	}
}

func TestRateLimit(t *testing.T) {
	_, b := abuseTarget(t, func(c *Config) { c.PeerRate, c.PeerBurst = 5, 2 })
	raw := testnet.NewHost(t)
	testnet.Connect(t, raw, b.h)
	s := rawStream(t, raw, b.id)
	br := bufio.NewReader(s)
	// Three messages at once: the third exceeds the burst.
	var burst []byte
	msgs := []*pb.Message{validMsg(t, "1"), validMsg(t, "2"), validMsg(t, "3")}
	for _, m := range msgs {
		burst = append(burst, frameBytes(t, m)...)
	}
	if _, err := s.Write(burst); err != nil {
		t.Fatal(err)
	}
	for i, want := range []pb.Ack_Status{pb.Ack_STATUS_STORED, pb.Ack_STATUS_STORED, pb.Ack_STATUS_BUSY} {
		var ack pb.Ack
		if err := pbframe.Read(br, MaxAckSize, &ack); err != nil {
			t.Fatal(err)
		}
		if ack.Status != want || !bytes.Equal(ack.Id, msgs[i].Id) {
			t.Fatalf("message %d: ack %v, want %v", i, &ack, want)
		}
		if want == pb.Ack_STATUS_BUSY && ack.Reason != pb.Ack_REASON_RATE_LIMITED {
			t.Fatalf("busy reason %v", ack.Reason)
		}
	}
	// Once busy, the stream stays busy even when tokens are back, so a
	// later message cannot overtake the refused one.
	eventually(t, "tokens refilled", func() bool {
		b.svc.mu.Lock()
		defer b.svc.mu.Unlock()
		return b.svc.limiters[raw.ID()].Tokens() >= 1
	})
	if ack := exchange(t, s, br, msgs[2]); ack.Status != pb.Ack_STATUS_BUSY {
		t.Fatalf("after busy on the same stream: %v", ack)
	}
	s2 := rawStream(t, raw, b.id)
	if ack := exchange(t, s2, bufio.NewReader(s2), msgs[2]); ack.Status != pb.Ack_STATUS_STORED {
		t.Fatalf("on a new stream: %v", ack)
	}
	if c := b.svc.Counters(); c.RateLimited != 2 || c.Received != 3 {
		t.Fatalf("counters %+v", c)
	}
	if got := dms(b.rec); len(got) != 3 || got[2].Text != "3" {
		t.Fatalf("dm events %+v", got)
	}
}

// fakeRecipient answers dm streams on h with the acks answer returns.
func fakeRecipient(t *testing.T, h host.Host, answer func(n int, m *pb.Message) *pb.Ack) {
	var mu sync.Mutex
	n := 0
	h.SetStreamHandler(ProtocolID, func(s network.Stream) {
		defer s.Close()
		br := bufio.NewReader(s)
		for {
			var m pb.Message
			if err := pbframe.Read(br, MaxFrameSize, &m); err != nil {
				return
			}
			mu.Lock()
			n++
			ack := answer(n, &m)
			mu.Unlock()
			if err := pbframe.Write(s, ack); err != nil {
				return
			}
		}
	})
	t.Cleanup(func() { h.RemoveStreamHandler(ProtocolID) })
}

func TestSenderHandlesAcks(t *testing.T) {
	cases := []struct {
		name   string
		answer func(n int, m *pb.Message) *pb.Ack
		state  string
		errSub string
	}{
		{"rejected", func(_ int, m *pb.Message) *pb.Ack {
			return &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_REJECTED, Reason: pb.Ack_REASON_TEXT_TOO_LONG}
		}, events.DMFailed, "rejected by recipient: message too long"},
		{"busy, then stored", func(n int, m *pb.Message) *pb.Ack {
			if n == 1 {
				return &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_BUSY, Reason: pb.Ack_REASON_RATE_LIMITED}
			}
			return &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_STORED}
		}, events.DMDelivered, ""},
		{"wrong id, then stored", func(n int, m *pb.Message) *pb.Ack {
			if n == 1 {
				return &pb.Ack{Id: make([]byte, IDLen), Status: pb.Ack_STATUS_STORED}
			}
			return &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_STORED}
		}, events.DMDelivered, ""},
		{"unknown status, then stored", func(n int, m *pb.Message) *pb.Ack {
			if n == 1 {
				return &pb.Ack{Id: m.Id, Status: 42}
			}
			return &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_STORED}
		}, events.DMDelivered, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNode(t, "alice", testConfig()), newNode(t, "bob", testConfig())
			a.start(t)
			b.startHost(t)
			fakeRecipient(t, b.h, tc.answer)
			testnet.Connect(t, a.h, b.h)
			id := a.send(t, b, "hello")
			e := a.rec.wait(t, tc.state, status(id, tc.state)).(events.DMStatus)
			if !strings.Contains(e.Error, tc.errSub) {
				t.Fatalf("status %+v, want error containing %q", e, tc.errSub)
			}
			if a.svc.Pending() != 0 {
				t.Fatalf("pending %d", a.svc.Pending())
			}
		})
	}
}

// TestCloseAbortsInboundStreams: Close returns promptly although a peer
// holds a stream open, and the peer sees a reset.
func TestCloseAbortsInboundStreams(t *testing.T) {
	_, b := abuseTarget(t, func(c *Config) { c.StreamTimeout = time.Minute })
	mallory := testnet.NewHost(t)
	testnet.Connect(t, mallory, b.h)
	s := rawStream(t, mallory, b.id)
	if _, err := s.Write([]byte{0x80}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stream held", func() bool { return b.svc.inboundStreams(mallory.ID()) == 1 })
	done := make(chan error, 1)
	go func() { done <- b.svc.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a held stream")
	}
	expectReset(t, s)
}
