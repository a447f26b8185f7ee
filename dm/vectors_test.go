package dm

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/internal/pbframe"
)

// dmVectors is docs/vectors/dm.json: the frames of /parley/dm/1.0.0
// (docs/PROTOCOL.md, "Direct messages") and what each side does with a
// given frame. PARLEY_UPDATE_VECTORS=1 rewrites it from the code.
type dmVectors struct {
	Comment   string            `json:"comment"`
	Messages  []dmMessageVector `json:"messages"`
	Acks      []dmAckVector     `json:"acks"`
	Recipient []dmRecvVector    `json:"recipient"`
	Sender    []dmSendVector    `json:"sender"`
}

type dmMessageVector struct {
	IDHex    string `json:"id_hex"`
	Text     string `json:"text"`
	Nick     string `json:"nick"`
	SentAtMs int64  `json:"sent_at_ms"`
	Protobuf string `json:"protobuf_hex"`
	Frame    string `json:"frame_hex"`
}

type dmAckVector struct {
	IDHex        string `json:"id_hex"`
	Status       string `json:"status"`
	Reason       string `json:"reason,omitempty"`
	RetryAfterMs uint32 `json:"retry_after_ms,omitempty"`
	Protobuf     string `json:"protobuf_hex"`
	Frame        string `json:"frame_hex"`
}

// dmRecvVector: the recipient reads Frame (limit 16384 bytes) at NowMs and
// either answers an ack with Status and Reason, or resets the stream
// (Reset: "too_large" or "malformed"). Storage and rate limits aside.
type dmRecvVector struct {
	Case   string `json:"case"`
	Frame  string `json:"frame_hex"`
	NowMs  int64  `json:"now_ms"`
	Status string `json:"ack_status,omitempty"`
	Reason string `json:"ack_reason,omitempty"`
	Reset  string `json:"reset,omitempty"`
}

