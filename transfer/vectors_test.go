package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"lukechampine.com/blake3"

	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/transfer/pb"
)

// transferVectors is docs/vectors/transfer.json: the hashes, manifests
// and frames of /parley/file/2.0.0 (docs/PROTOCOL.md, "File transfer
// protocol"). PARLEY_UPDATE_VECTORS=1 rewrites it from the code.
type transferVectors struct {
	Comment     string              `json:"comment"`
	Files       []fileVector        `json:"files"`
	ChunkSizes  []chunkSizeVector   `json:"chunk_sizes"`
	Frames      []frameVector       `json:"frames"`
	Gets        []getVector         `json:"get_ranges"`
	Commitments []commitmentVector  `json:"commitments"`
	Manifests   []manifestChkVector `json:"manifest_checks"`
}

// fileVector: the file of Size bytes whose byte at offset i is i mod 251,
// cut into chunks of ChunkSize.
type fileVector struct {
	Size        int64    `json:"size"`
	ChunkSize   int64    `json:"chunk_size"`
	ChunkHashes []string `json:"chunk_hashes_hex"`
	Hash        string   `json:"file_hash_hex"`
	Manifest    string   `json:"manifest_frame_hex"`
}

type chunkSizeVector struct {
	Size      int64 `json:"size"`
	Want      int64 `json:"configured"`
	ChunkSize int64 `json:"chunk_size"`
}

type frameVector struct {
	Name  string `json:"name"`
	Frame string `json:"frame_hex"`
}

// getVector: a Get's ranges against a file of Chunks chunks.
type getVector struct {
	Chunks int      `json:"chunks"`
	Ranges [][2]int `json:"ranges"`
	Valid  bool     `json:"valid"`
}

// commitmentVector: a recipient of a v2 offer {size, chunk_size} that
// verified every chunk against the hash the chunk came with
// (ChunkHashes) reads the sender's commitment (a Manifest frame) and
// accepts it or fails the transfer.
type commitmentVector struct {
	Case        string   `json:"case"`
	Size        int64    `json:"offered_size"`
	ChunkSize   int64    `json:"offered_chunk_size"`
	ChunkHashes []string `json:"verified_chunk_hashes_hex"`
	Manifest    string   `json:"commitment_frame_hex"`
	Accept      bool     `json:"accept"`
}

// manifestChkVector: a recipient of an offer {size, hash} reads a
// Manifest frame before any chunk and accepts it or fails the transfer.
type manifestChkVector struct {
	Case     string `json:"case"`
	Size     int64  `json:"offered_size"`
	Hash     string `json:"offered_hash_hex"`
	Manifest string `json:"manifest_frame_hex"`
	Accept   bool   `json:"accept"`
}

func vectorFile(size int64) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func frameHexOf(t *testing.T, f *pb.Frame) string {
	t.Helper()
	var buf bytes.Buffer
	if err := pbframe.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(buf.Bytes())
}

func manifestFrame(t *testing.T, m *manifest) string {
	t.Helper()
	return frameHexOf(t, &pb.Frame{Msg: &pb.Frame_Manifest{Manifest: m.toWire()}})
}

func hexList(cvs []byte) []string {
	out := []string{}
	for i := 0; i+HashSize <= len(cvs); i += HashSize {
		out = append(out, hex.EncodeToString(cvs[i:i+HashSize]))
	}
	return out
}

func decodeManifestFrame(t *testing.T, s string) *pb.Manifest {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	f := new(pb.Frame)
	if err := pbframe.Read(bytes.NewReader(b), MaxFrameSize, f); err != nil {
		t.Fatal(err)
	}
	return f.GetManifest()
}

