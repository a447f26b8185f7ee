package dm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/proto"
)

// maxVarintLen is the longest unsigned varint of a 64-bit value.
const maxVarintLen = 10

// readUvarint reads a minimally encoded unsigned varint. It returns io.EOF
// when r ends before the first byte, ErrMalformed for a truncated,
// non-minimal or overlong encoding, ErrFrameTooLarge when the value does
// not fit in 63 bits, and other read errors (deadlines, resets) wrapped.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := range maxVarintLen {
		b, err := r.ReadByte()
		if err != nil {
			if i == 0 && errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			if errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("%w: truncated length prefix", ErrMalformed)
			}
			return 0, fmt.Errorf("read length prefix: %w", err)
		}
		if i == maxVarintLen-1 && b > 1 {
			return 0, fmt.Errorf("%w: length prefix overflows 64 bits", ErrFrameTooLarge)
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: length prefix not minimally encoded", ErrMalformed)
			}
			if x > math.MaxInt64 {
				return 0, fmt.Errorf("%w: length prefix %d", ErrFrameTooLarge, x)
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: length prefix longer than %d bytes", ErrMalformed, maxVarintLen)
}

// readFrame reads one unsigned-varint length-prefixed protobuf frame of at
// most max bytes into m. The length is checked before the frame is
// allocated. A clean end of stream before a frame is io.EOF; anything
// else wrong with the bytes is ErrMalformed or ErrFrameTooLarge; stream
// errors (deadline, reset) are wrapped as they are.
func readFrame(r *bufio.Reader, max int, m proto.Message) error {
	n, err := readUvarint(r)
	if err != nil {
		return err
	}
	if n > uint64(max) { // #nosec G115 -- max is a positive frame limit constant
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated frame", ErrMalformed)
		}
		return fmt.Errorf("read frame: %w", err)
	}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(buf, m); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// appendFrame appends m as a length-prefixed frame to dst.
func appendFrame(dst []byte, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	var prefix [maxVarintLen]byte
	n := putUvarint(prefix[:], uint64(size)) // #nosec G115 -- proto.Size is never negative
	dst = append(dst, prefix[:n]...)
	out, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
	if err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	return out, nil
}

// writeFrame writes m as one length-prefixed frame in a single Write.
func writeFrame(w io.Writer, m proto.Message) error {
	b, err := appendFrame(nil, m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

func putUvarint(b []byte, x uint64) int {
	i := 0
	for x >= 0x80 {
		b[i] = byte(x) | 0x80
		x >>= 7
		i++
	}
	b[i] = byte(x)
	return i + 1
}