// dmSendVector: the sender, waiting for the ack of message WaitingFor,
// reads Frame (limit 64 bytes) and marks the message delivered, failed,
// or busy (retry after RetryAfterMs, capped at 60000), or resets.
type dmSendVector struct {
	Case         string `json:"case"`
	WaitingFor   string `json:"waiting_for_id_hex"`
	Frame        string `json:"frame_hex"`
	Outcome      string `json:"outcome"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

func frameHex(t *testing.T, m proto.Message) (string, string) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pbframe.Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b), hex.EncodeToString(buf.Bytes())
}

// rawFrame prefixes body with its uvarint length, without checking it.
func rawFrame(body []byte) string {
	b := uvarint(uint64(len(body)))
	return hex.EncodeToString(append(b, body...))
}

func seqBytes(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// readOnlyStream is the part of a stream readAck uses.
type readOnlyStream struct{ network.Stream }

func (readOnlyStream) SetReadDeadline(time.Time) error { return nil }

func TestVectorsDM(t *testing.T) {
	got := dmVectors{Comment: "Direct messages (docs/PROTOCOL.md, /parley/dm/1.0.0): frame = uvarint(len) || protobuf. " +
		"recipient: what a recipient with default limits (clock skew 1 h, age 30 days) does with each frame at now_ms; " +
		"sender: what a sender waiting for an ack does with each frame (busy without retry_after_ms: it waits its minimum retry interval, 2 s). Hex is lowercase."}
	id := seqBytes(IDLen, 0x10)
	now := int64(1767225600000) // 2026-01-01T00:00:00Z
	for _, m := range []*pb.Message{
		{Id: id, Text: "hello", Nick: "alice", SentAtMs: now},
		{Id: id, Text: "γειά σας 👋\nline two", Nick: "Ｓａｍ  Σας", SentAtMs: now - 1},
		{Id: id, Text: "no nick", SentAtMs: now},
	} {
		p, f := frameHex(t, m)
		got.Messages = append(got.Messages, dmMessageVector{hex.EncodeToString(m.Id), m.Text, m.Nick, m.SentAtMs, p, f})
	}
	for _, a := range []*pb.Ack{
		{Id: id, Status: pb.Ack_STATUS_STORED},
		{Id: id, Status: pb.Ack_STATUS_REJECTED, Reason: pb.Ack_REASON_BAD_TIMESTAMP},
		{Id: id, Status: pb.Ack_STATUS_BUSY, Reason: pb.Ack_REASON_RATE_LIMITED, RetryAfterMs: 1500},
		{Id: id, Status: pb.Ack_STATUS_BUSY, Reason: pb.Ack_REASON_STORAGE, RetryAfterMs: 5000},
	} {
		p, f := frameHex(t, a)
		v := dmAckVector{IDHex: hex.EncodeToString(a.Id), Status: a.Status.String(), RetryAfterMs: a.RetryAfterMs, Protobuf: p, Frame: f}
		if a.Reason != pb.Ack_REASON_UNSPECIFIED {
			v.Reason = a.Reason.String()
		}
		got.Acks = append(got.Acks, v)
	}

	msg := func(text, nick string, sent int64) string {
		_, f := frameHex(t, &pb.Message{Id: id, Text: text, Nick: nick, SentAtMs: sent})
		return f
	}
	// A Message whose text (field 2) is not UTF-8: proto3 refuses to decode it.
	badUTF8 := append([]byte{0x0a, 0x10}, id...)
	badUTF8 = append(badUTF8, 0x12, 0x02, 0xc3, 0x28, 0x20, 0x01)
	hour, day := int64(time.Hour/time.Millisecond), int64(24*time.Hour/time.Millisecond)
	recv := []dmRecvVector{
		{Case: "plain", Frame: msg("hello", "alice", now)},
		{Case: "no nick", Frame: msg("hello", "", now)},
		{Case: "largest text", Frame: msg(strings.Repeat("é", MaxTextBytes/2), strings.Repeat("n", 32), now)},
		{Case: "unknown field ignored", Frame: rawFrame(append(mustProto(t, &pb.Message{Id: id, Text: "hi", SentAtMs: now}), 0x28, 0x07))},
		{Case: "empty text", Frame: msg("", "alice", now)},
		{Case: "text too long", Frame: msg(strings.Repeat("a", MaxTextBytes+1), "alice", now)},
		{Case: "nick with a control character", Frame: msg("hi", "a\tb", now)},
		{Case: "nick starting with a space", Frame: msg("hi", " alice", now)},
		{Case: "nick too long", Frame: msg("hi", strings.Repeat("n", 33), now)},
		{Case: "sent_at zero", Frame: msg("hi", "", 0)},
		{Case: "sent_at one hour ahead", Frame: msg("hi", "", now+hour)},
		{Case: "sent_at beyond one hour ahead", Frame: msg("hi", "", now+hour+1)},
		{Case: "sent_at 30 days back", Frame: msg("hi", "", now-30*day)},
		{Case: "sent_at beyond 30 days back", Frame: msg("hi", "", now-30*day-1)},
		{Case: "id of 15 bytes", Frame: rawFrame(mustProto(t, &pb.Message{Id: id[:15], Text: "hi", SentAtMs: now}))},
		{Case: "no id", Frame: rawFrame(mustProto(t, &pb.Message{Text: "hi", SentAtMs: now}))},
		{Case: "text not UTF-8", Frame: rawFrame(badUTF8)},
		{Case: "length over 16384", Frame: hex.EncodeToString(uvarint(MaxFrameSize + 1))},
		{Case: "length 2^63", Frame: hex.EncodeToString(uvarint(1 << 63))},
		{Case: "non-minimal length", Frame: "8000"},
		{Case: "truncated frame", Frame: "0a0a10"},
		{Case: "not protobuf", Frame: "02ffff"},
	}
	svc := &Service{cfg: Config{MaxClockSkew: DefaultMaxClockSkew, MaxMessageAge: DefaultMaxMessageAge}}
	for i := range recv {
		v := &recv[i]
		v.NowMs = now
		v.Status, v.Reason, v.Reset = recipientVerdict(t, svc, v.Frame, time.UnixMilli(now))
	}
	got.Recipient = recv

	other := seqBytes(IDLen, 0x20)
	ack := func(a *pb.Ack) string { _, f := frameHex(t, a); return f }
	send := []dmSendVector{
		{Case: "stored", Frame: ack(&pb.Ack{Id: id, Status: pb.Ack_STATUS_STORED})},
		{Case: "rejected", Frame: ack(&pb.Ack{Id: id, Status: pb.Ack_STATUS_REJECTED, Reason: pb.Ack_REASON_TEXT_TOO_LONG})},
		{Case: "busy", Frame: ack(&pb.Ack{Id: id, Status: pb.Ack_STATUS_BUSY, Reason: pb.Ack_REASON_RATE_LIMITED, RetryAfterMs: 1500})},
		{Case: "busy, no retry_after (older recipient)", Frame: ack(&pb.Ack{Id: id, Status: pb.Ack_STATUS_BUSY, Reason: pb.Ack_REASON_STORAGE})},
		{Case: "busy, retry_after capped at 60000", Frame: ack(&pb.Ack{Id: id, Status: pb.Ack_STATUS_BUSY, Reason: pb.Ack_REASON_RATE_LIMITED, RetryAfterMs: 3600000})},
		{Case: "ack of another message", Frame: ack(&pb.Ack{Id: other, Status: pb.Ack_STATUS_STORED})},
		{Case: "unknown status", Frame: ack(&pb.Ack{Id: id, Status: 9})},
		{Case: "status unspecified", Frame: ack(&pb.Ack{Id: id})},
		{Case: "length over 64", Frame: hex.EncodeToString(uvarint(MaxAckSize + 1))},
	}
	for i := range send {
		v := &send[i]
		v.WaitingFor = hex.EncodeToString(id)
		v.Outcome, v.RetryAfterMs = senderVerdict(t, svc, v.Frame, id)
	}
	got.Sender = send
	checkDMVectors(t, "dm.json", got)
}

func mustProto(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recipientVerdict runs the recipient's reading and checks on one frame.
func recipientVerdict(t *testing.T, svc *Service, frame string, now time.Time) (status, reason, reset string) {
	t.Helper()
	var m pb.Message
	err := pbframe.Read(bufio.NewReader(bytes.NewReader(mustHex(t, frame))), MaxFrameSize, &m)
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return "", "", "too_large"
	case errors.Is(err, ErrMalformed):
		return "", "", "malformed"
	case err != nil:
		t.Fatalf("frame %s: %v", frame, err)
	}
	if len(m.Id) != IDLen { // accept's first check
		return "", "", "malformed"
	}
	if r := svc.check(&m, now); r != pb.Ack_REASON_UNSPECIFIED {
		return pb.Ack_STATUS_REJECTED.String(), r.String(), ""
	}
	return pb.Ack_STATUS_STORED.String(), "", ""
}

// senderVerdict runs the sender's readAck on one frame.
func senderVerdict(t *testing.T, svc *Service, frame string, id []byte) (string, int64) {
	t.Helper()
	svc.cfg.StreamTimeout = DefaultStreamTimeout
	res, err := svc.readAck(readOnlyStream{}, bufio.NewReader(bytes.NewReader(mustHex(t, frame))), &pb.OutboxRecord{Id: id})
	switch {
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrMalformed):
		return "reset", 0
	case errors.Is(err, io.EOF), err != nil:
		t.Fatalf("ack %s: %v", frame, err)
	case res.busy != nil:
		return "busy", res.busy.after.Milliseconds()
	case res.state == pb.State_STATE_DELIVERED:
		return "delivered", 0
	case res.state == pb.State_STATE_FAILED:
		return "failed", 0
	}
	t.Fatalf("ack %s: no outcome", frame)
	return "", 0
}

// checkDMVectors compares got with docs/vectors/name, or writes it when
// PARLEY_UPDATE_VECTORS=1.
func checkDMVectors[T any](t *testing.T, name string, got T) {
	t.Helper()
	path := filepath.Join("..", "docs", "vectors", name)
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if os.Getenv("PARLEY_UPDATE_VECTORS") == "1" {
		if err := os.WriteFile(path, b, 0o644); err != nil { // #nosec G306 -- documentation
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path) // #nosec G304 -- a fixed test path
	if err != nil {
		t.Fatalf("read %s (PARLEY_UPDATE_VECTORS=1 writes it): %v", path, err)
	}
	if !bytes.Equal(want, b) {
		t.Fatalf("%s does not match the code: the protocol changed, or the code did. "+
			"Compare with PARLEY_UPDATE_VECTORS=1 and git diff.", path)
	}
}
