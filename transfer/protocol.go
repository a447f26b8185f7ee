package transfer

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/transfer/pb"
)

// ID is the libp2p protocol of file transfer, version 2: an offer may go
// out before the file is hashed (hash-as-you-send; see doc.go).
const ID protocol.ID = "/parley/file/2.0.0"

// IDv1 is version 1 of the protocol, still served for older peers: every
// offer on it carries the whole-file hash, so a file offered to a peer that
// speaks only IDv1 is hashed before the offer goes out.
const IDv1 protocol.ID = "/parley/file/1.0.0"

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
	// length-prefixed Chunk frame (at most 1+1+1+5+1+5+1+1+32 bytes).
	chunkHeaderRoom = 64
)

// writeFrame writes f with its varint length prefix in one Write.
func writeFrame(w io.Writer, f *pb.Frame) error {
	return pbframe.Write(w, f)
}

// appendChunkHeader appends the length-prefixed Chunk frame for chunk
// index of length bytes, with its hash (nil: none), to dst.
func appendChunkHeader(dst []byte, index, length uint32, hash []byte) []byte {
	f := &pb.Frame{Msg: &pb.Frame_Chunk{Chunk: &pb.Chunk{Index: index, Length: length, Hash: hash}}}
	out, err := pbframe.Append(dst, f)
	if err != nil { // unreachable: a Chunk of two integers and a hash always encodes
		return dst
	}
	return out
}

// readFrame reads one frame of at most max bytes (internal/pbframe: the
// length is checked first, and memory follows the bytes that arrive, not
// the length prefix). It returns io.EOF only when the stream ends cleanly
// before a frame starts. A frame too large or malformed is ErrProtocol; a
// stream that ends inside a frame is a broken stream
// (io.ErrUnexpectedEOF), not a protocol violation.
func readFrame(r *bufio.Reader, max int) (*pb.Frame, error) {
	f := new(pb.Frame)
	err := pbframe.Read(r, max, f)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		return nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, err
	case errors.Is(err, pbframe.ErrTooLarge), errors.Is(err, pbframe.ErrMalformed):
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	default:
		return nil, err
	}
	if f.GetMsg() == nil {
		return nil, fmt.Errorf("%w: empty frame", ErrProtocol)
	}
	return f, nil
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
