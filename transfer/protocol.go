package transfer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-varint"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/transfer/pb"
)

// ID is the libp2p protocol of file transfer.
const ID protocol.ID = "/parley/file/1.0.0"

// ServiceName names the service in the libp2p resource manager.
const ServiceName = "parley.transfer"

// Frame limits. Every control frame is an unsigned-varint length followed
// by a protobuf Frame of at most MaxFrameSize bytes; readers refuse a larger
// length before allocating. Only a Manifest comes near the limit
// (MaxChunks*HashSize = 512 KiB of chunk hashes).
const (
	MaxFrameSize  = 1 << 20
	idLen         = 16
	maxNameLen    = 1024 // bytes of Offer.name on the wire
	maxMessageLen = 256  // bytes of Status.message and Notice.message
	// chunkHeaderRoom is the space reserved in front of chunk data for its
	// length-prefixed Chunk frame (at most 1+1+1+5+1+5 bytes).
	chunkHeaderRoom = 16
)

// writeFrame writes f with its varint length prefix in one Write.
func writeFrame(w io.Writer, f *pb.Frame) error {
	size := proto.Size(f)
	buf := make([]byte, 0, binary.MaxVarintLen64+size)
	buf = binary.AppendUvarint(buf, uint64(size)) // #nosec G115 -- proto.Size is never negative
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, f)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// appendChunkHeader appends the length-prefixed Chunk frame for chunk
// index of length bytes to dst.
func appendChunkHeader(dst []byte, index, length uint32) []byte {
	f := &pb.Frame{Msg: &pb.Frame_Chunk{Chunk: &pb.Chunk{Index: index, Length: length}}}
	dst = binary.AppendUvarint(dst, uint64(proto.Size(f))) // #nosec G115 -- proto.Size is never negative
	dst, _ = proto.MarshalOptions{}.MarshalAppend(dst, f)  // a Chunk always encodes
	return dst
}

// readFrame reads one frame of at most max bytes. It returns io.EOF only
// when the stream ends cleanly before a frame starts.
func readFrame(r *bufio.Reader, max int) (*pb.Frame, error) {
	n, err := varint.ReadUvarint(r)
	switch {
	case errors.Is(err, io.EOF):
		return nil, io.EOF
	case errors.Is(err, varint.ErrOverflow), errors.Is(err, varint.ErrNotMinimal):
		return nil, fmt.Errorf("%w: frame length: %v", ErrProtocol, err)
	case err != nil:
		return nil, fmt.Errorf("read frame length: %w", err)
	case n > uint64(max): // #nosec G115 -- max is a positive frame limit
		return nil, fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrProtocol, n, max)
	}
	buf, err := readBody(r, int(n)) // #nosec G115 -- n <= max, an int
	if err != nil {
		return nil, err
	}
	f := new(pb.Frame)
	if err := proto.Unmarshal(buf, f); err != nil {
		return nil, fmt.Errorf("%w: decode frame: %v", ErrProtocol, err)
	}
	if f.GetMsg() == nil {
		return nil, fmt.Errorf("%w: empty frame", ErrProtocol)
	}
	return f, nil
}

// eagerFrame is the frame size up to which readBody allocates the whole
// frame at once; bigger frames grow with the bytes that arrive.
const eagerFrame = 4 << 10

// readBody reads a frame body of n bytes. Memory follows what the peer
// actually sent, not what its length prefix claims: a prefix claiming
// 1 MiB followed by silence holds a few KiB until the stream's deadline,
// not 1 MiB.
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= eagerFrame {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read frame: %w", err)
		}
		return buf, nil
	}
	var b bytes.Buffer
	b.Grow(eagerFrame)
	got, err := io.CopyN(&b, r, int64(n))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame (%d of %d bytes): %w", got, n, err)
	}
	return b.Bytes(), nil
}

// chunkRange is a validated run of wanted chunks.
type chunkRange struct{ start, count int }

// validateGet checks a Get's ranges against a file of n chunks: each range
// non-empty, inside the file, ascending and disjoint.
func validateGet(g *pb.Get, n int) ([]chunkRange, error) {
	if len(g.GetRanges()) > n {
		return nil, fmt.Errorf("%w: %d ranges for %d chunks", ErrProtocol, len(g.GetRanges()), n)
	}
	out := make([]chunkRange, 0, len(g.GetRanges()))
	next := 0
	for _, r := range g.GetRanges() {
		start, count := int64(r.GetStart()), int64(r.GetCount())
		if count == 0 || start < int64(next) || start+count > int64(n) {
			return nil, fmt.Errorf("%w: bad range %d+%d for %d chunks", ErrProtocol, start, count, n)
		}
		out = append(out, chunkRange{int(start), int(count)})
		next = int(start + count)
	}
	return out, nil
}

func wireRanges(rs []chunkRange) []*pb.Range {
	out := make([]*pb.Range, len(rs))
	for i, r := range rs {
		out[i] = &pb.Range{Start: uint32(r.start), Count: uint32(r.count)} // #nosec G115 -- ranges lie within MaxChunks
	}
	return out
}
