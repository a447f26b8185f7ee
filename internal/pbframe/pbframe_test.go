package pbframe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func uvarint(x uint64) []byte { return binary.AppendUvarint(nil, x) }

func TestRoundTrip(t *testing.T) {
	msgs := []*wrapperspb.BytesValue{
		{},
		{Value: []byte("hi")},
		{Value: bytes.Repeat([]byte{7}, eagerBody)},
		{Value: bytes.Repeat([]byte{8}, 3*eagerBody)},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := Write(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	// Raw bytes after the last frame stay in the reader.
	buf.WriteString("raw")
	br := bufio.NewReader(&buf)
	for i, want := range msgs {
		var got wrapperspb.BytesValue
		if err := Read(br, 4*eagerBody, &got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !proto.Equal(&got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got.Value), len(want.Value))
		}
	}
	if rest, _ := io.ReadAll(br); string(rest) != "raw" {
		t.Fatalf("after the frames: %q, want %q", rest, "raw")
	}
	if err := Read(br, 100, new(wrapperspb.BytesValue)); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF unwrapped", err)
	}
}

func TestAppendAppends(t *testing.T) {
	m := wrapperspb.String("x")
	b, err := Append([]byte("head"), m)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("head"), byte(proto.Size(m)))
	want, _ = proto.MarshalOptions{}.MarshalAppend(want, m)
	if !bytes.Equal(b, want) {
		t.Fatalf("Append = %x, want %x", b, want)
	}
}

func TestReadErrors(t *testing.T) {
	const limit = 2 * eagerBody
	tests := []struct {
		name      string
		in        []byte
		want      error
		truncated bool // also io.ErrUnexpectedEOF
	}{
		{"empty", nil, io.EOF, false},
		{"truncated length", []byte{0x80}, ErrMalformed, true},
		{"non-minimal", []byte{0x80, 0x00}, ErrMalformed, false},
		{"non-minimal 0x81 0x00", []byte{0x81, 0x00}, ErrMalformed, false},
		{"truncated body", []byte{0x05, 0x01}, ErrMalformed, true},
		{"truncated big body", append(uvarint(eagerBody+10), 1, 2, 3), ErrMalformed, true},
		{"truncated body at the cap", append(uvarint(limit), 1, 2, 3), ErrMalformed, true},
		{"bad protobuf", []byte{0x02, 0xff, 0xff}, ErrMalformed, false},
		{"over limit", uvarint(limit + 1), ErrTooLarge, false},
		{"2^63", uvarint(1 << 63), ErrTooLarge, false},
		{"overflow", append(bytes.Repeat([]byte{0xff}, 9), 0x02), ErrTooLarge, false},
		{"11 bytes", bytes.Repeat([]byte{0x80}, 11), ErrTooLarge, false},
		{"11 bytes of 0xff", bytes.Repeat([]byte{0xff}, 11), ErrTooLarge, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Read(bytes.NewReader(tc.in), limit, new(wrapperspb.BytesValue))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tc.truncated {
				t.Fatalf("err = %v: io.ErrUnexpectedEOF %v, want %v", err, got, tc.truncated)
			}
		})
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadKeepsStreamErrors(t *testing.T) {
	boom := errors.New("stream reset")
	for name, r := range map[string]io.Reader{
		"in the prefix":    errReader{boom},
		"in a small body":  io.MultiReader(bytes.NewReader([]byte{0x05, 0x01}), errReader{boom}),
		"in a large body":  io.MultiReader(bytes.NewReader(append(uvarint(eagerBody+1), 1)), errReader{boom}),
		"after the prefix": io.MultiReader(bytes.NewReader([]byte{0x05}), errReader{boom}),
	} {
		err := Read(bufio.NewReader(r), 2*eagerBody, new(wrapperspb.BytesValue))
		if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) || errors.Is(err, io.EOF) {
			t.Errorf("%s: err = %v, want the stream's error only", name, err)
		}
	}
}

// A length prefix claiming a big frame costs memory only for the bytes
// that actually come.
func TestBodyGrowsWithTheBytesSent(t *testing.T) {
	const claimed = 1 << 20
	in := append(uvarint(claimed), bytes.Repeat([]byte{1}, 100)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := Read(bytes.NewReader(in), claimed, new(wrapperspb.BytesValue))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > claimed/4 {
		t.Fatalf("reading 100 bytes of a frame claiming %d allocated %d bytes", claimed, grew)
	}
}

func TestDiscardsUnknownFields(t *testing.T) {
	// Field 2 is unknown to BytesValue.
	b, err := Append(nil, &wrapperspb.BytesValue{Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	body := append(b[1:], 0x10, 0x01)
	var got wrapperspb.BytesValue
	if err := Read(bytes.NewReader(append(uvarint(uint64(len(body))), body...)), 100, &got); err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "v" || len(got.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("got %v, unknown %x", &got, got.ProtoReflect().GetUnknown())
	}
}

// FuzzRead feeds arbitrary bytes to Read: no panic, only the documented
// error classes, nothing decoded beyond the cap, and every decoded
// message survives Append and Read unchanged.
func FuzzRead(f *testing.F) {
	valid, _ := Append(nil, structpb.NewStringValue("hi"))
	f.Add(valid)
	f.Add(append(valid, valid...))
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0x00})
	f.Add(uvarint(1 << 63))
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x02))
	nested, _ := structpb.NewValue(map[string]any{"a": []any{1.0, "b", nil, true}, strings.Repeat("k", 40): map[string]any{}})
	big, _ := Append(nil, nested)
	f.Add(big)
	const limit = 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 16 {
			var m structpb.Value
			err := Read(r, limit, &m)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			if proto.Size(&m) > limit {
				t.Fatalf("decoded %d bytes under a %d-byte cap", proto.Size(&m), limit)
			}
			b, err := Append(nil, &m)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			var again structpb.Value
			if err := Read(bytes.NewReader(b), limit, &again); err != nil || !proto.Equal(&m, &again) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}
