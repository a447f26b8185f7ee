package transfer

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"lukechampine.com/blake3/guts"
)

// TestStreamChunkMatchesWholeChunk checks that a chunk hashed piece by
// piece as it streams through the receive buffer gets the chaining value
// of the whole chunk, and that every byte is written at its place, for
// chunk sizes around the hash-group and buffer boundaries and reads of
// every shape.
func TestStreamChunkMatchesWholeChunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 1<<20+3*subtreeBuf+5)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"halves":   iotest.HalfReader,
		"random": func(r io.Reader) io.Reader {
			return &randomReader{r: r, rng: rand.New(rand.NewPCG(5, 6))}
		},
	}
	sizes := []int{1, guts.ChunkSize, subtreeBuf - 1, subtreeBuf, subtreeBuf + 1, 2 * subtreeBuf,
		minRead, minRead + subtreeBuf, recvBuf - 1, recvBuf, recvBuf + 1, 1 << 20, len(data)}
	for name, wrap := range readers {
		for _, n := range sizes {
			if name == "one byte" && n > 2*recvBuf {
				continue // slow, and the random reader covers it
			}
			for _, bufSize := range []int{min(n, recvBuf), recvBuf} {
				chunk := data[:n]
				const counter = 64 // the chunk's place in its file does not matter
				out := make([]byte, n)
				h := subtreeHasher{counter: counter}
				tail, err := streamChunk(wrap(bytes.NewReader(chunk)), make([]byte, bufSize), int64(n), &h, func(p []byte, at int64) error {
					copy(out[at:], p)
					return nil
				})
				if err != nil {
					t.Fatalf("%s, %d bytes, buffer %d: %v", name, n, bufSize, err)
				}
				if got, want := h.sum(tail, false), chunkCV(chunk, counter, false); got != want {
					t.Errorf("%s, %d bytes, buffer %d: chaining value differs", name, n, bufSize)
				}
				if !bytes.Equal(out, chunk) {
					t.Errorf("%s, %d bytes, buffer %d: bytes written differ", name, n, bufSize)
				}
			}
		}
	}
}

func TestStreamChunkErrors(t *testing.T) {
	chunk := bytes.Repeat([]byte{7}, 3*subtreeBuf)
	var h subtreeHasher
	_, err := streamChunk(bytes.NewReader(chunk[:subtreeBuf]), make([]byte, recvBuf), int64(len(chunk)), &h,
		func([]byte, int64) error { return nil })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short stream: %v, want io.ErrUnexpectedEOF", err)
	}
	full := errors.New("disk full")
	h = subtreeHasher{}
	_, err = streamChunk(bytes.NewReader(chunk), make([]byte, recvBuf), int64(len(chunk)), &h,
		func([]byte, int64) error { return full })
	if !errors.Is(err, full) {
		t.Errorf("failing write: %v, want it returned", err)
	}
}

// randomReader returns reads of random sizes, from 1 byte to 96 KiB.
type randomReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (r *randomReader) Read(p []byte) (int, error) {
	return r.r.Read(p[:min(len(p), 1+r.rng.IntN(96<<10))])
}

// BenchmarkStreamChunk measures the receive loop alone: 1 MiB chunks read
// 70 KiB at a time (what a QUIC stream's Read returns in the e2e
// benchmark), hashed and written to a part file on the temp dir's disk.
func BenchmarkStreamChunk(b *testing.B) {
	const cs, chunks = 1 << 20, 64
	data := make([]byte, chunks*cs)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "bench.part"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	buf := make([]byte, recvBuf)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for i := range chunks {
			r := &fixedReader{r: bytes.NewReader(data[i*cs : (i+1)*cs]), n: 70 << 10}
			h := subtreeHasher{counter: blake3Counter(i, cs)}
			off := int64(i) * cs
			if _, err := streamChunk(r, buf, cs, &h, func(p []byte, at int64) error {
				_, err := f.WriteAt(p, off+at)
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// fixedReader returns reads of at most n bytes.
type fixedReader struct {
	r *bytes.Reader
	n int
}

func (f *fixedReader) Read(p []byte) (int, error) { return f.r.Read(p[:min(len(p), f.n)]) }
