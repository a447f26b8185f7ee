package main_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// TestChainReachesAcrossTheRoom is issue 15's chain: Bob and Carol each
// start with --peer to Alice only. Bob learns Carol's addresses from her
// signed peer record in the lobby's presence (PROTOCOL.md §7a), so his
// first DM to her, by nick, is delivered without a manual /connect, and
// so is a file sent to her by nick.
func TestChainReachesAcrossTheRoom(t *testing.T) {
	_, readyA := startPeer(t, "alice")
	addrA := firstAddr(t, readyA)
	b, _ := startPeer(t, "bob", "--peer", addrA)
	c, readyC := startPeer(t, "carol", "--peer", addrA)
	idC := readyC.Str("peer_id")
	// Carol's presence reaches Bob through Alice.
	b.Find(30*time.Second, "presence", func(e proctest.Event) bool { return e.Str("peer_id") == idC && e["online"] == true })

	start := time.Now()
	b.Send("/msg carol hi carol")
	queued := b.Wait(10*time.Second, "dm_status", func(e proctest.Event) bool { return e.Str("to") == idC })
	b.Wait(10*time.Second, "dm_status", dmStatus(queued.Str("id"), "delivered"))
	took := time.Since(start)
	got := c.Wait(10*time.Second, "dm", nil)
	if got.Str("text") != "hi carol" {
		t.Fatalf("carol got %v", got)
	}
	if took > 3*time.Second {
		t.Errorf("the first DM to a non-neighbour took %v (issue 15: within 3 s)", took)
	}
	t.Logf("first DM bob→carol through the room's addresses: delivered in %v", took)

	// The path is reported: Bob now holds a direct (loopback: lan)
	// connection to Carol.
	b.Send("/whois carol")
	whois := b.Wait(10*time.Second, "info", func(e proctest.Event) bool {
		d, _ := e["data"].(map[string]any)
		return d != nil && d["peer_id"] == idC
	})
	if d := whois["data"].(map[string]any); d["path"] != "lan" {
		t.Errorf("/whois carol says path %v, want lan", d["path"])
	}

	path, hash := randomFile(t, t.TempDir(), "to-carol.bin", 20<<20)
	b.Send("/send carol " + path)
	offer := c.Wait(30*time.Second, "file_offer", nil)
	c.Send("/accept " + offer.Str("transfer_id"))
	done := c.Wait(120*time.Second, "file_done", nil)
	if fileHash(t, done.Str("path")) != hash {
		t.Fatalf("carol's file differs: %v", done)
	}

	// A fresh node that knows only Alice's address sends to Carol by
	// nick: it looks the nick up in the lobby and reaches her by the
	// addresses her presence carries.
	code, stderr := runSendAccepting(t, c, "--peer", addrA, "--to", "carol", path)
	if code != 0 {
		t.Fatalf("parley send --to carol exited %d: %s", code, stderr)
	}
	done = c.Wait(60*time.Second, "file_done", nil)
	if fileHash(t, done.Str("path")) != hash {
		t.Fatalf("carol's file from parley send differs: %v", done)
	}
}

// TestSendByIDThroughBootstrap: `parley send --bootstrap SERVE --to ID`
// finds the recipient through the serve node's DHT, although the sender's
// routing table is empty when it starts.
func TestSendByIDThroughBootstrap(t *testing.T) {
	serve := proctest.StartCommand(t, bin, "serve", "serve", "--data-dir", filepath.Join(t.TempDir(), "serve"), "--listen", "/ip4/127.0.0.1/tcp/0")
	addrS := firstAddr(t, serve.Wait(20*time.Second, "ready", nil))
	b, readyB := startPeer(t, "bob", "--bootstrap", addrS)
	idB := readyB.Str("peer_id")
	serve.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })
	path, hash := randomFile(t, t.TempDir(), "by-id.bin", 1<<20)
	code, stderr := runSendAccepting(t, b, "--bootstrap", addrS, "--to", idB, path)
	if code != 0 {
		t.Fatalf("parley send --bootstrap --to ID exited %d: %s", code, stderr)
	}
	done := b.Wait(30*time.Second, "file_done", nil)
	if fileHash(t, done.Str("path")) != hash {
		t.Fatalf("bob's file differs: %v", done)
	}
}

// runSendAccepting runs `parley send ARGS` from a fresh data directory
// and accepts its offer at to; it returns the exit code and stderr.
func runSendAccepting(t *testing.T, to *proctest.Peer, args ...string) (int, string) {
	t.Helper()
	base := []string{"send", "--data-dir", filepath.Join(t.TempDir(), "sender"), "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}
	cmd := exec.Command(bin, append(base, args...)...) // #nosec G204 -- the parley binary under test
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	offer := to.Wait(60*time.Second, "file_offer", nil)
	t.Logf("offer at the recipient %v after starting parley send", time.Since(start).Round(time.Millisecond))
	to.Send("/accept " + offer.Str("transfer_id"))
	select {
	case <-exited:
	case <-time.After(120 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("parley send did not exit")
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}
