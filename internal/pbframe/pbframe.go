// Package pbframe reads and writes length-prefixed protobuf frames, the
// framing of Parley's stream protocols (dm, transfer; docs/PROTOCOL.md,
// "Framing conventions"): an unsigned varint byte count (the multiformats
// unsigned-varint, minimally encoded, as go-msgio's pbio writes) followed
// by that many bytes of one protobuf message.
//
// Read takes the caller's cap on the frame size and checks the length
// prefix against it before reading the body, and the body's memory
// follows the bytes that arrive, not what the prefix claims: a prefix
// claiming the cap followed by silence holds a few KiB until the
// stream's deadline. Read never reads past the frame, so a protocol may
// send raw bytes after a frame on the same buffered reader (transfer's
// chunk data). Errors tell apart a clean end of stream (io.EOF), a frame
// over the cap (ErrTooLarge), bytes that are not a frame (ErrMalformed)
// and a failing stream (its own error, wrapped), so that each protocol
// can count them and reset with its own codes.
//
// go-msgio's pbio writes the same bytes, but its reader allocates the
// length its prefix claims before the body arrives, buffers the stream
// in a reader of its own, and reports an oversized frame as
// io.ErrShortBuffer and a bad one as the protobuf error.
package pbframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"
)

// Errors Read returns, wrapped with the details; match them with
// errors.Is.
var (
	// ErrTooLarge: the length prefix is over the cap, or over 2^63-1.
	ErrTooLarge = errors.New("frame too large")
	// ErrMalformed: the bytes are not a frame: a non-minimal or overlong
	// length prefix, a body that is not the protobuf message, or a
	// stream that ends inside the frame. In that last case the error is
	// also io.ErrUnexpectedEOF, so that a protocol that takes a cut
	// stream for a network failure rather than the peer's fault can
	// tell.
	ErrMalformed = errors.New("malformed frame")
)

// MaxPrefixLen is the longest length prefix: the unsigned varint of a
// 64-bit value.
const MaxPrefixLen = 10

// eagerBody is the body size up to which Read allocates the whole body at
// once; bigger bodies grow with the bytes that arrive.
const eagerBody = 4 << 10

// Reader is what Read reads from: a *bufio.Reader on a stream, or a
// *bytes.Reader.
type Reader interface {
	io.Reader
	io.ByteReader
}

// Read reads one frame of at most max bytes (the body, without its
// prefix) from r into m, discarding unknown fields. It returns io.EOF,
// unwrapped, only when r ends cleanly before the frame starts; errors of
// r itself (deadlines, resets) come back wrapped as they are.
func Read(r Reader, max int, m proto.Message) error {
	n, err := readUvarint(r)
	if err != nil {
		return err
	}
	if max < 0 || n > uint64(max) { // #nosec G115 -- max is not negative here
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max)
	}
	body, err := readBody(r, int(n)) // #nosec G115 -- n <= max, an int
	if err != nil {
		return err
	}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, m); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// readUvarint reads a minimally encoded unsigned varint.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := range MaxPrefixLen {
		b, err := r.ReadByte()
		switch {
		case err == nil:
		case i == 0 && errors.Is(err, io.EOF):
			return 0, io.EOF
		case errors.Is(err, io.EOF):
			return 0, fmt.Errorf("%w: truncated length prefix: %w", ErrMalformed, io.ErrUnexpectedEOF)
		default:
			return 0, fmt.Errorf("read length prefix: %w", err)
		}
		if i == MaxPrefixLen-1 && b > 1 {
			return 0, fmt.Errorf("%w: length prefix overflows 64 bits", ErrTooLarge)
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: length prefix not minimally encoded", ErrMalformed)
			}
			if x > math.MaxInt64 {
				return 0, fmt.Errorf("%w: length prefix %d", ErrTooLarge, x)
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: length prefix longer than %d bytes", ErrMalformed, MaxPrefixLen)
}

// readBody reads a body of n bytes. Memory follows what the peer actually
// sent, not what its length prefix claims.
func readBody(r io.Reader, n int) ([]byte, error) {
	var got int
	var body []byte
	var err error
	if n <= eagerBody {
		body = make([]byte, n)
		got, err = io.ReadFull(r, body)
	} else {
		var b bytes.Buffer
		b.Grow(eagerBody)
		var got64 int64
		got64, err = io.CopyN(&b, r, int64(n))
		got, body = int(got64), b.Bytes()
	}
	switch {
	case err == nil:
		return body, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: truncated frame (%d of %d bytes): %w", ErrMalformed, got, n, io.ErrUnexpectedEOF)
	default:
		return nil, fmt.Errorf("read frame (%d of %d bytes): %w", got, n, err)
	}
}

// Append appends m as one frame to dst, growing dst at most once (not at
// all when it has room).
func Append(dst []byte, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	var prefix [MaxPrefixLen]byte
	n := binary.PutUvarint(prefix[:], uint64(size)) // #nosec G115 -- proto.Size is never negative
	dst = append(slices.Grow(dst, n+size), prefix[:n]...)
	start := len(dst)
	out, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	if len(out)-start != size {
		return nil, fmt.Errorf("encode frame: %d bytes, %d announced", len(out)-start, size)
	}
	return out, nil
}

// Write writes m as one frame in a single Write, so that a frame is
// never split between writes on a stream.
func Write(w io.Writer, m proto.Message) error {
	b, err := Append(nil, m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}
