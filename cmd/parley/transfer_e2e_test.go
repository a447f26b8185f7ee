package main_test

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/parley-chat/parley/internal/proctest"
)

// randomFile writes size random bytes and returns the path and the BLAKE3
// hash Parley reports for it.
func randomFile(t *testing.T, dir, name string, size int64) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := blake3.New(32, nil)
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := blake3.New(32, nil)
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestSendAcceptAndVerify(t *testing.T) {
	a, readyA := startPeer(t, "alice")
	b, readyB := startPeer(t, "bob", "--peer", firstAddr(t, readyA))
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == readyB.Str("peer_id") })
	path, hash := randomFile(t, t.TempDir(), "report final.pdf", 3<<20+17)

	a.Send("/send " + readyB.Str("peer_id") + " " + path)
	offer := b.Wait(20*time.Second, "file_offer", nil)
	if offer.Str("from") != readyA.Str("peer_id") || offer.Str("name") != "report final.pdf" || offer["size"] != float64(3<<20+17) {
		t.Fatalf("offer %v", offer)
	}
	b.Send("/accept " + offer.Str("transfer_id")[:8])
	done := b.Wait(60*time.Second, "file_done", nil)
	if done.Str("hash") != hash || fileHash(t, done.Str("path")) != hash {
		t.Fatalf("received %v, want hash %s", done, hash)
	}
	a.Wait(30*time.Second, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == offer.Str("transfer_id") })

	// A second offer, rejected.
	a.Send("/send " + readyB.Str("peer_id") + " " + path)
	offer2 := b.Wait(20*time.Second, "file_offer", nil)
	b.Send("/reject " + offer2.Str("transfer_id"))
	a.Wait(20*time.Second, "file_rejected", func(e proctest.Event) bool { return e.Str("transfer_id") == offer2.Str("transfer_id") })
}

func TestShareAndFetch(t *testing.T) {
	a, readyA := startPeer(t, "alice", "--room", "files")
	b, _ := startPeer(t, "bob", "--room", "files", "--peer", firstAddr(t, readyA))
	b.Find(30*time.Second, "presence", func(e proctest.Event) bool { return e.Str("peer_id") == readyA.Str("peer_id") })
	path, hash := randomFile(t, t.TempDir(), "notes.txt", 70_000)
	a.Send("/share files " + path)
	// /share answers at once with the id; the share is announced (an
	// info with the share, hash included) once hashed.
	dataOf := func(e proctest.Event) map[string]any { d, _ := e["data"].(map[string]any); return d }
	started := a.Wait(20*time.Second, "info", func(e proctest.Event) bool { return dataOf(e)["transfer_id"] != nil })
	announced := a.Find(20*time.Second, "info", func(e proctest.Event) bool { return dataOf(e)["hash"] != nil })
	if dataOf(announced)["id"] != dataOf(started)["transfer_id"] || dataOf(announced)["name"] != "notes.txt" {
		t.Fatalf("/share answered %v, then announced %v", started, announced)
	}
	offer := b.Wait(20*time.Second, "file_offer", func(e proctest.Event) bool { return e.Str("room") == "files" })
	b.Send("/fetch " + offer.Str("transfer_id"))
	done := b.Wait(60*time.Second, "file_done", nil)
	if fileHash(t, done.Str("path")) != hash {
		t.Fatalf("fetched file differs: %v", done)
	}
}

func TestOneShotSend(t *testing.T) {
	b, readyB := startPeer(t, "bob")
	dir := t.TempDir()
	path, hash := randomFile(t, dir, "one-shot.bin", 1<<20)
	send := func(accept bool) (int, string) {
		cmd := exec.Command(bin, "send", "--data-dir", filepath.Join(dir, "sender"), "--no-mdns",
			"--listen", "/ip4/127.0.0.1/tcp/0", "--to", firstAddr(t, readyB), path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		offer := b.Wait(30*time.Second, "file_offer", nil)
		if accept {
			b.Send("/accept " + offer.Str("transfer_id"))
		} else {
			b.Send("/reject " + offer.Str("transfer_id"))
		}
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("parley send did not exit")
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	if code, stderr := send(true); code != 0 {
		t.Fatalf("accepted send exited %d: %s", code, stderr)
	}
	done := b.Wait(10*time.Second, "file_done", nil)
	if fileHash(t, done.Str("path")) != hash {
		t.Fatal("one-shot file differs")
	}
	if code, stderr := send(false); code != 1 || !strings.Contains(stderr, "reject") {
		t.Fatalf("rejected send exited %d: %q", code, stderr)
	}
}

// TestTransferResumesAfterSIGKILL kills the receiver, then the sender,
// in the middle of a transfer; each time the restarted process carries on
// from the verified chunks, and the file arrives whole.
func TestTransferResumesAfterSIGKILL(t *testing.T) {
	alice := newFixedPeer(t, "alice")
	bob := newFixedPeer(t, "bob")
	a, readyA := alice.start(t)
	addrA := firstAddr(t, readyA)
	b, readyB := bob.start(t, "--peer", addrA)
	addrB := firstAddr(t, readyB)
	idB := readyB.Str("peer_id")
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })

	const size = 400 << 20
	path, hash := randomFile(t, t.TempDir(), "big.bin", size)
	a.Send("/send " + idB + " " + path)
	offer := b.Wait(30*time.Second, "file_offer", nil)
	tid := offer.Str("transfer_id")
	b.Send("/accept " + tid)

	// midway waits for progress strictly between 0 and the size on p
	// and returns the bytes reached.
	midway := func(p *proctest.Peer) float64 {
		e := p.Wait(60*time.Second, "file_progress", func(e proctest.Event) bool {
			n, _ := e["bytes"].(float64)
			return e.Str("transfer_id") == tid && n > 0 && n < size
		})
		return e["bytes"].(float64)
	}

	// 1. Kill the receiver mid-way; it restarts and resumes.
	reached := midway(b)
	b.Signal(syscall.SIGKILL)
	_ = b.Exited(10 * time.Second)
	b, _ = bob.start(t, "--peer", addrA)
	first := b.Wait(60*time.Second, "file_progress", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
	// Progress counts verified bytes: everything verified before the kill
	// is kept (the part file is checked against the manifest), so the
	// restarted receiver pulls none of it again.
	if n, _ := first["bytes"].(float64); n < reached {
		t.Fatalf("receiver restarted at %v bytes, below the %.0f it had verified before the kill: %v", n, reached, first)
	}
	t.Logf("receiver killed at %.0f bytes, resumed at %v", reached, first["bytes"])

	// 2. Kill the sender mid-way; it restarts and the transfer completes.
	reached = first["bytes"].(float64)
	if reached < size {
		reached = midway(b)
	}
	a.Signal(syscall.SIGKILL)
	_ = a.Exited(10 * time.Second)
	a, _ = alice.start(t, "--peer", addrB) // the restarted sender
	// The sender's progress is the recipient's bytes plus what it sent:
	// it starts from what the recipient no longer asks for.
	if reached < size {
		sent := a.Wait(60*time.Second, "file_progress", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
		if n, _ := sent["bytes"].(float64); n < reached {
			t.Fatalf("restarted sender resent verified chunks: first progress %v, the recipient had %.0f", n, reached)
		}
		t.Logf("sender killed with the recipient at %.0f bytes, resumed at %v", reached, sent["bytes"])
	}

	done := b.Wait(120*time.Second, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == tid })
	if done.Str("hash") != hash || fileHash(t, done.Str("path")) != hash {
		t.Fatalf("resumed file differs: %v", done)
	}
}
