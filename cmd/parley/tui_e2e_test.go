package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmuxSession runs parley peers in the windows of one detached tmux
// session on a private server socket, so that the test never touches the
// user's own tmux. Cleanup kills that server and with it the peers.
type tmuxSession struct {
	t       *testing.T
	bin     string // tmux
	sock    string
	session string
	status  map[string]string // window name -> file that gets the exit status
}

func newTmux(t *testing.T) *tmuxSession {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed: skipping the terminal UI end-to-end test (.ci/run installs it)")
	}
	// A short socket path: unix socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "ptmux")
	if err != nil {
		t.Fatal(err)
	}
	s := &tmuxSession{t: t, bin: bin, sock: filepath.Join(dir, "s"),
		session: fmt.Sprintf("parley-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() {
		if t.Failed() {
			for w := range s.status {
				if out, err := s.run("capture-pane", "-p", "-t", s.session+":"+w); err == nil {
					t.Logf("%s's screen at the end:\n%s", w, out)
				}
			}
		}
		_, _ = s.run("kill-server")
		_ = os.RemoveAll(dir)
	})
	return s
}

func (s *tmuxSession) run(args ...string) (string, error) {
	cmd := exec.Command(s.bin, append([]string{"-S", s.sock, "-f", "/dev/null"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *tmuxSession) must(args ...string) string {
	s.t.Helper()
	out, err := s.run(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// start runs parley chat in a new window named name, 200x40 cells (wide
// enough that addresses are not wrapped), with its own data dir, on
// loopback without mDNS.
func (s *tmuxSession) start(name string, env []string, args ...string) {
	s.t.Helper()
	data := filepath.Join(s.t.TempDir(), "data")
	s.startProg(name, env, append([]string{"--data-dir", data, "--nick", name, "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}, args...)...)
}

// startProg runs parley with exactly args in a new window named name. A
// shell around it writes parley's exit status to a file: tmux does not
// always reap a pane's process promptly when two exit at once.
func (s *tmuxSession) startProg(name string, env []string, args ...string) {
	s.t.Helper()
	var envArgs []string
	for _, e := range append([]string{"GORACE=halt_on_error=1"}, env...) {
		envArgs = append(envArgs, "-e", e)
	}
	status := filepath.Join(s.t.TempDir(), "status")
	prog := append([]string{"sh", "-c", `"$@"; echo $? > "$0"`, status, bin}, args...)
	if s.status == nil {
		s.status = make(map[string]string)
	}
	s.status[name] = status
	if _, err := s.run("has-session", "-t", s.session); err != nil {
		s.must(append(append([]string{"new-session", "-d", "-s", s.session, "-n", name, "-x", "200", "-y", "40"}, envArgs...), prog...)...)
		// Keep the window of a program that ended, to show its screen.
		s.must("set-option", "-w", "-g", "remain-on-exit", "on")
		return
	}
	s.must(append(append([]string{"new-window", "-d", "-t", s.session, "-n", name}, envArgs...), prog...)...)
}

func (s *tmuxSession) target(name string) string { return s.session + ":" + name }

func (s *tmuxSession) screen(name string) string {
	s.t.Helper()
	return s.must("capture-pane", "-p", "-t", s.target(name))
}

// waitScreen polls name's screen until match finds something, for at
// most d, and returns what it found.
func (s *tmuxSession) waitScreen(name string, d time.Duration, what string, match func(string) string) string {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		screen := s.screen(name)
		if found := match(screen); found != "" {
			return found
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no %s on the screen within %v:\n%s", name, what, d, screen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func contains(sub string) func(string) string {
	return func(screen string) string {
		if strings.Contains(screen, sub) {
			return sub
		}
		return ""
	}
}

// typeLine types text into name's window and presses Enter.
func (s *tmuxSession) typeLine(name, text string) {
	s.t.Helper()
	s.must("send-keys", "-t", s.target(name), "-l", text)
	s.must("send-keys", "-t", s.target(name), "Enter")
}

func (s *tmuxSession) keys(name string, keys ...string) {
	s.t.Helper()
	s.must(append([]string{"send-keys", "-t", s.target(name)}, keys...)...)
}

// waitExit waits for name's parley to end and returns its exit status.
func (s *tmuxSession) waitExit(name string, d time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if b, err := os.ReadFile(s.status[name]); err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s still running %v after it was told to leave:\n%s", name, d, s.screen(name))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var loopbackAddr = regexp.MustCompile(`/ip4/127\.0\.0\.1/tcp/[0-9]+/p2p/[1-9A-HJ-NP-Za-km-z]+`)

// Two real peers in the full-screen UI: a line typed in one shows up on
// the other's screen; a private message comes back delivered; both leave
// cleanly.
func TestTUITwoPeersInTmux(t *testing.T) {
	tm := newTmux(t)
	tm.start("alice", nil)
	tm.waitScreen("alice", 30*time.Second, "joined #lobby", contains("joined #lobby"))
	// The status conversation (Alt+1) lists the listening addresses.
	tm.keys("alice", "M-1")
	addr := tm.waitScreen("alice", 10*time.Second, "listening address", loopbackAddr.FindString)

	tm.start("bob", []string{"NO_COLOR=1"}, "--peer", addr)
	tm.keys("alice", "M-2") // back to #lobby
	tm.waitScreen("alice", 30*time.Second, "bob's presence", regexp.MustCompile(`bob \([A-Z2-7]{4}\) is here`).FindString)
	tm.waitScreen("bob", 30*time.Second, "alice's presence", regexp.MustCompile(`alice \([A-Z2-7]{4}\) is here`).FindString)

	tm.typeLine("alice", "hello bob, this is alice in a terminal")
	tm.waitScreen("bob", 20*time.Second, "alice's line", contains("<alice> hello bob, this is alice in a terminal"))

	tm.typeLine("bob", "/msg alice a private word")
	tm.waitScreen("bob", 20*time.Second, "the delivered mark", contains("<bob> a private word ✓✓"))
	tm.waitScreen("alice", 10*time.Second, "bob's conversation with one unread", regexp.MustCompile(`@bob +1 `).FindString)

	tm.keys("bob", "C-c")
	tm.typeLine("alice", "/quit")
	for _, p := range []string{"alice", "bob"} {
		// Close is bounded at 5 s, like line mode; the race detector and
		// a shared machine get a little more.
		if status := tm.waitExit(p, 15*time.Second); status != "0" {
			t.Fatalf("%s exited with status %s", p, status)
		}
	}
}
