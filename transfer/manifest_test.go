package transfer

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"lukechampine.com/blake3"
)

func TestManifestHashIsBLAKE3(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5*MinChunkSize*4+3)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, cs := range []int64{MinChunkSize, 2 * MinChunkSize, 4 * MinChunkSize} {
		for _, size := range []int64{0, 1, 1023, 1024, 1025, cs - 1, cs, cs + 1, 2 * cs, 3*cs - 7, 5 * cs, int64(len(data))} {
			if size > int64(len(data)) {
				continue
			}
			m, err := buildManifest(context.Background(), bytes.NewReader(data[:size]), size, cs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := blake3.Sum256(data[:size]); m.hash != want {
				t.Fatalf("chunk %d size %d: manifest hash %x, BLAKE3 %x", cs, size, m.hash, want)
			}
			if err := m.check(size, m.hash); err != nil {
				t.Fatalf("chunk %d size %d: check: %v", cs, size, err)
			}
			for i := range m.numChunks() {
				chunk := data[int64(i)*cs : int64(i)*cs+m.chunkLen(i)]
				if !m.verifyChunk(i, chunk) {
					t.Fatalf("chunk %d size %d: chunk %d does not verify", cs, size, i)
				}
				bad := bytes.Clone(chunk)
				bad[len(bad)/2] ^= 1
				if m.verifyChunk(i, bad) {
					t.Fatalf("chunk %d size %d: corrupted chunk %d verifies", cs, size, i)
				}
			}
		}
	}
}

func TestManifestCheckRejects(t *testing.T) {
	data := bytes.Repeat([]byte("parley"), 20000)
	m, err := buildManifest(context.Background(), bytes.NewReader(data), int64(len(data)), MinChunkSize, nil)
	if err != nil {
		t.Fatal(err)
	}
	swapped := bytes.Clone(m.cvs)
	copy(swapped, m.cvs[HashSize:2*HashSize])
	copy(swapped[HashSize:], m.cvs[:HashSize])
	otherHash := m.hash
	otherHash[0] ^= 1
	tests := []struct {
		name string
		m    manifest
		size int64
		hash [HashSize]byte
	}{
		{"size", *m, m.size + 1, m.hash},
		{"hash", *m, m.size, otherHash},
		{"chunk size not power of two", manifest{size: m.size, chunkSize: MinChunkSize + 1, hash: m.hash, cvs: m.cvs}, m.size, m.hash},
		{"chunk size zero", manifest{size: m.size, chunkSize: 0, hash: m.hash, cvs: m.cvs}, m.size, m.hash},
		{"chunk size too big", manifest{size: m.size, chunkSize: 2 * MaxChunkSize, hash: m.hash, cvs: m.cvs}, m.size, m.hash},
		{"short hash list", manifest{size: m.size, chunkSize: m.chunkSize, hash: m.hash, cvs: m.cvs[:len(m.cvs)-1]}, m.size, m.hash},
		{"swapped chunk hashes", manifest{size: m.size, chunkSize: m.chunkSize, hash: m.hash, cvs: swapped}, m.size, m.hash},
		{"too many chunks", manifest{size: MaxChunks*MinChunkSize + 1, chunkSize: MinChunkSize, hash: m.hash, cvs: nil}, MaxChunks*MinChunkSize + 1, m.hash},
	}
	for _, tt := range tests {
		if err := tt.m.check(tt.size, tt.hash); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: check = %v, want ErrBadManifest", tt.name, err)
		}
	}
}

func TestChooseChunkSize(t *testing.T) {
	tests := []struct{ size, want, got int64 }{
		{0, DefaultChunkSize, DefaultChunkSize},
		{1 << 30, DefaultChunkSize, DefaultChunkSize},
		{16 << 30, DefaultChunkSize, DefaultChunkSize},
		{16<<30 + 1, DefaultChunkSize, 2 << 20},
		{MaxSize, DefaultChunkSize, MaxChunkSize},
		{1 << 30, MinChunkSize, 64 << 10},
	}
	for _, tt := range tests {
		got, err := chooseChunkSize(tt.size, tt.want)
		if err != nil || got != tt.got {
			t.Errorf("chooseChunkSize(%d, %d) = %d, %v; want %d", tt.size, tt.want, got, err, tt.got)
		}
	}
	if _, err := chooseChunkSize(MaxSize+1, DefaultChunkSize); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over MaxSize: %v", err)
	}
}

func TestBitmapMissing(t *testing.T) {
	b := newBitmap(20)
	for _, i := range []int{0, 1, 5, 6, 7, 19} {
		b.set(i)
	}
	got := b.missing(20)
	want := []chunkRange{{2, 3}, {8, 11}}
	if len(got) != len(want) {
		t.Fatalf("missing = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("missing = %v, want %v", got, want)
		}
	}
	if b.count() != 6 {
		t.Fatalf("count = %d", b.count())
	}
}

// BenchmarkBuildManifest hashes 64 MiB in memory; -cpu 1,2 shows what the
// parallel workers gain.
func BenchmarkBuildManifest(b *testing.B) {
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := buildManifest(context.Background(), bytes.NewReader(data), int64(len(data)), 1<<20, nil); err != nil {
			b.Fatal(err)
		}
	}
}
