package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the command line args in-process and returns its exit code,
// stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestTopLevelHelp: parley --help and -h list the commands as parley help
// does (not chat's flags), and parley help COMMAND lists its flags.
func TestTopLevelHelp(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"-help"}} {
		code, out, errOut := runCLI(t, args...)
		if code != exitOK || errOut != "" {
			t.Fatalf("%q: exit %d, stderr %q", args, code, errOut)
		}
		for _, want := range []string{"usage: parley [command] [flags]\n", "\n  send ", "\n  serve ", "DATA_DIR/downloads", "--downloads"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q lacks %q:\n%s", args, want, out)
			}
		}
	}
	code, out, _ := runCLI(t, "help", "send")
	if code != exitOK || !strings.HasPrefix(out, "usage: parley send [flags] --to PEER PATH\n") {
		t.Errorf("help send: exit %d:\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, "help", "nonsense"); code != exitUsage || !strings.Contains(errOut, `unknown command "nonsense"`) {
		t.Errorf("help nonsense: exit %d, %q", code, errOut)
	}
}

// TestFlagErrorsNameTheFlagAsHelpDoes: an unknown flag or a missing value
// is said with the -- that -h shows, on one line, exit 2.
func TestFlagErrorsNameTheFlagAsHelpDoes(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--frobnicate"}, "parley: unknown flag --frobnicate; run 'parley chat -h' for the flags\n"},
		{[]string{"-frobnicate"}, "parley: unknown flag --frobnicate; run 'parley chat -h' for the flags\n"},
		{[]string{"send", "--frob", "x"}, "parley: unknown flag --frob; run 'parley send -h' for the flags\n"},
		{[]string{"--nick"}, "parley: --nick needs a value; run 'parley chat -h' for the flags\n"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != exitUsage || errOut != tc.want {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestSendArgumentOrder: parley send takes its PATH before, between or
// after the flags (croc's order: parley send FILE --to X); after "--" a
// path may start with "-"; a second path is refused.
func TestSendArgumentOrder(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		args     []string
		to, path string
	}{
		{[]string{"--to", "bob", "f.txt"}, "bob", "f.txt"},
		{[]string{"f.txt", "--to", "bob"}, "bob", "f.txt"},
		{[]string{"--no-mdns", "f.txt", "--to", "bob", "--json"}, "bob", "f.txt"},
		{[]string{"--to", "bob", "--", "-odd"}, "bob", "-odd"},
	} {
		c, err := parseSend(tc.args, nil)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if c.to != tc.to || c.path != tc.path {
			t.Errorf("%q: to %q path %q, want %q %q", tc.args, c.to, c.path, tc.to, tc.path)
		}
	}
	for _, args := range [][]string{{"a", "--to", "bob", "b"}, {"--to", "bob"}, {"a"}} {
		if _, err := parseSend(args, nil); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// TestSendChecksTheFileFirst: a missing file or a directory is reported
// before anything starts (no data dir is even made).
func TestSendChecksTheFileFirst(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.bin"), "no such file"},
		{dir, "is a directory"},
	} {
		code, _, errOut := runCLI(t, "send", "--data-dir", dataDir, "--no-mdns", "--to", "bob", tc.path)
		if code == exitOK || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("send %s: exit %d, stderr %q, want %q", tc.path, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("data dir made before the file was checked: %v", err)
	}
}

// TestDataDirIsAFile: a data dir (or a directory above it) that is a file
// is named, with what to do.
func TestDataDirIsAFile(t *testing.T) {
	clearEnv(t)
	file := filepath.Join(t.TempDir(), "notadir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dataDir := range []string{file, filepath.Join(file, "sub")} {
		code, _, errOut := runCLI(t, "id", "--data-dir", dataDir)
		want := file + " is a file, not a directory: move it away or choose another data dir with --data-dir\n"
		if code != exitFailure || !strings.HasSuffix(errOut, want) {
			t.Errorf("--data-dir %s: exit %d, stderr %q, want it to end in %q", dataDir, code, errOut, want)
		}
	}
}

// TestIDAddress: parley id prints the dialable address for a fixed
// --listen (unspecified IPs as every interface's), and says why there is
// none for the default random ports.
func TestIDAddress(t *testing.T) {
	clearEnv(t)
	dataDir := t.TempDir()
	code, out, errOut := runCLI(t, "id", "--data-dir", dataDir)
	if code != exitOK || !strings.Contains(out, "\naddress:     none fixed: chat listens on random ports") {
		t.Fatalf("id: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	var plain struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
	}
	code, out, _ = runCLI(t, "id", "--data-dir", dataDir, "--json")
	if err := json.Unmarshal([]byte(out), &plain); code != exitOK || err != nil || plain.Addrs != nil {
		t.Fatalf("id --json: exit %d, %v: %s", code, err, out)
	}
	want := "/ip4/127.0.0.1/tcp/4001/p2p/" + plain.PeerID
	code, out, _ = runCLI(t, "id", "--data-dir", dataDir, "--listen", "/ip4/127.0.0.1/tcp/4001", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	if code != exitOK || !strings.Contains(out, "\naddress:     "+want+"\n") || strings.Count(out, "address:") != 1 {
		t.Errorf("id --listen: exit %d:\n%s", code, out)
	}
	code, out, _ = runCLI(t, "id", "--data-dir", dataDir, "--listen", "/ip4/0.0.0.0/tcp/4001")
	if code != exitOK || !strings.Contains(out, "\naddress:     "+want+"\n") {
		t.Errorf("id --listen 0.0.0.0 lacks the loopback address %s:\n%s", want, out)
	}
}
