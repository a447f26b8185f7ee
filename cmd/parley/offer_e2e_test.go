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

// hashing matches the file_hashing events of transfer id with at least
// min bytes hashed.
func hashing(id string, min float64) func(proctest.Event) bool {
	return func(e proctest.Event) bool {
		n, _ := e["bytes"].(float64)
		return e.Str("transfer_id") == id && n >= min
	}
}

// TestSendDoesNotBlockCommands is issue 14's "no blocked command line
// during a 4 GiB offer": /send answers at once with the transfer ID, and
// the /id typed right after it is answered while the file is still being
// hashed (before the last file_hashing event, which /send used to wait
// for). /cancel then stops the hashing: the whole way to the offer is
// TestSendAcceptAndVerify's, and transfer.TestOfferHashedThenOffered's.
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
	// Events come out in order: what came before /id's answer is seen.
	for _, e := range a.Seen() {
		if e.Type() == "file_hashing" && hashing(tid, bigOffer)(e) {
			t.Fatalf("/id was answered only after the file was hashed: %v", e)
		}
	}
	first := a.Find(20*time.Second, "file_hashing", hashing(tid, 0))
	if first["size"] != float64(bigOffer) || first.Str("direction") != "send" || first.Str("peer") != idB || first.Str("name") != "big.iso" {
		t.Fatalf("file_hashing %v", first)
	}

	a.Send("/cancel " + tid)
	failed := a.Wait(20*time.Second, "file_failed", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
	if failed.Str("code") != "cancelled" {
		t.Fatalf("file_failed %v", failed)
	}
	b.Send("/transfers")
	bl := b.Wait(20*time.Second, "info", func(e proctest.Event) bool { _, ok := e["data"].([]any); return ok })
	if got := bl["data"].([]any); len(got) != 0 {
		t.Fatalf("bob was offered a file cancelled while it was hashed: %v", got)
	}
}

// TestSendKilledWhileHashing kills the sender while it hashes: the next
// start lists the transfer as failed, and the recipient never gets an
// offer (a partial manifest is never offered).
func TestSendKilledWhileHashing(t *testing.T) {
	b, readyB := startPeer(t, "bob")
	idB := readyB.Str("peer_id")
	alice := newFixedPeer(t, "alice", "--peer", firstAddr(t, readyB))
	a, _ := alice.start(t)
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
	path := sparseFile(t, t.TempDir(), "big.iso", bigOffer)

	a.Send("/send " + idB + " " + path)
	sent := a.Wait(20*time.Second, "info", func(e proctest.Event) bool { return infoData(e)["transfer_id"] != nil })
	tid, _ := infoData(sent)["transfer_id"].(string)
	a.Wait(20*time.Second, "file_hashing", hashing(tid, 1))
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
	if state != "failed" {
		t.Fatalf("after a kill while hashing, transfer %s is %q in %v", tid, state, list)
	}
	// bob would have the offer by now had it been sent before the kill
	// or at the restart: the restarted alice is connected to him.
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
	b.Send("/transfers")
	bl := b.Wait(20*time.Second, "info", func(e proctest.Event) bool { _, ok := e["data"].([]any); return ok })
	if got := bl["data"].([]any); len(got) != 0 {
		t.Fatalf("bob was offered a file that was never hashed: %v", got)
	}
}
