package dm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/internal/pbframe"
	"google.golang.org/protobuf/proto"
)

func TestFrameRoundTrip(t *testing.T) {
	msgs := []*pb.Message{
		{Id: bytes.Repeat([]byte{1}, IDLen), Text: "hi", Nick: "alice", SentAtMs: 1},
		{Id: bytes.Repeat([]byte{2}, IDLen), Text: strings.Repeat("é", MaxTextBytes/2), Nick: strings.Repeat("n", 32), SentAtMs: time.Now().UnixMilli()},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := pbframe.Write(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	// The largest valid message fits in a frame with room to spare.
	if size := proto.Size(msgs[1]); size > MaxFrameSize-1024 {
		t.Fatalf("largest message is %d bytes, too close to MaxFrameSize", size)
	}
	br := bufio.NewReader(&buf)
	for _, want := range msgs {
		var got pb.Message
		if err := pbframe.Read(br, MaxFrameSize, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, want) {
			t.Fatalf("got %v, want %v", &got, want)
		}
	}
	if err := pbframe.Read(br, MaxFrameSize, new(pb.Message)); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"truncated length", []byte{0x80}, ErrMalformed},
		{"non-minimal", []byte{0x80, 0x00}, ErrMalformed},
		{"truncated body", []byte{0x05, 0x01}, ErrMalformed},
		{"bad protobuf", []byte{0x02, 0xff, 0xff}, ErrMalformed},
		{"over limit", uvarint(101), ErrFrameTooLarge},
		{"2^63", uvarint(1 << 63), ErrFrameTooLarge},
		{"overflow", append(bytes.Repeat([]byte{0xff}, 9), 0x02), ErrFrameTooLarge},
		{"11 bytes", bytes.Repeat([]byte{0x80}, 11), ErrFrameTooLarge},
	}
	for _, tc := range cases {
		err := pbframe.Read(bufio.NewReader(bytes.NewReader(tc.in)), 100, new(pb.Message))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadFrameKeepsStreamErrors(t *testing.T) {
	boom := errors.New("stream reset")
	err := pbframe.Read(bufio.NewReader(errReader{boom}), 100, new(pb.Message))
	if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) || errors.Is(err, io.EOF) {
		t.Fatalf("err = %v", err)
	}
	// A failure inside the body is a stream error too, not "malformed".
	r := io.MultiReader(bytes.NewReader([]byte{0x05, 0x01}), errReader{boom})
	err = pbframe.Read(bufio.NewReader(r), 100, new(pb.Message))
	if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame decoder and the
// recipient's checks: no panic, no frame beyond the limit, and every
// decoded frame re-encodes within the limit.
func FuzzReadFrame(f *testing.F) {
	valid, _ := pbframe.Append(nil, &pb.Message{Id: bytes.Repeat([]byte{7}, IDLen), Text: "hi", Nick: "n", SentAtMs: 1})
	f.Add(valid)
	f.Add(append(valid, valid...))
	f.Add([]byte{0x80})
	f.Add(uvarint(1 << 63))
	f.Add([]byte{0x04, 0x12, 0x02, 0xff, 0xfe})
	f.Add(withLen(rawMessage(bytes.Repeat([]byte{1}, IDLen), []byte("\x1b[2J"))))
	s := &Service{cfg: Config{MaxClockSkew: DefaultMaxClockSkew, MaxMessageAge: DefaultMaxMessageAge}}
	const limit = 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for range 16 {
			var m pb.Message
			err := pbframe.Read(br, limit, &m)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			if proto.Size(&m) > limit {
				t.Fatalf("decoded %d bytes from a %d-byte frame limit", proto.Size(&m), limit)
			}
			if s.check(&m, time.Now()) == pb.Ack_REASON_UNSPECIFIED && (m.Text == "" || len(m.Text) > MaxTextBytes) {
				t.Fatalf("check accepted %v", &m)
			}
		}
	})
}
