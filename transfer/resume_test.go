package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// gate is a sender hook that stops the first transfer reaching chunk at:
// it signals reached, waits for release, then drops the stream. Chunks
// actually written are counted per index.
type gate struct {
	at      int
	once    sync.Once
	reached chan struct{}
	release chan struct{}
	sent    chunkCounter
}

func newGate(at int) *gate {
	return &gate{at: at, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) hook(_ string, i int, _ []byte) error {
	if i == g.at {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.reached)
			select {
			case <-g.release:
			case <-time.After(waitTimeout):
			}
			return errors.New("injected stream drop")
		}
	}
	g.sent.add(i)
	return nil
}

func (g *gate) open() {
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

func withHook(h func(string, int, []byte) error) func(*Config) {
	return func(c *Config) { c.hooks.beforeChunk = h }
}

// startTransfer offers a file of chunks chunks from a to b and accepts it.
func startTransfer(t *testing.T, a, b *node, chunks int) (id, path string, data []byte) {
	t.Helper()
	path, data = writeFile(t, t.TempDir(), "payload.bin", int64(chunks)*MinChunkSize-100)
	id, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
	if err != nil {
		t.Fatalf("offer: %v", err)
	}
	waitFor[events.FileOffer](t, b.rec, id)
	if err := b.svc.Accept(id); err != nil {
		t.Fatalf("accept: %v", err)
	}
	return id, path, data
}

// finishAndCheck waits for both sides and compares the received file.
func finishAndCheck(t *testing.T, a, b *node, id string, data []byte) {
	t.Helper()
	res, err := b.svc.Wait(ctxT(t), id)
	if err != nil {
		t.Fatalf("recipient: %v", err)
	}
	if _, err := a.svc.Wait(ctxT(t), id); err != nil {
		t.Fatalf("sender: %v", err)
	}
	got, err := os.ReadFile(res.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received file differs (%d bytes, %v)", len(got), err)
	}
	noPartFiles(t, b)
}

// eachSentOnce checks that no chunk was sent twice.
func eachSentOnce(t *testing.T, g *gate, chunks int) {
	t.Helper()
	for i := range chunks {
		if n := g.sent.get(i); n != 1 {
			t.Errorf("chunk %d sent %d times", i, n)
		}
	}
}

// waitVerified waits until the recipient has verified n chunks.
func waitVerified(t *testing.T, b *node, id string, n int) {
	t.Helper()
	pollUntil(t, "recipient progress", func() bool {
		for _, in := range b.svc.List() {
			if in.ID == id {
				return in.Bytes == int64(n)*MinChunkSize
			}
		}
		return false
	})
}

const resumeChunks = 12

func TestResumeAfterStreamDrop(t *testing.T) {
	g := newGate(5)
	a, b := newNode(t, withHook(g.hook)), newNode(t)
	t.Cleanup(g.open) // before the nodes stop: Close waits for the hook
	testnet.Connect(t, a.h, b.h)
	id, _, data := startTransfer(t, a, b, resumeChunks)
	<-g.reached
	waitVerified(t, b, id, g.at)
	g.open() // the sender drops the stream; the recipient pulls the rest
	finishAndCheck(t, a, b, id, data)
	eachSentOnce(t, g, resumeChunks)
}

func TestResumeAfterRecipientRestart(t *testing.T) {
	for _, lostBitmap := range []bool{false, true} {
		name := "bitmap stored"
		if lostBitmap {
			name = "bitmap lost" // a crash before the last bitmap flush
		}
		t.Run(name, func(t *testing.T) {
			g := newGate(5)
			a, b := newNode(t, withHook(g.hook)), newNode(t)
			t.Cleanup(g.open) // before the nodes stop: Close waits for the hook
			testnet.Connect(t, a.h, b.h)
			id, _, data := startTransfer(t, a, b, resumeChunks)
			<-g.reached
			waitVerified(t, b, id, g.at)
			b.stop()
			if lostBitmap {
				db := testnet.OpenDB(t, b.dbPath)
				err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBitmaps).Delete([]byte(id)) })
				if cerr := db.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			g.open()
			b.start()
			testnet.Connect(t, b.h, a.h) // resumes on the connection event
			finishAndCheck(t, a, b, id, data)
			eachSentOnce(t, g, resumeChunks)
		})
	}
}

func TestResumeAfterSenderRestart(t *testing.T) {
	g := newGate(5)
	a, b := newNode(t, withHook(g.hook)), newNode(t)
	t.Cleanup(g.open) // before the nodes stop: Close waits for the hook
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
	a.start()
	// A one-shot sender that runs again offers the same file: it gets the
	// same transfer back.
	again, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
	if err != nil || again != id {
		t.Fatalf("offer again = %s, %v; want %s", again, err, id)
	}
	testnet.Connect(t, a.h, b.h)
	finishAndCheck(t, a, b, id, data)
	eachSentOnce(t, g, resumeChunks)
}

// A REJECT given while the sender is offline reaches it when it is back.
func TestNoticeDeliveredAfterReconnect(t *testing.T) {
	a, b := newNode(t), newNode(t)
	testnet.Connect(t, a.h, b.h)
	path, _ := writeFile(t, t.TempDir(), "x.bin", 1000)
	id, err := a.svc.Offer(ctxT(t), b.h.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor[events.FileOffer](t, b.rec, id)
	a.stop()
	if err := b.svc.Reject(id); err != nil {
		t.Fatal(err)
	}
	a.start()
	testnet.Connect(t, b.h, a.h)
	if _, err := a.svc.Wait(ctxT(t), id); !errors.Is(err, ErrRejected) {
		t.Fatalf("sender wait = %v, want ErrRejected", err)
	}
	waitFor[events.FileRejected](t, a.rec, id)
	// Delivered: nothing is left in the recipient's store.
	pollUntil(t, "notice cleared", func() bool {
		found := false
		_ = b.db.View(func(tx *bolt.Tx) error {
			found = tx.Bucket(bucketRecords).Get([]byte(id)) != nil
			return nil
		})
		return !found
	})
}

// A restart between putting the file in place and recording it finishes
// the transfer without fetching anything or making a second copy.
func TestRestartWhilePlacing(t *testing.T) {
	for _, stage := range []string{"linked", "placed"} {
		t.Run(stage, func(t *testing.T) {
			var sent chunkCounter
			a := newNode(t, withHook(func(_ string, i int, _ []byte) error { sent.add(i); return nil }))
			var crashed atomic.Bool
			b := newNode(t, func(c *Config) {
				c.hooks.placing = func(s string) error {
					if s == stage && crashed.CompareAndSwap(false, true) {
						return fmt.Errorf("%w: injected crash", errDisk) // parks the transfer
					}
					return nil
				}
			})
			testnet.Connect(t, a.h, b.h)
			id, _, data := startTransfer(t, a, b, 4)
			pollUntil(t, "crash while placing", func() bool {
				b.svc.mu.Lock()
				defer b.svc.mu.Unlock()
				return crashed.Load() && !b.svc.transfers[id].running
			})
			b.stop()
			b.start()
			testnet.Connect(t, b.h, a.h)
			finishAndCheck(t, a, b, id, data)
			if got := b.downloads(); len(got) != 1 || got[0] != "payload.bin" {
				t.Fatalf("downloads: %v", got)
			}
			if sent.total() != 4 {
				t.Fatalf("%d chunks sent, want 4", sent.total())
			}
		})
	}
}
