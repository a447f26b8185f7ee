package transfer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"

	"lukechampine.com/blake3"
	"lukechampine.com/blake3/guts"

	"github.com/parley-chat/parley/transfer/pb"
)

// Protocol limits on manifests. They bound what a recipient holds in memory
// for one transfer: the hash list, at most MaxChunks*HashSize bytes
// (512 KiB), next to one receive buffer (recvBuf) whatever the chunk size.
// A sender holds sendDepth buffers of a chunk each.
const (
	HashSize     = 32                       // BLAKE3-256
	MinChunkSize = 16 << 10                 // 16 KiB
	MaxChunkSize = 4 << 20                  // 4 MiB
	MaxChunks    = 16384                    // chunks per file
	MaxSize      = MaxChunks * MaxChunkSize // 64 GiB, the largest file the protocol moves
)

// manifest describes a file as a BLAKE3 tree cut into chunks of chunkSize
// bytes (the last one may be shorter). The hash of chunk i is the BLAKE3
// chaining value of the subtree that covers it; because chunkSize is a power
// of two multiple of the 1 KiB BLAKE3 chunk, every such subtree is a subtree
// of the file's BLAKE3 tree, so the chunk hashes combine into the file hash
// (see rootHash). A file of exactly one chunk has the file hash as its chunk
// hash; an empty file has no chunks.
//
// A transfer offered before its file was hashed (protocol v2,
// hash-as-you-send) has an open manifest until the sender commits to it:
// hash is not known yet and cvs holds only the chunk hashes learnt so far
// (zeros elsewhere). At the sender those are the chunks it has read and
// hashed (known); at the recipient, the chunks in its verified bitmap,
// each of which matched the hash the sender sent with it. See commit and
// matchCommitment.
type manifest struct {
	size      int64
	chunkSize int64
	hash      [HashSize]byte
	cvs       []byte // HashSize bytes per chunk
	open      bool   // hash not committed yet; never changes (commit makes a new manifest)
	// sent is set at the sender for an open manifest, whose cvs the
	// workers of every Get stream fill in as they hash chunks.
	sent *sentHashes
}

// sentHashes guards the chunk hashes of a sender's open manifest.
type sentHashes struct {
	mu    sync.Mutex // guards known, and the manifest's cvs
	known bitmap     // chunks whose hash is in cvs
}

// newOpenManifest returns the open manifest of a file of size bytes cut
// into chunks of chunkSize, with no chunk hash known.
func newOpenManifest(size, chunkSize int64) *manifest {
	m := &manifest{size: size, chunkSize: chunkSize, open: true}
	n := m.numChunks()
	m.cvs = make([]byte, n*HashSize)
	m.sent = &sentHashes{known: newBitmap(n)}
	return m
}

// note records cv, which the sender computed from chunk i as it read it to
// send it, in an open manifest. A chunk read again must hash the same:
// ErrFileChanged otherwise, since the recipient may hold the first version.
func (m *manifest) note(i int, cv [HashSize]byte) error {
	m.sent.mu.Lock()
	defer m.sent.mu.Unlock()
	dst := m.cvs[i*HashSize : (i+1)*HashSize]
	if m.sent.known.has(i) {
		if !bytes.Equal(dst, cv[:]) {
			return fmt.Errorf("%w: chunk %d reads differently from when it was sent", ErrFileChanged, i)
		}
		return nil
	}
	copy(dst, cv[:])
	m.sent.known.set(i)
	return nil
}

