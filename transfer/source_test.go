package transfer

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// The sender's file changes or disappears after the offer, while its
// chunks are being sent (issue 20): the transfer fails on both sides with
// file_changed, a clear error, not after chunk retries with
// verify_failed; a file deleted while its open stream keeps going is sent
// whole from the open file (the bytes match the manifest).
func TestSourceChangesWhileSent(t *testing.T) {
	const chunks = 32
	tests := []struct {
		name string
		// change runs on the sender before chunk 5 is written; true resets
		// the stream, so that the recipient pulls again over a new one.
		change func(t *testing.T, path string) (reset bool)
		code   string // "" : the transfer completes
	}{
		{"written", func(t *testing.T, path string) bool {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return false
			}
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xAA}, 100), 20*MinChunkSize); err != nil {
				t.Error(err)
			}
			if err := f.Close(); err != nil {
				t.Error(err)
			}
			// A write within the file system's timestamp granularity of
			// the hash would keep the modification time: make it differ.
			later := time.Now().Add(time.Second)
			if err := os.Chtimes(path, later, later); err != nil {
				t.Error(err)
			}
			return false
		}, "file_changed"},
		{"deleted, new stream", func(t *testing.T, path string) bool {
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
			return true
		}, "file_changed"},
		{"deleted, same stream", func(t *testing.T, path string) bool {
			if err := os.Remove(path); err != nil {
				t.Error(err)
			}
			return false
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				once sync.Once
				path string
			)
			hook := func(c *Config) {
				c.hooks.beforeChunk = func(_ string, index int, _ []byte) error {
					reset := false
					if index == 5 {
						once.Do(func() { reset = tt.change(t, path) })
					}
					if reset {
						return errors.New("test: drop the stream")
					}
					return nil
				}
			}
			a, b := newNode(t, hook), newNode(t)
			testnet.Connect(t, a.h, b.h)
			var data []byte
			path, data = writeFile(t, t.TempDir(), "moving.bin", chunks*MinChunkSize)
			id, err := offerAndWait(t, a, b.h.ID(), path)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.svc.Accept(id); err != nil {
				t.Fatal(err)
			}
			resB, errB := b.svc.Wait(ctxT(t), id)
			_, errA := a.svc.Wait(ctxT(t), id)
			if tt.code == "" {
				if errA != nil || errB != nil {
					t.Fatalf("sender %v, recipient %v; want done", errA, errB)
				}
				if got, err := os.ReadFile(resB.Path); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("received file differs (%v)", err)
				}
				return
			}
			if !errors.Is(errA, ErrFileChanged) || !errors.Is(errB, ErrFileChanged) {
				t.Fatalf("sender %v, recipient %v; want %v on both", errA, errB, ErrFileChanged)
			}
			for _, n := range []*node{a, b} {
				if ev := waitFor[events.FileFailed](t, n.rec, id); ev.Code != tt.code {
					t.Fatalf("file_failed %+v, want code %s", ev, tt.code)
				}
			}
			// The runner removes the part file after the transfer ended.
			pollUntil(t, "part file removed", func() bool { return len(b.downloads()) == 0 })
		})
	}
}
