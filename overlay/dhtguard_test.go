package overlay

import (
	"encoding/binary"
	"errors"
	"testing"
)

func frame(n int) []byte {
	b := binary.AppendUvarint(nil, uint64(n))
	return append(b, make([]byte, n)...)
}

func TestFrameLimit(t *testing.T) {
	const max = 300 // a two-byte length prefix
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"nothing", nil, true},
		{"empty frames", cat(frame(0), frame(0)), true},
		{"frames up to the limit", cat(frame(1), frame(max), frame(50), frame(max)), true},
		{"a prefix without its body yet", cat(frame(max), binary.AppendUvarint(nil, 200)), true},
		{"over the limit", cat(frame(max), frame(max+1)), false},
		{"2^63 after a frame", cat(frame(3), binary.AppendUvarint(nil, 1<<63)), false},
		{"4 MiB - 1, no body", binary.AppendUvarint(nil, 4<<20-1), false},
		{"overlong zero varint", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// All at once, and one byte at a time: prefixes split
			// across reads are followed too.
			whole := &frameLimit{max: max}
			err := whole.check(tc.in)
			var bytewise error
			f := &frameLimit{max: max}
			for i := range tc.in {
				if bytewise = f.check(tc.in[i : i+1]); bytewise != nil {
					break
				}
			}
			for _, err := range []error{err, bytewise} {
				if (err == nil) != tc.ok {
					t.Fatalf("check = %v, want ok=%v", err, tc.ok)
				}
				if err != nil && !errors.Is(err, errDHTRequestTooLarge) {
					t.Fatalf("%v is not errDHTRequestTooLarge", err)
				}
			}
		})
	}
}
