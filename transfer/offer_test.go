package transfer

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"lukechampine.com/blake3"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// bigOffer is the size of the sparse file offered by the tests that show
// the command line is not blocked (issue 14): 4 GiB take seconds to hash.
const bigOffer = 4 << 30

// hashGate is a hashed hook that stops the hashing goroutine the first
// time at least at bytes are hashed (0: before the file is opened): it
// signals reached and waits for release. Every call is counted.
type hashGate struct {
	at      int64
	once    sync.Once
	reached chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func newHashGate(at int64) *hashGate {
	return &hashGate{at: at, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *hashGate) hook(_ string, hashed int64) {
	g.calls.Add(1)
	if hashed < g.at {
		return
	}
	first := false
	g.once.Do(func() { first = true })
	if !first {
		return
	}
	close(g.reached)
	select {
	case <-g.release:
	case <-time.After(waitTimeout):
	}
}

func (g *hashGate) open() {
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

func withHashGate(g *hashGate) func(*Config) {
	return func(c *Config) { c.hooks.hashed = g.hook }
}

// sparseFile creates a file of size bytes that takes no disk space.
func sparseFile(tb testing.TB, dir, name string, size int64) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// storedRecord returns n's stored record of id and whether a manifest is
// stored for it; n may be stopped.
func storedRecord(tb testing.TB, n *node, id string) (rec *record, manifest bool) {
	tb.Helper()
	db := n.db
	if n.svc == nil { // stopped: open the store as the next start would
		var err error
		if db, err = bolt.Open(n.dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true}); err != nil {
			tb.Fatal(err)
		}
		defer func() { _ = db.Close() }()
	}
	err := db.View(func(tx *bolt.Tx) error {
		manifest = tx.Bucket(bucketManifests).Get([]byte(id)) != nil
		v := tx.Bucket(bucketRecords).Get([]byte(id))
		if v == nil {
			return nil
		}
		rec = new(record)
		return json.Unmarshal(v, rec)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rec, manifest
}

// noOffer fails when n was offered transfer id.
func noOffer(tb testing.TB, n *node, id string) {
	tb.Helper()
	if ev, ok := find[events.FileOffer](n.rec, id); ok {
		tb.Fatalf("the recipient got an offer of a file that was never hashed: %+v", ev)
	}
}

// Offering a 4 GiB file (protocol v2, hash-as-you-send) sends the offer
// at once, before a byte of the file is read: the recipient holds it with
// no hash and the chunk size, nothing is hashed (no file_hashing, the
// hashing hook never runs), and the sender stores the transfer as offered
// with its chunk size, no hash and no manifest. Cancel then reaches the
// recipient. (Until issue 20 the offer waited for the whole-file hash:
// this test asserted the opposite, "nothing offered before hashing".)
func TestOfferGoesOutBeforeHashing(t *testing.T) {
	g := newHashGate(0)
	a := newNode(t, withHashGate(g))
	t.Cleanup(g.open)
	b := newNode(t)
	testnet.Connect(t, a.h, b.h)
	path := sparseFile(t, t.TempDir(), "big.iso", bigOffer)

	id, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.svc.WaitOffered(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	off := waitFor[events.FileOffer](t, b.rec, id)
	if off.Size != bigOffer || off.Name != "big.iso" || off.From != a.h.ID() {
		t.Fatalf("file_offer = %+v", off)
	}
	if in := a.info(id); in.State != StateOffered || in.Bytes != 0 {
		t.Fatalf("sender after the offer: %+v", in)
	}
	if n := g.calls.Load(); n != 0 {
		t.Fatalf("the file was hashed before the offer: %d hashing calls", n)
	}
	if _, ok := find[events.FileHashing](a.rec, id); ok {
		t.Fatal("file_hashing for an offer sent unhashed")
	}
	cs, _ := chooseChunkSize(bigOffer, MinChunkSize)
	for _, n := range []*node{a, b} {
		rec, man := storedRecord(t, n, id)
		if rec == nil || rec.State != StateOffered || rec.Hash != "" || rec.ChunkSize != cs || man {
			t.Fatalf("stored: %+v, manifest %v; want offered, chunk size %d, no hash, no manifest", rec, man, cs)
		}
	}
	if err := a.svc.Cancel(id); err != nil {
		t.Fatal(err)
	}
	if ev := waitFor[events.FileFailed](t, b.rec, id); ev.Code != "cancelled" || ev.Direction != "receive" {
		t.Fatalf("recipient file_failed = %+v", ev)
	}
}

// v1Node is a node that speaks only /parley/file/1.0.0, as a node from
// before issue 20 does (same handler: the frames are the same, only
// offers without a hash are refused on v1).
func v1Node(t *testing.T) *node {
	t.Helper()
	n := newNode(t)
	n.h.RemoveStreamHandler(ID)
	return n
}

// An older peer (v1 only) gets the old flow: Offer returns while the file
// is hashed, file_hashing ends with all bytes, then the recipient gets the
// offer, with the hash, and the file.
func TestOfferToV1PeerHashedThenOffered(t *testing.T) {
	g := newHashGate(1)
	a := newNode(t, withHashGate(g))
	t.Cleanup(g.open)
	b := v1Node(t)
	testnet.Connect(t, a.h, b.h)
	const size = 8*MinChunkSize + 5
	path, data := writeFile(t, t.TempDir(), "small.bin", size)

	id, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	waitGate(t, g)
	if st := a.info(id).State; st != StateHashing {
		t.Fatalf("state %s while the hasher waits, want hashing", st)
	}
	noOffer(t, b, id)
	g.open()
	last := a.rec.wait(t, "final file_hashing", func(e events.Event) bool {
		h, ok := e.(events.FileHashing)
		return ok && h.TransferID == id && h.Bytes == size
	}).(events.FileHashing)
	if last.Size != size || last.Peer != b.h.ID() {
		t.Fatalf("final file_hashing = %+v", last)
	}
	if err := a.svc.WaitOffered(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	off := waitFor[events.FileOffer](t, b.rec, id)
	if off.Size != size || off.Name != "small.bin" {
		t.Fatalf("file_offer = %+v", off)
	}
	if rec, _ := storedRecord(t, b, id); rec == nil || rec.Hash == "" {
		t.Fatalf("the v1 recipient stored %+v, want the offered hash", rec)
	}
	if in := a.info(id); in.State != StateOffered || in.Bytes != 0 {
		t.Fatalf("after the offer: %+v", in)
	}
	if err := b.svc.Accept(id); err != nil {
		t.Fatal(err)
	}
	finishAndCheck(t, a, b, id, data)
	res, err := a.svc.Wait(ctxT(t), id)
	sum := blake3.Sum256(data)
	if err != nil || res.Hash != hex.EncodeToString(sum[:]) {
		t.Fatalf("sender result %+v, %v", res, err)
	}
}

// waitGate waits until g is reached, at most waitTimeout.
func waitGate(t *testing.T, g *hashGate) {
	t.Helper()
	select {
	case <-g.reached:
	case <-time.After(waitTimeout):
		t.Fatal("the hasher never reached its gate")
	}
}

// Errors while hashing (for a v1 peer) end the transfer with file_failed,
// and nothing is offered. (For a v2 peer the same changes are caught while
// the file is sent: TestSourceChangesWhileSent.)
func TestOfferHashingFails(t *testing.T) {
	tests := []struct {
		name   string
		at     int64 // where the hasher waits while the file is changed
		change func(t *testing.T, path string)
		code   string
		is     error
	}{
		{"vanished", 0, func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "error", fs.ErrNotExist},
		{"replaced", 0, func(t *testing.T, path string) {
			writeFile(t, filepath.Dir(path), filepath.Base(path), 3*MinChunkSize)
		}, "file_changed", ErrFileChanged},
		{"written while hashed", 1, func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("more")); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}, "file_changed", ErrFileChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newHashGate(tt.at)
			a := newNode(t, withHashGate(g))
			t.Cleanup(g.open)
			b := v1Node(t)
			testnet.Connect(t, a.h, b.h)
			path, _ := writeFile(t, t.TempDir(), "moving.bin", 4*MinChunkSize)
			id, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
			if err != nil {
				t.Fatal(err)
			}
			waitGate(t, g)
			tt.change(t, path)
			g.open()
			if err := a.svc.WaitOffered(ctxT(t), id); !errors.Is(err, tt.is) {
				t.Fatalf("WaitOffered = %v, want %v", err, tt.is)
			}
			if _, err := a.svc.Wait(ctxT(t), id); !errors.Is(err, tt.is) {
				t.Fatalf("Wait = %v, want %v", err, tt.is)
			}
			if ev := waitFor[events.FileFailed](t, a.rec, id); ev.Code != tt.code || ev.Peer != b.h.ID() {
				t.Fatalf("file_failed = %+v, want code %s", ev, tt.code)
			}
			if st := a.info(id).State; st != StateFailed {
				t.Fatalf("state %s", st)
			}
			a.stop()
			nothingLeft(t, a, b, id, "a failed hash")
		})
	}
}

// A node that stops while hashing for a v1 peer (Close, or a crash: both
// leave the stored record in state hashing) fails the transfer at the next
// start: no v1 offer with a partial manifest ever goes out.
func TestOfferInterruptedWhileHashing(t *testing.T) {
	g := newHashGate(1)
	a := newNode(t, withHashGate(g))
	t.Cleanup(g.open)
	b := v1Node(t)
	testnet.Connect(t, a.h, b.h)
	path := sparseFile(t, t.TempDir(), "big.iso", bigOffer)
	id, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	waitGate(t, g)
	svc := a.svc
	go func() {
		<-svc.ctx.Done() // Close has begun: the hasher stops at its next chunk
		g.open()
	}()
	a.stop()
	if rec, man := storedRecord(t, a, id); rec == nil || rec.State != StateHashing || man {
		t.Fatalf("stored after a stop while hashing: %+v, manifest %v", rec, man)
	}

	a.start()
	in := a.info(id)
	if in.State != StateFailed || !strings.Contains(in.Error, "hashing") {
		t.Fatalf("restored: %+v, want failed while hashing", in)
	}
	if _, err := a.svc.Wait(ctxT(t), id); err == nil || !strings.Contains(err.Error(), "hashing") {
		t.Fatalf("Wait = %v", err)
	}
	if err := a.svc.WaitOffered(ctxT(t), id); err == nil {
		t.Fatal("WaitOffered of an interrupted hash returned nil")
	}
	if rec, man := storedRecord(t, a, id); rec != nil || man {
		t.Fatalf("the failed record stays stored: %+v, manifest %v", rec, man)
	}
	testnet.Connect(t, a.h, b.h)
	// The same file offered again is a new transfer, hashed anew.
	again, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
	if err != nil || again == id {
		t.Fatalf("offer again = %s, %v (interrupted %s)", again, err, id)
	}
	if err := a.svc.Cancel(again); err != nil {
		t.Fatal(err)
	}
	noOffer(t, b, id)
}

// StartShare returns at once too; WaitShared gives the Share to announce
// once it is hashed, or the reason it ended.
func TestShareHashedInBackground(t *testing.T) {
	g := newHashGate(1)
	a := newNode(t, withHashGate(g))
	t.Cleanup(g.open)
	path, data := writeFile(t, t.TempDir(), "shared.bin", 3*MinChunkSize)
	id, err := a.svc.StartShare(path)
	if err != nil {
		t.Fatal(err)
	}
	<-g.reached
	if in := a.info(id); in.State != StateHashing || in.Peer != "" {
		t.Fatalf("share while hashing: %+v", in)
	}
	if ev := waitFor[events.FileHashing](t, a.rec, id); ev.Peer != "" || ev.Direction != "send" {
		t.Fatalf("file_hashing of a share = %+v", ev)
	}
	g.open()
	sh, err := a.svc.WaitShared(ctxT(t), id)
	sum := blake3.Sum256(data)
	if err != nil || sh != (Share{ID: id, Name: "shared.bin", Size: int64(len(data)), Hash: hex.EncodeToString(sum[:])}) {
		t.Fatalf("WaitShared = %+v, %v", sh, err)
	}
	if err := a.svc.WaitOffered(ctxT(t), id); !errors.Is(err, ErrState) {
		t.Fatalf("WaitOffered of a share = %v, want ErrState", err)
	}

	// Cancelled while hashing.
	g2 := newHashGate(1)
	c := newNode(t, withHashGate(g2))
	t.Cleanup(g2.open)
	big := sparseFile(t, t.TempDir(), "big.iso", bigOffer)
	id2, err := c.svc.StartShare(big)
	if err != nil {
		t.Fatal(err)
	}
	<-g2.reached
	if err := c.svc.Cancel(id2); err != nil {
		t.Fatal(err)
	}
	g2.open()
	if _, err := c.svc.WaitShared(ctxT(t), id2); !errors.Is(err, ErrCancelled) {
		t.Fatalf("WaitShared after Cancel = %v", err)
	}
}

// nothingLeft fails unless b was never offered id and a stored nothing of
// it (no record, no manifest); what names the case.
func nothingLeft(t *testing.T, a, b *node, id, what string) {
	t.Helper()
	noOffer(t, b, id)
	if rec, man := storedRecord(t, a, id); rec != nil || man {
		t.Fatalf("%s left %+v (manifest %v) in the store", what, rec, man)
	}
}