func TestVectorsTransfer(t *testing.T) {
	got := transferVectors{Comment: "File transfer (docs/PROTOCOL.md, /parley/file/2.0.0): files[i] is the file whose byte at " +
		"offset k is k mod 251; chunk hashes are BLAKE3 chaining values of the chunk's subtree (ROOT flag only for a " +
		"one-chunk file), the file hash is BLAKE3-256 of the file. Frames are uvarint(len) || Frame. Transfer id " +
		"0x00..0x0f, hex lowercase."}
	ctx := context.Background()
	for _, f := range []struct{ size, cs int64 }{
		{0, MinChunkSize}, {1, MinChunkSize}, {1024, MinChunkSize}, {1025, MinChunkSize}, {MinChunkSize, MinChunkSize},
		{MinChunkSize + 1, MinChunkSize}, {3*MinChunkSize + 100, MinChunkSize}, {5 * MinChunkSize, MinChunkSize},
		{100000, 2 * MinChunkSize},
	} {
		data := vectorFile(f.size)
		m, err := buildManifest(ctx, bytes.NewReader(data), f.size, f.cs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.hash != blake3.Sum256(data) {
			t.Fatalf("size %d: manifest hash is not BLAKE3 of the file", f.size)
		}
		if err := m.check(f.size, m.hash); err != nil {
			t.Fatalf("size %d: %v", f.size, err)
		}
		for i := range m.numChunks() {
			if !m.verifyChunk(i, data[int64(i)*f.cs:int64(i)*f.cs+m.chunkLen(i)]) {
				t.Fatalf("size %d: chunk %d does not verify", f.size, i)
			}
		}
		got.Files = append(got.Files, fileVector{f.size, f.cs, hexList(m.cvs), hex.EncodeToString(m.hash[:]), manifestFrame(t, m)})
	}
	for _, c := range [][2]int64{{0, 1 << 20}, {1, 1 << 20}, {1 << 30, 1 << 20}, {16 << 30, 1 << 20}, {16<<30 + 1, 1 << 20},
		{1 << 30, 1000}, {1 << 30, 3 << 20}, {MaxSize, 1 << 20}} {
		cs, err := chooseChunkSize(c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		if !validLayout(c[0], cs) {
			t.Fatalf("chooseChunkSize(%d, %d) = %d, not a valid layout", c[0], c[1], cs)
		}
		got.ChunkSizes = append(got.ChunkSizes, chunkSizeVector{c[0], c[1], cs})
	}

	id := make([]byte, idLen)
	for i := range id {
		id[i] = byte(i)
	}
	h := blake3.Sum256(vectorFile(100000))
	small := got.Files[6]
	cv1, _ := hex.DecodeString(small.ChunkHashes[1])
	chunkHdr := func(index, length uint32, hash []byte) string {
		return hex.EncodeToString(appendChunkHeader(nil, index, length, hash))
	}
	frames := []struct {
		name string
		f    *pb.Frame
	}{
		{"offer v1 (with hash)", &pb.Frame{Msg: &pb.Frame_Offer{Offer: &pb.Offer{Id: id, Name: "report.pdf", Size: 100000, Hash: h[:]}}}},
		{"offer v2 (hash-as-you-send)", &pb.Frame{Msg: &pb.Frame_Offer{Offer: &pb.Offer{Id: id, Name: "Σχέδιο 1.txt", Size: 100000, ChunkSize: 2 * MinChunkSize}}}},
		{"status OK", &pb.Frame{Msg: &pb.Frame_Status{Status: &pb.Status{Code: pb.Code_OK}}}},
		{"status TOO_LARGE with message", &pb.Frame{Msg: &pb.Frame_Status{Status: &pb.Status{Code: pb.Code_TOO_LARGE, Message: "over 16 GiB"}}}},
		{"notice REJECT", &pb.Frame{Msg: &pb.Frame_Notice{Notice: &pb.Notice{Id: id, Kind: pb.Notice_REJECT, Code: pb.Code_REJECTED}}}},
		{"notice DONE", &pb.Frame{Msg: &pb.Frame_Notice{Notice: &pb.Notice{Id: id, Kind: pb.Notice_DONE, Hash: h[:]}}}},
		{"notice FAILED EXPIRED", &pb.Frame{Msg: &pb.Frame_Notice{Notice: &pb.Notice{Id: id, Kind: pb.Notice_FAILED, Code: pb.Code_EXPIRED}}}},
		{"get manifest only (before any chunk, and the v2 commitment)", &pb.Frame{Msg: &pb.Frame_Get{Get: &pb.Get{Id: id, Manifest: true}}}},
		{"get ranges 0+1, 2+2", &pb.Frame{Msg: &pb.Frame_Get{Get: &pb.Get{Id: id, Ranges: []*pb.Range{{Start: 0, Count: 1}, {Start: 2, Count: 2}}}}}},
	}
	for _, f := range frames {
		got.Frames = append(got.Frames, frameVector{f.name, frameHexOf(t, f.f)})
	}
	got.Frames = append(got.Frames,
		frameVector{"chunk header, index 1 of files[6], length 16384, v1 (no hash); the chunk's bytes follow", chunkHdr(1, MinChunkSize, nil)},
		frameVector{"chunk header, index 1 of files[6], length 16384, v2 (hash); the chunk's bytes follow", chunkHdr(1, MinChunkSize, cv1)},
		frameVector{"empty frame (no message set): a protocol error", frameHexOf(t, &pb.Frame{})},
	)
	for _, f := range got.Frames {
		b, _ := hex.DecodeString(f.Frame)
		fr, err := readFrame(bufioReader(b), MaxFrameSize)
		if (err == nil) == (f.Name[:5] == "empty") || err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("frame %q: %v", f.Name, err)
		}
		if err == nil {
			if re := frameHexOf(t, fr); re != f.Frame {
				t.Fatalf("frame %q does not re-encode to itself", f.Name)
			}
		}
	}

	for _, g := range []struct {
		n  int
		rs [][2]int
	}{
		{4, [][2]int{{0, 4}}}, {4, [][2]int{{0, 1}, {2, 2}}}, {4, [][2]int{{0, 1}, {1, 1}}}, {4, [][2]int{}},
		{4, [][2]int{{0, 0}}}, {4, [][2]int{{3, 2}}}, {4, [][2]int{{2, 1}, {0, 1}}}, {4, [][2]int{{0, 2}, {1, 1}}},
		{2, [][2]int{{0, 1}, {1, 1}, {1, 0}}}, {0, [][2]int{{0, 1}}},
	} {
		w := &pb.Get{Id: id}
		for _, r := range g.rs {
			w.Ranges = append(w.Ranges, &pb.Range{Start: uint32(r[0]), Count: uint32(r[1])}) // #nosec G115 -- small test values
		}
		_, err := validateGet(w, g.n)
		got.Gets = append(got.Gets, getVector{g.n, g.rs, err == nil})
	}

	// Commitments, against files[6] (4 chunks of 16 KiB, the last 100 bytes).
	data := vectorFile(small.Size)
	honest, err := buildManifest(ctx, bytes.NewReader(data), small.Size, small.ChunkSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	liar := &manifest{size: honest.size, chunkSize: honest.chunkSize, cvs: bytes.Clone(honest.cvs)}
	liar.cvs[2*HashSize] ^= 1
	liar.hash = rootHash(liar.cvs) // holds together, but chunk 2 was sent with another hash
	broken := &manifest{size: honest.size, chunkSize: honest.chunkSize, cvs: liar.cvs, hash: honest.hash}
	otherSize := &manifest{size: honest.size - 1, chunkSize: honest.chunkSize, cvs: honest.cvs}
	otherSize.hash = rootHash(otherSize.cvs)
	otherCS, err := buildManifest(ctx, bytes.NewReader(data), small.Size, 2*small.ChunkSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    *manifest
	}{
		{"honest", honest},
		{"lies about chunk 2 (chunk hashes combine into its hash)", liar},
		{"chunk hashes do not combine into its hash", broken},
		{"another size", otherSize},
		{"another chunk size (same file hash)", otherCS},
	} {
		got.Commitments = append(got.Commitments, commitmentVector{c.name, small.Size, small.ChunkSize, small.ChunkHashes, manifestFrame(t, c.m), false})
	}
	for i := range got.Commitments {
		v := &got.Commitments[i]
		open := newOpenManifest(v.Size, v.ChunkSize)
		verified := newBitmap(open.numChunks())
		for j, s := range v.ChunkHashes {
			b, _ := hex.DecodeString(s)
			copy(open.cvs[j*HashSize:], b)
			verified.set(j)
		}
		c, err := manifestFromWire(decodeManifestFrame(t, v.Manifest))
		if err == nil {
			err = c.check(v.Size, c.hash)
		}
		if err == nil {
			err = open.matchCommitment(c, verified)
		}
		if err != nil && !errors.Is(err, ErrBadManifest) {
			t.Fatalf("commitment %q: %v", v.Case, err)
		}
		v.Accept = err == nil
	}

	// Manifests before any chunk, against the offer of files[6].
	oneByte := &manifest{size: honest.size, chunkSize: honest.chunkSize, hash: honest.hash, cvs: honest.cvs[:3*HashSize]}
	badCS := &manifest{size: honest.size, chunkSize: 3 * MinChunkSize, hash: honest.hash, cvs: honest.cvs}
	for _, c := range []struct {
		name string
		m    *manifest
	}{
		{"honest", honest},
		{"holds together, another hash than offered", liar},
		{"offered hash, chunk hashes do not combine into it", broken},
		{"three chunk hashes for four chunks", oneByte},
		{"chunk size not a power of two", badCS},
	} {
		v := manifestChkVector{Case: c.name, Size: small.Size, Hash: small.Hash, Manifest: manifestFrame(t, c.m)}
		m, err := manifestFromWire(decodeManifestFrame(t, v.Manifest))
		if err == nil {
			err = m.check(v.Size, honest.hash)
		}
		if err != nil && !errors.Is(err, ErrBadManifest) {
			t.Fatalf("manifest %q: %v", v.Case, err)
		}
		v.Accept = err == nil
		got.Manifests = append(got.Manifests, v)
	}
	checkTransferVectors(t, "transfer.json", got)
}

// checkTransferVectors compares got with docs/vectors/name, or writes it
// when PARLEY_UPDATE_VECTORS=1.
func checkTransferVectors[T any](t *testing.T, name string, got T) {
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

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
