package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/config"
	"github.com/parley-chat/parley/internal/proctest"
)

// TestKillInTheGapShowsAfterRestart puts bob in the gap the random kill -9
// tests (TestNoEventLostToKill9, TestNoRoomMessageLostToKill9,
// TestNoTransferOutcomeLostToKill9) hit only now and then: a file, a
// direct message and a room line are committed to his store while his
// events cannot leave the process (nobody reads his output, so his line
// writer is blocked), then he is killed with SIGKILL. His next run shows
// the file_done, the dm and the message nevertheless, as never shown.
func TestKillInTheGapShowsAfterRestart(t *testing.T) {
	alice := newFixedPeer(t, "alice", "--room", "gap")
	a, readyA := alice.start(t)
	bob := newFixedPeer(t, "bob")
	if err := os.MkdirAll(bob.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("auto_accept_from = [%q]\n", readyA.Str("peer_id"))
	if err := os.WriteFile(filepath.Join(bob.dir, config.FileName), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// Bob's first run: his output is read up to ready, then no more.
	cmd := exec.Command(bin, "--json", "--data-dir", bob.dir, "--nick", "bob", "--no-mdns", // #nosec G204 -- the binary under test
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", bob.port), "--peer", firstAddr(t, readyA), "--room", "gap")
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	var stderr bytes.Buffer // read once the process is gone
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var readyB proctest.Event
	for readyB == nil && sc.Scan() {
		var e proctest.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type() == "ready" {
			readyB = e
		}
	}
	if readyB == nil {
		kill()
		t.Fatalf("bob did not get ready: %s", stderr.String())
	}
	bobID := readyB.Str("peer_id")
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == bobID })
	a.Find(30*time.Second, "presence", func(e proctest.Event) bool {
		return e.Str("room") == "gap" && e.Str("peer_id") == bobID && e["online"] == true
	})
	// Block his output: many answers nobody reads fill the pipe (64 KiB
	// on Linux; each answer is a few hundred bytes).
	go func() {
		for range 2000 {
			if _, err := stdin.Write([]byte("/id\n")); err != nil {
				return
			}
		}
	}()
	time.Sleep(2 * time.Second) // nothing to await: bob's output is what is blocked

	path, _ := randomFile(t, t.TempDir(), "gap.bin", 200<<10)
	a.Send("/send " + bobID + " " + path)
	a.Send("/msg " + bobID + " sent into the gap")
	a.Send("/switch gap")
	a.Send("said into the gap")
	done := a.Wait(30*time.Second, "file_done", nil)
	queued := a.Find(10*time.Second, "dm_status", func(e proctest.Event) bool { return e.Str("state") == "queued" })
	a.Find(30*time.Second, "dm_status", dmStatus(queued.Str("id"), "delivered"))
	received := filepath.Join(bob.dir, "downloads", "gap.bin")
	if _, err := os.Stat(received); err != nil {
		t.Fatalf("bob's file: %v", err)
	}
	time.Sleep(2 * time.Second) // the room line reaches bob live: nothing to await, his output is blocked
	kill()

	b, _ := bob.start(t, "--peer", firstAddr(t, readyA), "--log-level", "info", "--room", "gap")
	shown := b.Find(20*time.Second, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == done.Str("transfer_id") })
	if shown.Str("path") != received {
		t.Fatalf("file_done %v, want the path %s", shown, received)
	}
	m := b.Find(20*time.Second, "dm", func(e proctest.Event) bool { return e.Str("id") == queued.Str("id") })
	if m.Str("text") != "sent into the gap" {
		t.Fatalf("dm %v", m)
	}
	b.Find(20*time.Second, "message", func(e proctest.Event) bool { return e.Str("room") == "gap" && e.Str("text") == "said into the gap" })
	// Shown again as never shown (the gap), not as new.
	for _, log := range []string{"transfer: showing events an earlier run did not show", "dm: showing events an earlier run did not show",
		"rooms: showing messages an earlier run did not show"} {
		if !strings.Contains(b.Stderr(), log) {
			t.Errorf("bob's restart did not log %q: not the gap", log)
		}
	}
}
