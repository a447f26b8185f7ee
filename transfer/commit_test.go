package transfer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"lukechampine.com/blake3"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/transfer/pb"
)

// Tests of hash-as-you-send (protocol v2): the security properties of a
// transfer offered before its file was hashed.

// A sender that lies about a hash, in any of the ways the protocol lets it,
// is caught: the file is never placed and never reported done.
func TestUnhashedOfferLyingSender(t *testing.T) {
	const chunks = 5
	tests := []struct {
		name  string
		setup func(f *fakeSender)
		// want: the error the recipient's Wait ends with, or nil when the
		// recipient parks (a protocol violation is a broken stream, retried)
		want    error
		message string // in the recipient's error
	}{
		{"honest", func(*fakeSender) {}, nil, ""},
		{"chunk sent without its hash", func(f *fakeSender) {
			f.hash = func(i int, cv []byte) []byte {
				if i == 2 {
					return nil
				}
				return cv
			}
		}, nil, "without its hash"},
		{"chunk hash that its bytes do not match", func(f *fakeSender) {
			f.hash = func(i int, cv []byte) []byte {
				if i == 3 {
					return bytes.Repeat([]byte{7}, HashSize)
				}
				return cv
			}
		}, ErrVerify, ""},
		{"commitment to other chunk hashes", func(f *fakeSender) {
			other := bytes.Clone(f.data)
			other[0] ^= 1
			m, _ := buildManifest(context.Background(), bytes.NewReader(other), int64(len(other)), MinChunkSize, nil)
			f.commitment = m.toWire()
		}, ErrBadManifest, "chunk 0"},
		{"commitment whose chunk hashes do not combine into its hash", func(f *fakeSender) {
			w := f.man.toWire()
			w.Hash = bytes.Repeat([]byte{1}, HashSize)
			f.commitment = w
		}, ErrBadManifest, "combine"},
		{"commitment to another chunk size", func(f *fakeSender) {
			m, _ := buildManifest(context.Background(), bytes.NewReader(f.data), int64(len(f.data)), 2*MinChunkSize, nil)
			f.commitment = m.toWire()
		}, ErrBadManifest, "chunks of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, data := writeFile(t, t.TempDir(), "x", chunks*MinChunkSize-10)
			f := newFakeSender(t, data)
			tt.setup(f)
			b := newNode(t, func(c *Config) { c.MaxAttempts = 2 })
			if st := f.offer(t, b, f.unhashedOffer("lie.bin")); st.GetCode() != pb.Code_OK {
				t.Fatalf("offer: %v", st)
			}
			id := f.idHex()
			if err := b.svc.Accept(id); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.name == "honest":
				res, err := b.svc.Wait(ctxT(t), id)
				sum := blake3.Sum256(data)
				if err != nil || res.Hash != hex.EncodeToString(sum[:]) {
					t.Fatalf("honest sender: %+v, %v", res, err)
				}
				if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, data) {
					t.Fatal("received file differs")
				}
				return
			case tt.want == nil:
				pollUntil(t, "recipient parks", func() bool {
					b.svc.mu.Lock()
					defer b.svc.mu.Unlock()
					tr := b.svc.transfers[id]
					return !tr.running && tr.state == StateWaiting
				})
				if in := b.info(id); !strings.Contains(in.Error, tt.message) {
					t.Fatalf("info = %+v, want an error about %q", in, tt.message)
				}
			default:
				_, err := b.svc.Wait(ctxT(t), id)
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.message) {
					t.Fatalf("Wait = %v, want %v (%q)", err, tt.want, tt.message)
				}
				if ev := waitFor[events.FileFailed](t, b.rec, id); ev.Code == "" {
					t.Fatalf("file_failed = %+v", ev)
				}
			}
			if _, ok := find[events.FileDone](b.rec, id); ok {
				t.Fatal("file_done for a lying sender")
			}
			for _, name := range b.downloads() {
				if name == "lie.bin" {
					t.Fatal("the file of a lying sender was placed")
				}
			}
		})
	}
}

