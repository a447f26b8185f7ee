package main_test

import (
	"encoding/hex"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/parley-chat/parley/internal/proctest"
)

// TestSendEmptyFile sends a 0-byte file between two processes: it is
// offered, accepted and placed, empty, with the hash of no bytes, and
// both sides report file_done.
func TestSendEmptyFile(t *testing.T) {
	a, readyA := startPeer(t, "alice")
	b, readyB := startPeer(t, "bob", "--peer", firstAddr(t, readyA))
	idB := readyB.Str("peer_id")
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
	path, _ := randomFile(t, t.TempDir(), "empty.txt", 0)

	a.Send("/send " + idB + " " + path)
	offer := b.Wait(20*time.Second, "file_offer", nil)
	tid := offer.Str("transfer_id")
	if offer["size"] != float64(0) || offer.Str("name") != "empty.txt" {
		t.Fatalf("file_offer %v", offer)
	}
	b.Send("/accept " + tid)
	done := b.Wait(30*time.Second, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
	empty := blake3.Sum256(nil)
	if done.Str("hash") != hex.EncodeToString(empty[:]) {
		t.Fatalf("file_done %v, want the hash of no bytes", done)
	}
	if st, err := os.Stat(done.Str("path")); err != nil || st.Size() != 0 {
		t.Fatalf("received file: %v, %v", st, err)
	}
	a.Wait(30*time.Second, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
}

// TestSourceChangesMidSend changes the sender's file while its bytes are
// on the way, between two processes: written in place (the sender finds
// its size or modification time changed when it commits to the hash), or
// deleted with the sender then killed and restarted (it cannot open the
// file again). Either way both sides end the transfer with file_failed,
// code file_changed, not with a file that is neither the old nor the new
// content; the recipient keeps no part file.
func TestSourceChangesMidSend(t *testing.T) {
	const size = 400 << 20 // seconds on loopback: time to change it mid-way
	tests := []struct {
		name string
		// change runs once the recipient verified the first bytes; it
		// returns the sender to wait on (a restarted one, or a).
		change func(t *testing.T, path string, alice *fixedPeer, a *proctest.Peer, addrB string) *proctest.Peer
		reason string // in the recipient's error
	}{
		{"written", func(t *testing.T, path string, _ *fixedPeer, a *proctest.Peer, _ string) *proctest.Peer {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("edited"), size/2); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			// Within the file system's timestamp granularity a write can
			// keep the modification time: make it differ.
			later := time.Now().Add(time.Second)
			if err := os.Chtimes(path, later, later); err != nil {
				t.Fatal(err)
			}
			return a
		}, "changed"},
		{"deleted, sender restarted", func(t *testing.T, path string, alice *fixedPeer, a *proctest.Peer, addrB string) *proctest.Peer {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			a.Signal(syscall.SIGKILL)
			_ = a.Exited(10 * time.Second)
			a, _ = alice.start(t, "--peer", addrB)
			return a
		}, "deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice := newFixedPeer(t, "alice")
			bob := newFixedPeer(t, "bob")
			a, readyA := alice.start(t)
			b, readyB := bob.start(t, "--peer", firstAddr(t, readyA))
			idB, addrB := readyB.Str("peer_id"), firstAddr(t, readyB)
			a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
			path, _ := randomFile(t, t.TempDir(), "draft.bin", size)

			a.Send("/send " + idB + " " + path)
			tid := b.Wait(30*time.Second, "file_offer", nil).Str("transfer_id")
			isT := func(e proctest.Event) bool { return e.Str("transfer_id") == tid }
			b.Send("/accept " + tid)
			p := b.Wait(60*time.Second, "file_progress", func(e proctest.Event) bool {
				n, _ := e["bytes"].(float64)
				return isT(e) && n > 0
			})
			if n, _ := p["bytes"].(float64); n >= size {
				t.Fatalf("the whole file arrived before it could be changed: %v", p)
			}
			a = tt.change(t, path, alice, a, addrB)

			failed := b.Wait(120*time.Second, "file_failed", isT)
			if failed.Str("code") != "file_changed" || !strings.Contains(failed.Str("error"), tt.reason) {
				t.Fatalf("recipient: %v, want code file_changed, an error that says %q", failed, tt.reason)
			}
			if e := a.Find(60*time.Second, "file_failed", isT); e.Str("code") != "file_changed" {
				t.Fatalf("sender: %v, want code file_changed", e)
			}
			for _, e := range b.Seen() {
				if e.Type() == "file_done" && isT(e) {
					t.Fatalf("recipient placed a file: %v", e)
				}
			}
		})
	}
}
