package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/transfer/pb"
)

func frameBytes(t testing.TB, frames ...*pb.Frame) []byte {
	var b bytes.Buffer
	for _, f := range frames {
		if err := writeFrame(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []*pb.Frame{
		{Msg: &pb.Frame_Offer{Offer: &pb.Offer{Id: make([]byte, idLen), Name: "a.txt", Size: 7, Hash: make([]byte, HashSize)}}},
		{Msg: &pb.Frame_Get{Get: &pb.Get{Id: make([]byte, idLen), Ranges: []*pb.Range{{Start: 1, Count: 2}}}}},
		{Msg: &pb.Frame_Status{Status: &pb.Status{Code: pb.Code_BUSY, Message: "x"}}},
	}
	br := bufio.NewReader(bytes.NewReader(frameBytes(t, frames...)))
	for i, want := range frames {
		got, err := readFrame(br, MaxFrameSize)
		if err != nil || !proto.Equal(got, want) {
			t.Fatalf("frame %d: got %v, %v", i, got, err)
		}
	}
	if _, err := readFrame(br, MaxFrameSize); !errors.Is(err, io.EOF) {
		t.Fatalf("after last frame: %v, want EOF", err)
	}
}

func TestChunkHeaderFitsRoom(t *testing.T) {
	h := appendChunkHeader(nil, ^uint32(0), ^uint32(0), make([]byte, HashSize))
	if len(h) > chunkHeaderRoom {
		t.Fatalf("chunk header of %d bytes exceeds %d", len(h), chunkHeaderRoom)
	}
	f, err := readFrame(bufio.NewReader(bytes.NewReader(h)), maxChunkFrame)
	if err != nil || f.GetChunk().GetIndex() != ^uint32(0) {
		t.Fatalf("decode header: %v %v", f, err)
	}
}

func TestReadFrameRejects(t *testing.T) {
	tests := map[string][]byte{
		"too long":       binary.AppendUvarint(nil, MaxFrameSize+1),
		"non-minimal":    {0x81, 0x00},
		"truncated":      {0x05, 0x01},
		"bad protobuf":   {0x02, 0xff, 0xff},
		"empty frame":    {0x00},
		"varint overrun": bytes.Repeat([]byte{0xff}, 11),
	}
	for name, in := range tests {
		if _, err := readFrame(bufio.NewReader(bytes.NewReader(in)), MaxFrameSize); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestValidateGet(t *testing.T) {
	ok := []*pb.Range{{Start: 0, Count: 2}, {Start: 5, Count: 1}}
	if _, err := validateGet(&pb.Get{Ranges: ok}, 6); err != nil {
		t.Fatalf("valid ranges: %v", err)
	}
	bad := [][]*pb.Range{
		{{Start: 0, Count: 0}},
		{{Start: 5, Count: 2}},
		{{Start: 2, Count: 1}, {Start: 1, Count: 1}},
		{{Start: 0, Count: 2}, {Start: 1, Count: 1}},
		{{Start: ^uint32(0), Count: ^uint32(0)}},
	}
	for _, rs := range bad {
		if _, err := validateGet(&pb.Get{Ranges: rs}, 6); !errors.Is(err, ErrProtocol) {
			t.Errorf("ranges %v: %v", rs, err)
		}
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame decoder and to the
// checks every decoded message goes through; none may panic, and no frame
// over the limit may decode.
func FuzzReadFrame(f *testing.F) {
	f.Add(frameBytes(f, &pb.Frame{Msg: &pb.Frame_Offer{Offer: &pb.Offer{Id: make([]byte, idLen), Name: "../CON.txt", Size: 9, Hash: make([]byte, HashSize)}}}))
	f.Add(frameBytes(f, &pb.Frame{Msg: &pb.Frame_Get{Get: &pb.Get{Id: make([]byte, idLen), Manifest: true, Ranges: []*pb.Range{{Start: 0, Count: 3}}}}}))
	f.Add(frameBytes(f, &pb.Frame{Msg: &pb.Frame_Manifest{Manifest: &pb.Manifest{Size: 40000, ChunkSize: MinChunkSize, Hash: make([]byte, HashSize), ChunkHashes: make([]byte, 3*HashSize)}}}))
	f.Add(frameBytes(f, &pb.Frame{Msg: &pb.Frame_Notice{Notice: &pb.Notice{Id: make([]byte, idLen), Kind: pb.Notice_DONE}}}))
	f.Add(appendChunkHeader(nil, 3, 100, nil))
	f.Add(appendChunkHeader(nil, 3, 100, make([]byte, HashSize)))
	f.Add(frameBytes(f, &pb.Frame{Msg: &pb.Frame_Offer{Offer: &pb.Offer{Id: make([]byte, idLen), Name: "a", Size: 1 << 30, ChunkSize: 1 << 20}}}))
	f.Add([]byte{0x81, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		for range 8 {
			fr, err := readFrame(br, 4096)
			if err != nil {
				return
			}
			if proto.Size(fr) > 4096 {
				t.Fatalf("decoded a frame of %d bytes over the limit", proto.Size(fr))
			}
			switch m := fr.GetMsg().(type) {
			case *pb.Frame_Get:
				_, _ = validateGet(m.Get, 64)
			case *pb.Frame_Manifest:
				if man, err := manifestFromWire(m.Manifest); err == nil {
					var h [HashSize]byte
					copy(h[:], m.Manifest.GetHash())
					_ = man.check(man.size, h)
				}
			case *pb.Frame_Offer:
				s := &Service{cfg: Config{MaxFileSize: MaxSize}}
				for _, v2 := range []bool{false, true} {
					name, cs, refusal := s.checkOffer(m.Offer, v2)
					if refusal != nil {
						continue
					}
					if name == "" {
						t.Fatal("accepted offer with an empty name")
					}
					if cs != 0 && (!v2 || !validLayout(int64(m.Offer.GetSize()), cs)) { // #nosec G115 -- fuzz
						t.Fatalf("accepted an unhashed offer with chunk size %d (v2 %v)", cs, v2)
					}
					if cs == 0 && len(m.Offer.GetHash()) != HashSize {
						t.Fatal("accepted an offer with neither hash nor chunk size")
					}
				}
			case *pb.Frame_Status:
				_ = remoteError(m.Status.GetCode(), m.Status.GetMessage()).Error()
			}
		}
	})
}

// FuzzManifest checks that a manifest received from a peer either fails
// check or is internally consistent, and that a manifest built from data
// verifies exactly that data.
func FuzzManifest(f *testing.F) {
	f.Add(uint64(40000), uint32(MinChunkSize), []byte("seed"), []byte{1, 2, 3})
	f.Add(uint64(0), uint32(0), []byte{}, []byte{})
	f.Add(uint64(MinChunkSize), uint32(MinChunkSize), make([]byte, HashSize), make([]byte, HashSize))
	f.Fuzz(func(t *testing.T, size uint64, chunkSize uint32, hash, cvs []byte) {
		m, err := manifestFromWire(&pb.Manifest{Size: size, ChunkSize: chunkSize, Hash: hash, ChunkHashes: cvs})
		if err == nil {
			var h [HashSize]byte
			copy(h[:], hash)
			if m.check(m.size, h) == nil {
				if m.numChunks() > MaxChunks || len(m.cvs) != m.numChunks()*HashSize {
					t.Fatalf("inconsistent manifest passed check: %+v", m)
				}
			}
		}
		// Build from the fuzz bytes as file data.
		data := append(hash, cvs...)
		bm, err := buildManifest(context.Background(), bytes.NewReader(data), int64(len(data)), MinChunkSize, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := bm.check(int64(len(data)), bm.hash); err != nil {
			t.Fatalf("built manifest fails check: %v", err)
		}
		for i := range bm.numChunks() {
			if !bm.verifyChunk(i, data[int64(i)*MinChunkSize:int64(i)*MinChunkSize+bm.chunkLen(i)]) {
				t.Fatalf("chunk %d does not verify", i)
			}
		}
	})
}

// A length prefix claiming a big frame costs memory only for the bytes
// that actually come (internal/pbframe reads the body as it arrives).
func TestFrameBodyGrowsWithTheBytesSent(t *testing.T) {
	const claimed = MaxFrameSize
	sent := append(binary.AppendUvarint(nil, claimed), bytes.Repeat([]byte{1}, 100)...)
	br := bufio.NewReader(bytes.NewReader(sent))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := readFrame(br, claimed)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > claimed/4 {
		t.Fatalf("reading 100 bytes of a frame claiming %d allocated %d bytes", claimed, grew)
	}
	// A frame over the size read at once still arrives whole.
	big := &pb.Frame{Msg: &pb.Frame_Manifest{Manifest: &pb.Manifest{ChunkHashes: bytes.Repeat([]byte{2}, 64<<10)}}}
	got, err := readFrame(bufio.NewReader(bytes.NewReader(frameBytes(t, big))), MaxFrameSize)
	if err != nil || !proto.Equal(got, big) {
		t.Fatalf("whole frame: %v", err)
	}
}

// A stream that ends inside a frame is a broken stream, as before
// internal/pbframe: not a protocol violation, so a transfer resumes.
func TestReadFrameTruncatedIsNotProtocolError(t *testing.T) {
	for name, in := range map[string][]byte{
		"in the prefix":      {0x80},
		"in a small frame":   {0x05, 0x01},
		"in a large frame":   append(binary.AppendUvarint(nil, 8<<10), 1),
		"right after prefix": {0x05},
	} {
		_, err := readFrame(bufio.NewReader(bytes.NewReader(in)), MaxFrameSize)
		if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want io.ErrUnexpectedEOF and not ErrProtocol", name, err)
		}
	}
}

// FuzzCommitment feeds a sender's commitment (a Manifest from the wire) to
// the recipient's checks of a transfer offered without a hash: decoding,
// check against its own hash, then matchCommitment against the chunk
// hashes the recipient verified. None may panic, and a commitment that
// passes must agree with every verified chunk hash.
func FuzzCommitment(f *testing.F) {
	data := bytes.Repeat([]byte("parley"), 20000)
	good, err := buildManifest(context.Background(), bytes.NewReader(data), int64(len(data)), MinChunkSize, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint64(good.size), uint32(good.chunkSize), good.hash[:], good.cvs, []byte{0xff})
	f.Add(uint64(good.size), uint32(MinChunkSize), make([]byte, HashSize), make([]byte, len(good.cvs)), []byte{1})
	f.Add(uint64(0), uint32(MinChunkSize), []byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, size uint64, chunkSize uint32, hash, cvs, verified []byte) {
		c, err := manifestFromWire(&pb.Manifest{Size: size, ChunkSize: chunkSize, Hash: hash, ChunkHashes: cvs})
		if err != nil || c.check(c.size, c.hash) != nil {
			return
		}
		open := newOpenManifest(good.size, good.chunkSize)
		open.sent = nil
		copy(open.cvs, good.cvs)
		bm := newBitmap(open.numChunks())
		copy(bm, verified)
		for i := open.numChunks(); i < len(bm)*8; i++ {
			bm.clear(i)
		}
		if open.matchCommitment(c, bm) != nil {
			return
		}
		if c.size != open.size || c.chunkSize != open.chunkSize {
			t.Fatalf("commitment of another layout passed: %d/%d", c.size, c.chunkSize)
		}
		for i := range open.numChunks() {
			if bm.has(i) && !bytes.Equal(c.chunkHash(i), good.chunkHash(i)) {
				t.Fatalf("commitment passed with another hash for verified chunk %d", i)
			}
		}
	})
}
