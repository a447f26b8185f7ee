package main_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// bigOffer is the size of the file offered: 4 GiB take seconds to hash
// (about 0.6 s per GiB), which /send used to do before the next command.
const bigOffer = 4 << 30

// sparseFile creates a file of size bytes that takes no disk space.
func sparseFile(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// infoData returns the "data" object of an info event.
func infoData(e proctest.Event) map[string]any {
	d, _ := e["data"].(map[string]any)
	return d
}

// hashing matches the file_hashing events of transfer id.
func hashing(id string) func(proctest.Event) bool {
	return func(e proctest.Event) bool { return e.Str("transfer_id") == id }
}

// TestSendDoesNotBlockCommands is issue 14's "no blocked command line
// during a 4 GiB offer", with issue 20's instant offer: /send answers at
// once with the transfer ID, the /id typed right after it is answered, and
// bob gets the offer without alice hashing the file first (no
// file_hashing: it is hashed as it is sent). /cancel then reaches bob.
// (Before issue 20 the offer waited for the whole-file hash and this test
// checked that /id was answered while alice was still hashing.)
func TestSendDoesNotBlockCommands(t *testing.T) {
	a, readyA := startPeer(t, "alice")
	b, readyB := startPeer(t, "bob", "--peer", firstAddr(t, readyA))
	idB := readyB.Str("peer_id")
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
	path := sparseFile(t, t.TempDir(), "big.iso", bigOffer)

	a.Send("/send " + idB + " " + path)
	a.Send("/id")
	sent := a.Wait(20*time.Second, "info", func(e proctest.Event) bool { return infoData(e)["transfer_id"] != nil })
	tid, _ := infoData(sent)["transfer_id"].(string)
	id := a.Wait(20*time.Second, "info", func(e proctest.Event) bool { return infoData(e)["peer_id"] != nil })
	if infoData(id)["peer_id"] != readyA.Str("peer_id") {
		t.Fatalf("/id answered %v", id)
	}
	offer := b.Find(20*time.Second, "file_offer", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
	if offer["size"] != float64(bigOffer) || offer.Str("name") != "big.iso" {
		t.Fatalf("file_offer %v", offer)
	}
	for _, e := range a.Seen() {
		if e.Type() == "file_hashing" && hashing(tid)(e) {
			t.Fatalf("alice hashed the file before offering it: %v", e)
		}
	}

	a.Send("/cancel " + tid)
	failed := a.Wait(20*time.Second, "file_failed", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
	if failed.Str("code") != "cancelled" {
		t.Fatalf("file_failed %v", failed)
	}
	b.Find(20*time.Second, "file_failed", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
}

// TestSendKilledAfterOffer kills the sender with SIGKILL right after its
// offer reached the recipient, before a byte of the file was read or
// hashed: the restarted sender still has the transfer (offered, with its
// chunk size), the recipient accepts, and the file arrives with the hash
// of its content. (Before issue 20 this was TestSendKilledWhileHashing:
// the offer waited for the hash, and a kill while hashing failed it.)
func TestSendKilledAfterOffer(t *testing.T) {
	b, readyB := startPeer(t, "bob")
	idB := readyB.Str("peer_id")
	alice := newFixedPeer(t, "alice", "--peer", firstAddr(t, readyB))
	a, _ := alice.start(t)
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
	path, hash := randomFile(t, t.TempDir(), "payload.bin", 5<<20+123)

	a.Send("/send " + idB + " " + path)
	sent := a.Wait(20*time.Second, "info", func(e proctest.Event) bool { return infoData(e)["transfer_id"] != nil })
	tid, _ := infoData(sent)["transfer_id"].(string)
	b.Find(20*time.Second, "file_offer", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
	a.Signal(syscall.SIGKILL)
	_ = a.Exited(10 * time.Second)

	a, _ = alice.start(t)
	a.Send("/transfers")
	list := a.Wait(20*time.Second, "info", func(e proctest.Event) bool { _, ok := e["data"].([]any); return ok })
	var state string
	for _, x := range list["data"].([]any) {
		if m, _ := x.(map[string]any); m["id"] == tid {
			state, _ = m["state"].(string)
		}
	}
	if state != "offered" {
		t.Fatalf("after a kill once offered, transfer %s is %q in %v", tid, state, list)
	}
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
	b.Send("/accept " + tid)
	done := b.Wait(60*time.Second, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
	if done.Str("hash") != hash || fileHash(t, done.Str("path")) != hash {
		t.Fatalf("received file differs: %v", done)
	}
	a.Wait(30*time.Second, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
}