// Offers without a hash exist only in v2: on /parley/file/1.0.0 they are
// malformed, and a v2 offer without a hash needs a valid chunk size.
func TestUnhashedOfferChecked(t *testing.T) {
	b := newNode(t)
	f := newFakeSender(t, make([]byte, 3*MinChunkSize))
	testnet.Connect(t, f.h, b.h)
	id := func() []byte { x := make([]byte, idLen); _, _ = rand.Read(x); return x }
	tests := []struct {
		name  string
		proto bool // true: v2
		o     *pb.Offer
		want  pb.Code
	}{
		{"v1 without hash", false, &pb.Offer{Id: id(), Name: "a", Size: 100, ChunkSize: MinChunkSize}, pb.Code_BAD_REQUEST},
		{"v1 with hash", false, &pb.Offer{Id: id(), Name: "a", Size: 100, Hash: make([]byte, HashSize)}, pb.Code_OK},
		{"v2 without hash", true, &pb.Offer{Id: id(), Name: "a", Size: 100, ChunkSize: MinChunkSize}, pb.Code_OK},
		{"v2 no chunk size", true, &pb.Offer{Id: id(), Name: "a", Size: 100}, pb.Code_BAD_REQUEST},
		{"v2 chunk size not a power of two", true, &pb.Offer{Id: id(), Name: "a", Size: 100, ChunkSize: MinChunkSize + 1}, pb.Code_BAD_REQUEST},
		{"v2 too many chunks", true, &pb.Offer{Id: id(), Name: "a", Size: MaxChunks*MinChunkSize + 1, ChunkSize: MinChunkSize}, pb.Code_BAD_REQUEST},
		{"v2 short hash", true, &pb.Offer{Id: id(), Name: "a", Size: 100, Hash: make([]byte, 5), ChunkSize: MinChunkSize}, pb.Code_BAD_REQUEST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proto := IDv1
			if tt.proto {
				proto = ID
			}
			str, err := f.h.NewStream(ctxT(t), b.h.ID(), proto)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = str.Close() }()
			if err := writeFrame(str, &pb.Frame{Msg: &pb.Frame_Offer{Offer: tt.o}}); err != nil {
				t.Fatal(err)
			}
			fr, err := readFrame(bufio.NewReader(str), 4096)
			if err != nil {
				t.Fatal(err)
			}
			if got := fr.GetStatus().GetCode(); got != tt.want {
				t.Fatalf("answered %v, want %v", got, tt.want)
			}
		})
	}
}

// The recipient stores the hash of each verified chunk with its bitmap; a
// restarted recipient checks its part file against them (a chunk damaged
// meanwhile is fetched again) and holds the sender to them at the
// commitment.
func TestUnhashedResumeAfterRecipientRestart(t *testing.T) {
	for _, lie := range []bool{false, true} {
		name := "honest sender"
		if lie {
			name = "sender commits to another chunk 1"
		}
		t.Run(name, func(t *testing.T) {
			g := newGate(5)
			lying := func(_ string, m *manifest) {
				if lie {
					m.cvs[HashSize] ^= 1 // chunk 1, verified before the restart
					m.hash = rootHash(m.cvs)
				}
			}
			a := newNode(t, withHook(g.hook), func(c *Config) { c.hooks.commit = lying })
			b := newNode(t)
			t.Cleanup(g.open)
			testnet.Connect(t, a.h, b.h)
			id, _, data := startTransfer(t, a, b, resumeChunks)
			<-g.reached
			waitVerified(t, b, id, g.at)
			b.stop()
			// Stored: the hashes of chunks 0..4, the true ones.
			db := testnet.OpenDB(t, b.dbPath)
			var stored []byte
			err := db.View(func(tx *bolt.Tx) error {
				stored = bytes.Clone(tx.Bucket(bucketManifests).Get([]byte(id)))
				return nil
			})
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			truth, _ := buildManifest(context.Background(), bytes.NewReader(data), int64(len(data)), MinChunkSize, nil)
			if len(stored) != len(truth.cvs) || !bytes.Equal(stored[:g.at*HashSize], truth.cvs[:g.at*HashSize]) {
				t.Fatalf("stored chunk hashes %x, want the first %d of %x", stored, g.at, truth.cvs)
			}
			// Damage chunk 2 in the part file: it must be fetched again.
			part := partPath(t, b, id)
			pf, err := os.OpenFile(part, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pf.WriteAt([]byte{0xee}, 2*MinChunkSize+7); err != nil {
				t.Fatal(err)
			}
			if err := pf.Close(); err != nil {
				t.Fatal(err)
			}
			g.open()
			b.start()
			testnet.Connect(t, b.h, a.h)
			if lie {
				if _, err := b.svc.Wait(ctxT(t), id); !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), "chunk 1") {
					t.Fatalf("recipient Wait = %v, want a bad manifest at chunk 1", err)
				}
				if _, err := a.svc.Wait(ctxT(t), id); err == nil {
					t.Fatal("the lying sender's transfer ended well")
				}
				pollUntil(t, "part file removed", func() bool { return len(b.downloads()) == 0 })
				return
			}
			finishAndCheck(t, a, b, id, data)
			for i := range resumeChunks {
				want := 1
				if i == 2 {
					want = 2
				}
				if n := g.sent.get(i); n != want {
					t.Errorf("chunk %d sent %d times, want %d", i, n, want)
				}
			}
		})
	}
}