// commit returns the complete manifest of the sender's open manifest m: it
// hashes, from r, the chunks not sent (and so not hashed) since this node
// started (they were sent before a restart), checking each against what
// was recorded meanwhile, and combines the chunk hashes into the file
// hash.
func (m *manifest) commit(ctx context.Context, r io.ReaderAt) (*manifest, error) {
	n := m.numChunks()
	buf := make([]byte, min(m.chunkSize, max(m.size, 1)))
	for i := range n {
		m.sent.mu.Lock()
		known := m.sent.known.has(i)
		m.sent.mu.Unlock()
		if known {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("hash file: %w", err)
		}
		p := buf[:m.chunkLen(i)]
		if _, err := r.ReadAt(p, int64(i)*m.chunkSize); err != nil {
			return nil, fmt.Errorf("hash file: read chunk %d: %w: %w", i, errDisk, err)
		}
		if err := m.note(i, chunkCV(p, blake3Counter(i, m.chunkSize), n == 1)); err != nil {
			return nil, err
		}
	}
	c := &manifest{size: m.size, chunkSize: m.chunkSize}
	m.sent.mu.Lock()
	c.cvs = bytes.Clone(m.cvs)
	m.sent.mu.Unlock()
	if n == 0 {
		c.hash = blake3.Sum256(nil)
	} else {
		c.hash = rootHash(c.cvs)
	}
	return c, nil
}

// matchCommitment checks the sender's commitment c (a Manifest that passed
// check against its own hash) against the recipient's open manifest m:
// same layout, and the same hash for every verified chunk as the one the
// chunk came with. A sender that told a different story about any chunk
// (a lie, or a file that changed across a restart) fails here.
func (m *manifest) matchCommitment(c *manifest, verified bitmap) error {
	if c.size != m.size || c.chunkSize != m.chunkSize {
		return fmt.Errorf("%w: committed %d bytes in chunks of %d, offered %d in chunks of %d",
			ErrBadManifest, c.size, c.chunkSize, m.size, m.chunkSize)
	}
	for i := range m.numChunks() {
		if verified.has(i) && !bytes.Equal(c.chunkHash(i), m.chunkHash(i)) {
			return fmt.Errorf("%w: the committed hash of chunk %d is not the one it was sent with", ErrBadManifest, i)
		}
	}
	return nil
}

// numChunksFor returns how many chunks a file of size bytes has.
func numChunksFor(size, chunkSize int64) int {
	return int((size + chunkSize - 1) / chunkSize)
}

func (m *manifest) numChunks() int { return numChunksFor(m.size, m.chunkSize) }

// chunkLen returns the length in bytes of chunk i.
func (m *manifest) chunkLen(i int) int64 {
	off := int64(i) * m.chunkSize
	return min(m.chunkSize, m.size-off)
}

func (m *manifest) chunkHash(i int) []byte { return m.cvs[i*HashSize : (i+1)*HashSize] }

// verifyChunk reports whether data is chunk i of the file.
func (m *manifest) verifyChunk(i int, data []byte) bool {
	if int64(len(data)) != m.chunkLen(i) {
		return false
	}
	cv := chunkCV(data, blake3Counter(i, m.chunkSize), m.numChunks() == 1)
	return bytes.Equal(cv[:], m.chunkHash(i))
}

// chooseChunkSize returns the chunk size for a file of size bytes: the
// smallest power of two, at least want, that keeps the file within
// MaxChunks chunks.
func chooseChunkSize(size, want int64) (int64, error) {
	if size < 0 || size > MaxSize {
		return 0, fmt.Errorf("%w: %d bytes (protocol limit %d)", ErrTooLarge, size, int64(MaxSize))
	}
	cs := int64(MinChunkSize)
	for cs < want || int64(numChunksFor(size, cs)) > MaxChunks {
		cs <<= 1
	}
	return min(cs, MaxChunkSize), nil
}

// validLayout reports whether a file of size bytes may be cut into chunks
// of chunkSize: a power of two from MinChunkSize to MaxChunkSize, at most
// MaxChunks chunks.
func validLayout(size, chunkSize int64) bool {
	return chunkSize >= MinChunkSize && chunkSize <= MaxChunkSize && bits.OnesCount64(uint64(chunkSize)) == 1 && // #nosec G115 -- chunkSize >= MinChunkSize here
		size >= 0 && size <= MaxSize && numChunksFor(size, chunkSize) <= MaxChunks
}

// maxHashWorkers bounds the goroutines that hash one file.
const maxHashWorkers = 4

