//go:build linux

package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The passphrase prompts on a real terminal (tmux): a new passphrase is
// asked twice and two different ones change nothing; typed passphrases
// are never echoed; a wrong one is refused with one line and a non-zero
// exit; the right one unlocks the same identity.
func TestPassphrasePromptInTmux(t *testing.T) {
	tm := newTmux(t)
	dir := filepath.Join(t.TempDir(), "data")
	id, keyPath, plain := newIdentity(t, dir)

	const pass = "correct horse battery staple"
	steps := []struct {
		name    string
		args    []string
		typed   []string // one line per prompt
		prompts []string // the prompt before each typed line
		status  string
		screen  string // on the screen after the exit
	}{
		{"differ", []string{"key", "encrypt", "--data-dir", dir},
			[]string{pass, pass + "!"}, []string{"new passphrase", "the same passphrase again"},
			"1", "the two passphrases differ"},
		{"encrypt", []string{"key", "encrypt", "--data-dir", dir},
			[]string{pass, pass}, []string{"new passphrase", "the same passphrase again"},
			"0", "is now encrypted"},
		{"wrong", []string{"id", "--data-dir", dir},
			[]string{"not the passphrase"}, []string{"passphrase for the identity key"},
			"1", "wrong passphrase"},
		{"unlock", []string{"id", "--data-dir", dir},
			[]string{pass}, []string{"passphrase for the identity key"},
			"0", id},
	}
	for _, st := range steps {
		tm.startProg(st.name, nil, st.args...)
		for i, line := range st.typed {
			tm.waitScreen(st.name, 30*time.Second, "the prompt "+st.prompts[i], contains(st.prompts[i]))
			// The prompt is written just before echo is switched off:
			// type only once the terminal no longer echoes.
			tm.waitNoEcho(st.name, 10*time.Second)
			tm.typeLine(st.name, line)
		}
		if status := tm.waitExit(st.name, 60*time.Second); status != st.status {
			t.Fatalf("%s: exit status %s, want %s:\n%s", st.name, status, st.status, tm.screen(st.name))
		}
		screen := tm.screen(st.name)
		if !strings.Contains(screen, st.screen) {
			t.Fatalf("%s: no %q on the screen:\n%s", st.name, st.screen, screen)
		}
		if strings.Contains(screen, "horse") || strings.Contains(screen, "not the passphrase") {
			t.Fatalf("%s: a typed passphrase was echoed:\n%s", st.name, screen)
		}
		key, err := os.ReadFile(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		encrypted := bytes.HasPrefix(key, []byte("parley-encrypted-key\n"))
		if st.name == "differ" && !bytes.Equal(key, plain) {
			t.Fatal("two different passphrases changed the key file")
		}
		if st.name != "differ" && !encrypted {
			t.Fatalf("%s: the key file is not encrypted", st.name)
		}
	}
}

// waitNoEcho waits until the terminal of name's pane has echo switched off
// (the termios of its tty, which the pane's program shares).
func (s *tmuxSession) waitNoEcho(name string, d time.Duration) {
	s.t.Helper()
	tty := strings.TrimSpace(s.must("display-message", "-p", "-t", s.target(name), "#{pane_tty}"))
	f, err := os.OpenFile(tty, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		s.t.Fatalf("open the pane's terminal: %v", err)
	}
	defer func() { _ = f.Close() }()
	deadline := time.Now().Add(d)
	for {
		tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		if err != nil {
			s.t.Fatalf("read the pane's terminal settings: %v", err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: the terminal still echoes %v after the prompt", name, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
