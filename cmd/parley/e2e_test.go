package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

var bin string

func TestMain(m *testing.M) {
	os.Exit(proctest.Main(m, &bin))
}

// livenessWindow is the documented bound for reporting a silent peer.
const livenessWindow = 15 * time.Second

func startPeer(t *testing.T, name string, args ...string) (*proctest.Peer, proctest.Event) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	p := proctest.Start(t, bin, name, append([]string{"--data-dir", dir, "--nick", name}, append(proctest.Loopback(), args...)...)...)
	ready := p.Wait(20*time.Second, "ready", nil)
	return p, ready
}

func firstAddr(t *testing.T, ready proctest.Event) string {
	t.Helper()
	addrs, _ := ready["addrs"].([]any)
	if len(addrs) == 0 {
		t.Fatalf("ready event without addrs: %v", ready)
	}
	a, _ := addrs[0].(string)
	if !strings.Contains(a, "/p2p/") {
		t.Fatalf("address %q does not end in /p2p/ID", a)
	}
	return a
}

func TestTwoPeersConnectAndNoticeDeath(t *testing.T) {
	a, readyA := startPeer(t, "alice")
	b, readyB := startPeer(t, "bob", "--peer", firstAddr(t, readyA))
	idA, idB := readyA.Str("peer_id"), readyB.Str("peer_id")

	// Find: the connection may be reported before ready.
	b.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idA })
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idB })

	a.Signal(syscall.SIGKILL)
	start := time.Now()
	b.Wait(livenessWindow+5*time.Second, "peer_disconnected", func(e proctest.Event) bool { return e.Str("peer_id") == idA })
	if took := time.Since(start); took > livenessWindow {
		t.Fatalf("peer_disconnected after %v, window is %v", took, livenessWindow)
	}
}

func TestCommandsAndCleanExit(t *testing.T) {
	cases := []struct {
		name string
		stop func(p *proctest.Peer)
	}{
		{"eof", func(p *proctest.Peer) { p.CloseStdin() }},
		{"quit", func(p *proctest.Peer) { p.Send("/quit") }},
		{"sigint", func(p *proctest.Peer) { p.Signal(syscall.SIGINT) }},
		{"sigterm", func(p *proctest.Peer) { p.Signal(syscall.SIGTERM) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, ready := startPeer(t, "carol")
			p.Send("/nosuchcommand")
			e := p.Wait(10*time.Second, "error", nil)
			if e.Str("command") != "/nosuchcommand" || !strings.Contains(e.Str("error"), "unknown command") {
				t.Fatalf("error event %v", e)
			}
			p.Send("/connect not-a-multiaddr")
			p.Wait(10*time.Second, "error", func(e proctest.Event) bool { return strings.HasPrefix(e.Str("command"), "/connect") })
			p.Send("/id") // still serving
			info := p.Wait(10*time.Second, "info", nil)
			data, _ := info["data"].(map[string]any)
			if data["peer_id"] != ready.Str("peer_id") {
				t.Fatalf("/id answered %v", info)
			}
			start := time.Now()
			tc.stop(p)
			if err := p.Exited(5 * time.Second); err != nil {
				t.Fatalf("exit: %v; stderr:\n%s", err, p.Stderr())
			}
			t.Logf("stopped in %v", time.Since(start))
		})
	}
}

// TestOverLongLineIsDiscarded: a stdin line over the 64 KiB limit gives an
// error event naming the limit, and the node goes on reading commands.
func TestOverLongLineIsDiscarded(t *testing.T) {
	p, ready := startPeer(t, "erin")
	p.Send(strings.Repeat("x", 70000))
	e := p.Wait(10*time.Second, "error", nil)
	if msg := e.Str("error"); !strings.Contains(msg, "too long") || !strings.Contains(msg, "70000") || !strings.Contains(msg, "65536") {
		t.Fatalf("error event %v does not say the 70000-byte line is too long and the limit (65536)", e)
	}
	if c := e.Str("command"); len(c) > 300 || !strings.HasPrefix(c, "xxx") {
		t.Fatalf("error event echoes %d bytes of the line: %q", len(c), c)
	}
	p.Send("/id")
	info := p.Wait(10*time.Second, "info", nil)
	data, _ := info["data"].(map[string]any)
	if data["peer_id"] != ready.Str("peer_id") {
		t.Fatalf("/id after the long line answered %v", info)
	}
	p.CloseStdin()
	if err := p.Exited(5 * time.Second); err != nil {
		t.Fatalf("exit: %v; stderr:\n%s", err, p.Stderr())
	}
}