// partPath returns the part file of n's receiving transfer id.
func partPath(t *testing.T, n *node, id string) string {
	t.Helper()
	rec, _ := storedRecord(t, n, id)
	if rec == nil || rec.Part == "" {
		t.Fatalf("no part file stored for %s: %+v", id, rec)
	}
	return filepath.Join(n.dir, rec.Part)
}

// A restarted sender produces the same hashes (same chunk size, from its
// record; the chunks sent before the restart hashed again at the
// commitment), and one whose file changed across the restart without its
// size or modification time changing is caught by the recipient: the
// commitment differs from the hashes the first chunks came with.
func TestUnhashedResumeAfterSenderRestart(t *testing.T) {
	for _, change := range []bool{false, true} {
		name := "same file"
		if change {
			name = "file changed behind the sender's back"
		}
		t.Run(name, func(t *testing.T) {
			g := newGate(5)
			a, b := newNode(t, withHook(g.hook)), newNode(t)
			t.Cleanup(g.open)
			testnet.Connect(t, a.h, b.h)
			id, path, data := startTransfer(t, a, b, resumeChunks)
			<-g.reached
			waitVerified(t, b, id, g.at)
			svc := a.svc
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				a.stop()
			}()
			pollUntil(t, "sender closing", func() bool { return svc.ctx.Err() != nil })
			g.open()
			<-stopped
			if change {
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				changed := bytes.Clone(data)
				changed[MinChunkSize+3] ^= 0x55 // chunk 1, already at the recipient
				if err := os.WriteFile(path, changed, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
					t.Fatal(err)
				}
			}
			a.start()
			testnet.Connect(t, a.h, b.h) // the recipient resumes on the connection event
			if !change {
				finishAndCheck(t, a, b, id, data)
				eachSentOnce(t, g, resumeChunks)
				return
			}
			if _, err := b.svc.Wait(ctxT(t), id); !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), "chunk 1") {
				t.Fatalf("recipient Wait = %v, want a bad manifest at chunk 1", err)
			}
			if ev := waitFor[events.FileFailed](t, a.rec, id); ev.Direction != "send" {
				t.Fatalf("sender file_failed = %+v", ev)
			}
			pollUntil(t, "part file removed", func() bool { return len(b.downloads()) == 0 })
		})
	}
}

// An empty file offered unhashed: no chunks, the commitment is all.
func TestUnhashedEmptyFile(t *testing.T) {
	a, b := newNode(t), newNode(t)
	testnet.Connect(t, a.h, b.h)
	path, _ := writeFile(t, t.TempDir(), "empty", 0)
	id, err := offerAndWait(t, a, b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := storedRecord(t, b, id); rec == nil || rec.Hash != "" {
		t.Fatalf("recipient stored %+v, want an offer without hash", rec)
	}
	if err := b.svc.Accept(id); err != nil {
		t.Fatal(err)
	}
	res, err := b.svc.Wait(ctxT(t), id)
	sum := blake3.Sum256(nil)
	if err != nil || res.Hash != hex.EncodeToString(sum[:]) || res.Size != 0 {
		t.Fatalf("recipient: %+v, %v", res, err)
	}
	if _, err := a.svc.Wait(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
}