// buildManifest hashes size bytes of r in chunks of chunkSize, on up to
// GOMAXPROCS goroutines (at most maxHashWorkers), each reading and hashing
// whole chunks: the chunk hashes are independent, so a file is hashed
// about as many times faster as there are idle cores. It calls progress,
// when not nil, with the bytes hashed so far after each chunk (one call
// at a time), and stops with ctx's error between two chunks. r must allow
// concurrent ReadAt calls (an *os.File does).
func buildManifest(ctx context.Context, r io.ReaderAt, size, chunkSize int64, progress func(hashed int64)) (*manifest, error) {
	m := &manifest{size: size, chunkSize: chunkSize}
	n := m.numChunks()
	m.cvs = make([]byte, n*HashSize)
	if n == 0 {
		m.hash = blake3.Sum256(nil)
		return m, nil
	}
	var (
		next     atomic.Int64 // the next chunk to hash
		mu       sync.Mutex   // serializes progress; guards hashed and firstErr
		hashed   int64
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for range max(1, min(runtime.GOMAXPROCS(0), maxHashWorkers, n)) {
		wg.Go(func() {
			buf := make([]byte, min(chunkSize, size))
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				mu.Lock()
				stop := firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(fmt.Errorf("hash file: %w", err))
					return
				}
				p := buf[:m.chunkLen(i)]
				if _, err := r.ReadAt(p, int64(i)*chunkSize); err != nil {
					fail(fmt.Errorf("hash file: read chunk %d: %w", i, err))
					return
				}
				cv := chunkCV(p, blake3Counter(i, chunkSize), n == 1)
				copy(m.cvs[i*HashSize:], cv[:]) // each worker writes its own chunks' bytes
				mu.Lock()
				hashed += int64(len(p))
				if progress != nil && firstErr == nil {
					progress(hashed)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	m.hash = rootHash(m.cvs)
	return m, nil
}

// check validates a manifest received from a peer against the size and
// hash that were announced for the transfer.
func (m *manifest) check(size int64, hash [HashSize]byte) error {
	switch {
	case m.size != size:
		return fmt.Errorf("%w: manifest size %d, offered %d", ErrBadManifest, m.size, size)
	case m.hash != hash:
		return fmt.Errorf("%w: manifest hash differs from the offered hash", ErrBadManifest)
	case m.chunkSize < MinChunkSize || m.chunkSize > MaxChunkSize || bits.OnesCount64(uint64(m.chunkSize)) != 1:
		return fmt.Errorf("%w: chunk size %d", ErrBadManifest, m.chunkSize)
	case m.size < 0 || m.numChunks() > MaxChunks:
		return fmt.Errorf("%w: %d chunks (limit %d)", ErrBadManifest, m.numChunks(), MaxChunks)
	case len(m.cvs) != m.numChunks()*HashSize:
		return fmt.Errorf("%w: %d bytes of chunk hashes for %d chunks", ErrBadManifest, len(m.cvs), m.numChunks())
	}
	var root [HashSize]byte
	if m.numChunks() == 0 {
		root = blake3.Sum256(nil)
	} else {
		root = rootHash(m.cvs)
	}
	if root != hash {
		return fmt.Errorf("%w: chunk hashes do not combine into the file hash", ErrBadManifest)
	}
	return nil
}

func (m *manifest) toWire() *pb.Manifest {
	// #nosec G115 -- size >= 0 and chunkSize <= MaxChunkSize (4 MiB) in every manifest built or checked
	return &pb.Manifest{Size: uint64(m.size), ChunkSize: uint32(m.chunkSize), Hash: m.hash[:], ChunkHashes: m.cvs}
}

// manifestFromWire converts without validating; call check.
func manifestFromWire(w *pb.Manifest) (*manifest, error) {
	if w.GetSize() > MaxSize || len(w.GetHash()) != HashSize {
		return nil, fmt.Errorf("%w: size %d, %d-byte hash", ErrBadManifest, w.GetSize(), len(w.GetHash()))
	}
	// #nosec G115 -- size is at most MaxSize (checked above)
	m := &manifest{size: int64(w.GetSize()), chunkSize: int64(w.GetChunkSize()), cvs: w.GetChunkHashes()}
	copy(m.hash[:], w.GetHash())
	return m, nil
}

// chunkCV returns the BLAKE3 chaining value of data as the subtree of the
// file's tree that starts at BLAKE3 chunk counter. root marks the subtree
// as the whole tree (a file of one chunk): the result is then the file's
// BLAKE3 hash.
func chunkCV(data []byte, counter uint64, root bool) [HashSize]byte {
	h := subtreeHasher{counter: counter}
	for len(data) > subtreeBuf {
		h.group((*[subtreeBuf]byte)(data))
		data = data[subtreeBuf:]
	}
	return h.sum(data, root)
}

// blake3Counter returns the BLAKE3 chunk counter at which chunk i of a file
// cut into chunks of chunkSize bytes starts.
func blake3Counter(i int, chunkSize int64) uint64 {
	return uint64(i) * uint64(chunkSize/guts.ChunkSize) // #nosec G115 -- i and chunkSize are non-negative
}

// subtreeBuf is the span the SIMD compressor hashes at once.
const subtreeBuf = guts.MaxSIMD * guts.ChunkSize

// subtreeHasher hashes a BLAKE3 subtree that starts at chunk counter
// incrementally, subtreeBuf bytes at a time, so that a chunk can be hashed
// piece by piece as it arrives, while each piece is still in the CPU's
// cache. Adapted from compressGroup in lukechampine.com/blake3/bao (MIT),
// without copying full buffers.
type subtreeHasher struct {
	counter uint64
	stack   [54 - guts.MaxSIMD][8]uint32
	sc      uint64 // groups hashed
}

// group hashes the next subtreeBuf bytes, which are not the subtree's
// last.
func (h *subtreeHasher) group(p *[subtreeBuf]byte) {
	cv := guts.ChainingValue(guts.CompressBuffer(p, subtreeBuf, &guts.IV, h.counter+h.sc*guts.MaxSIMD, 0))
	i := 0
	for h.sc&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(h.stack[i], cv, &guts.IV, 0))
		i++
	}
	h.stack[i] = cv
	h.sc++
}

// sum takes the subtree's last 1 to subtreeBuf bytes and returns its
// chaining value; root marks the subtree as the whole tree (the result is
// then the BLAKE3 hash).
func (h *subtreeHasher) sum(p []byte, root bool) [HashSize]byte {
	var n guts.Node
	if len(p) == subtreeBuf {
		n = guts.CompressBuffer((*[subtreeBuf]byte)(p), subtreeBuf, &guts.IV, h.counter+h.sc*guts.MaxSIMD, 0)
	} else {
		var last [subtreeBuf]byte
		copy(last[:], p)
		n = guts.CompressBuffer(&last, len(p), &guts.IV, h.counter+h.sc*guts.MaxSIMD, 0)
	}
	for i := bits.TrailingZeros64(h.sc); i < bits.Len64(h.sc); i++ {
		if h.sc&(1<<i) != 0 {
			n = guts.ParentNode(h.stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	if root {
		n.Flags |= guts.FlagRoot
	}
	cv := guts.ChainingValue(n)
	return cvBytes(&cv)
}

// rootHash combines the chaining values of two or more chunks (HashSize
// bytes each, in file order) into the BLAKE3 hash of the file, following
// the BLAKE3 tree shape: the left subtree holds the largest power of two of
// chunks smaller than the total.
func rootHash(cvs []byte) [HashSize]byte {
	n := len(cvs) / HashSize
	if n == 1 {
		var h [HashSize]byte
		copy(h[:], cvs)
		return h
	}
	var rec func(lo, hi int, flags uint32) [8]uint32
	rec = func(lo, hi int, flags uint32) [8]uint32 {
		if hi-lo == 1 {
			return cvWords(cvs[lo*HashSize:])
		}
		mid := lo + 1<<(bits.Len(uint(hi-lo-1))-1)
		return guts.ChainingValue(guts.ParentNode(rec(lo, mid, 0), rec(mid, hi, 0), &guts.IV, flags))
	}
	root := rec(0, n, guts.FlagRoot)
	return cvBytes(&root)
}

func cvBytes(cv *[8]uint32) (b [HashSize]byte) {
	for i, w := range cv {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

func cvWords(b []byte) (cv [8]uint32) {
	for i := range cv {
		cv[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return cv
}