func TestNickPersists(t *testing.T) {
	dir := t.TempDir()
	p := proctest.Start(t, bin, "dave", append([]string{"--data-dir", dir}, proctest.Loopback()...)...)
	first := p.Wait(20*time.Second, "ready", nil)
	if !strings.HasPrefix(first.Str("nick"), "peer-") {
		t.Fatalf("default nick %q", first.Str("nick"))
	}
	p.Send("/nick Dave")
	p.Wait(10*time.Second, "info", nil)
	p.CloseStdin()
	if err := p.Exited(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	p = proctest.Start(t, bin, "dave", append([]string{"--data-dir", dir}, proctest.Loopback()...)...)
	second := p.Wait(20*time.Second, "ready", nil)
	if second.Str("nick") != "Dave" || second.Str("peer_id") != first.Str("peer_id") {
		t.Fatalf("after restart: nick %q peer %q, want Dave and %q", second.Str("nick"), second.Str("peer_id"), first.Str("peer_id"))
	}
}

// privateDir is a new data dir with mode 0700: one that group or others
// can enter gets a warning on stderr.
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runOnce runs parley to completion and returns its exit code and output.
func runOnce(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runEnv(t, nil, args...)
}

func TestStartupErrorsAreOneLine(t *testing.T) {
	busy, ready := startPeer(t, "busy")
	_ = busy
	taken := strings.Split(firstAddr(t, ready), "/p2p/")[0]

	keyDir := func(mode os.FileMode, content []byte) string {
		dir := privateDir(t)
		if code, _, stderr := runOnce(t, "id", "--data-dir", dir); code != 0 {
			t.Fatalf("id: %d %s", code, stderr)
		}
		key := filepath.Join(dir, "identity.key")
		if content != nil {
			if err := os.WriteFile(key, content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		code     int
		mentions string
	}{
		{"unknown flag", []string{"--bogus"}, 2, "-bogus"},
		{"bad listen", []string{"--listen", "/ip4/999.1.1.1/tcp/1"}, 2, "999.1.1.1"},
		{"peer without id", []string{"--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0", "--peer", "/ip4/127.0.0.1/tcp/1"}, 2, "/p2p/"},
		{"bad nick", []string{"--nick", "evil\u202ename"}, 2, "nick"},
		{"bad log level", []string{"--log-level", "loud"}, 2, "loud"},
		{"unknown command", []string{"frobnicate"}, 2, "frobnicate"},
		{"port in use", []string{"--no-mdns", "--listen", taken}, 1, taken},
		{"key mode 0644", []string{"--data-dir", keyDir(0o644, nil), "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}, 1, "chmod 600"},
		{"corrupt key", []string{"--data-dir", keyDir(0o600, []byte("garbage")), "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}, 1, "corrupt"},
		{"data dir is a file", []string{"--data-dir", notADir}, 1, notADir},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "--data-dir") {
				args = append([]string{"--data-dir", privateDir(t)}, args...)
				if tc.name == "unknown command" {
					args = []string{"frobnicate"}
				}
			}
			code, _, stderr := runOnce(t, args...)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "parley: ") {
				t.Fatalf("stderr is not one 'parley: ...' line: %q", stderr)
			}
			if !strings.Contains(lines[0], tc.mentions) {
				t.Fatalf("stderr %q does not mention %q", lines[0], tc.mentions)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Fatalf("stack trace on stderr: %s", stderr)
			}
		})
	}
}

func TestVersionAndID(t *testing.T) {
	code, out, _ := runOnce(t, "version")
	if code != 0 || !strings.HasPrefix(out, "parley ") {
		t.Fatalf("version: %d %q", code, out)
	}
	dir := t.TempDir()
	code, out, _ = runOnce(t, "id", "--data-dir", dir, "--json")
	if code != 0 || !strings.Contains(out, `"peer_id":"12D3KooW`) || !strings.Contains(out, dir) {
		t.Fatalf("id: %d %q", code, out)
	}
	_, again, _ := runOnce(t, "id", "--data-dir", dir, "--json")
	if again != out {
		t.Fatalf("identity changed between runs:\n%s%s", out, again)
	}
}
