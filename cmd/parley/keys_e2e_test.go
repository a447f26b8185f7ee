package main_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// runEnv runs parley to completion with extra environment variables and
// stdin that is not a terminal.
func runEnv(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader("")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String(), errb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("parley %v did not exit", args)
		return 0, "", ""
	}
}

func writeSecret(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func peerIDOf(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "peer id:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no peer id in %q", out)
	return ""
}

// newIdentity runs `parley id` on the new data dir dir, and returns the
// node's peer ID, the path of its key file and the file's contents.
func newIdentity(t *testing.T, dir string) (id, keyPath string, plain []byte) {
	t.Helper()
	code, out, stderr := runOnce(t, "id", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("id: %d %s", code, stderr)
	}
	keyPath = filepath.Join(dir, "identity.key")
	plain, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	return peerIDOf(t, out), keyPath, plain
}

func TestKeyEncryptDecrypt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	secrets := t.TempDir()
	good := writeSecret(t, secrets, "good", "a long enough passphrase\n")
	wrong := writeSecret(t, secrets, "wrong", "not the passphrase\n")
	short := writeSecret(t, secrets, "short", "short\n")

	id, keyPath, plain := newIdentity(t, dir)

	// Not a terminal and no file: a clear one-line error, nothing changed.
	code, _, stderr := runOnce(t, "key", "encrypt", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "--key-passphrase-file") {
		t.Fatalf("encrypt without passphrase: %d %q", code, stderr)
	}
	code, _, stderr = runOnce(t, "key", "encrypt", "--data-dir", dir, "--key-passphrase-file", short)
	if code != 1 || !strings.Contains(stderr, "at least 8") {
		t.Fatalf("short passphrase: %d %q", code, stderr)
	}
	if now, _ := os.ReadFile(keyPath); !bytes.Equal(now, plain) {
		t.Fatal("a refused encrypt changed the key file")
	}

	code, out, stderr := runOnce(t, "key", "encrypt", "--data-dir", dir, "--key-passphrase-file", good)
	if code != 0 || !strings.Contains(out, "now encrypted") {
		t.Fatalf("encrypt: %d %q %q", code, out, stderr)
	}
	enc, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc, plain[4:]) || !bytes.HasPrefix(enc, []byte("parley-encrypted-key\n")) {
		t.Fatal("key file not encrypted")
	}
	code, _, stderr = runOnce(t, "key", "encrypt", "--data-dir", dir, "--key-passphrase-file", good)
	if code != 1 || !strings.Contains(stderr, "already encrypted") {
		t.Fatalf("encrypt twice: %d %q", code, stderr)
	}

	// Every way to start needs the passphrase now.
	for _, args := range [][]string{
		{"id", "--data-dir", dir},
		append([]string{"--data-dir", dir}, proctest.Loopback()...),
	} {
		code, _, stderr = runOnce(t, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 1 || len(lines) != 1 || !strings.Contains(stderr, "encrypted") || !strings.Contains(stderr, "--key-passphrase-file") {
			t.Fatalf("%v without passphrase: %d %q", args, code, stderr)
		}
	}
	code, _, stderr = runOnce(t, "id", "--data-dir", dir, "--key-passphrase-file", wrong)
	if code != 1 || !strings.Contains(stderr, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %d %q", code, stderr)
	}
	code, out, stderr = runOnce(t, "id", "--data-dir", dir, "--key-passphrase-file", good)
	if code != 0 || peerIDOf(t, out) != id {
		t.Fatalf("id with passphrase: %d %q %q", code, out, stderr)
	}
	code, out, stderr = runEnv(t, []string{"PARLEY_KEY_PASSPHRASE_FILE=" + good}, "id", "--data-dir", dir)
	if code != 0 || peerIDOf(t, out) != id {
		t.Fatalf("id with PARLEY_KEY_PASSPHRASE_FILE: %d %q %q", code, out, stderr)
	}
	// A chat peer starts with the encrypted key.
	p := proctest.Start(t, bin, "enc", append([]string{"--data-dir", dir, "--key-passphrase-file", good}, proctest.Loopback()...)...)
	if got := p.Wait(60*time.Second, "ready", nil).Str("peer_id"); got != id {
		t.Fatalf("chat peer id %s, want %s", got, id)
	}
	p.CloseStdin()
	if err := p.Exited(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Change the passphrase, then decrypt.
	newPass := writeSecret(t, secrets, "new", "another long passphrase")
	code, _, stderr = runOnce(t, "key", "passphrase", "--data-dir", dir, "--key-passphrase-file", good, "--new-key-passphrase-file", newPass)
	if code != 0 {
		t.Fatalf("change passphrase: %d %q", code, stderr)
	}
	code, _, stderr = runOnce(t, "key", "decrypt", "--data-dir", dir, "--key-passphrase-file", good)
	if code != 1 || !strings.Contains(stderr, "wrong passphrase") {
		t.Fatalf("decrypt with the old passphrase: %d %q", code, stderr)
	}
	code, _, stderr = runOnce(t, "key", "decrypt", "--data-dir", dir, "--key-passphrase-file", newPass)
	if code != 0 {
		t.Fatalf("decrypt: %d %q", code, stderr)
	}
	if now, _ := os.ReadFile(keyPath); !bytes.Equal(now, plain) {
		t.Fatal("decrypted key differs from the original")
	}
	code, out, _ = runOnce(t, "id", "--data-dir", dir)
	if code != 0 || peerIDOf(t, out) != id {
		t.Fatalf("id after decrypt: %d %q", code, out)
	}
}

func TestNewKeyEncryptedFromTheStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	pass := writeSecret(t, t.TempDir(), "pass", "encrypted from the start\n")
	code, out, stderr := runOnce(t, "id", "--data-dir", dir, "--key-passphrase-file", pass)
	if code != 0 {
		t.Fatalf("id: %d %q", code, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("parley-encrypted-key\n")) {
		t.Fatal("a new key with a passphrase file was stored unencrypted")
	}
	code, again, _ := runOnce(t, "id", "--data-dir", dir, "--key-passphrase-file", pass)
	if code != 0 || peerIDOf(t, again) != peerIDOf(t, out) {
		t.Fatalf("second start: %d %q", code, again)
	}
}

func TestKeygenSwarmKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarm.key")
	code, out, stderr := runOnce(t, "keygen", "--swarm-key", path)
	if code != 0 || !strings.Contains(out, path) {
		t.Fatalf("keygen: %d %q %q", code, out, stderr)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	code, _, stderr = runOnce(t, "keygen", "--swarm-key", path)
	if code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("overwrite: %d %q", code, stderr)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("keygen replaced an existing key")
	}
	if code, _, _ := runOnce(t, "keygen"); code != 2 {
		t.Fatalf("keygen without --swarm-key: exit %d, want 2", code)
	}
}

func TestPrivateSwarm(t *testing.T) {
	keyDir := t.TempDir()
	key := filepath.Join(keyDir, "swarm.key")
	if code, _, stderr := runOnce(t, "keygen", "--swarm-key", key); code != 0 {
		t.Fatal(stderr)
	}
	other := filepath.Join(keyDir, "other.key")
	if code, _, stderr := runOnce(t, "keygen", "--swarm-key", other); code != 0 {
		t.Fatal(stderr)
	}
	a, readyA := startPeer(t, "alice", "--swarm-key", key)
	idA := readyA.Str("peer_id")
	for _, a := range readyA["addrs"].([]any) {
		if strings.Contains(a.(string), "/udp/") {
			t.Fatalf("private swarm peer listens on %s", a)
		}
	}
	b, readyB := startPeer(t, "bob", "--swarm-key", key, "--peer", firstAddr(t, readyA))
	b.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == idA })
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == readyB.Str("peer_id") })

	// Without the key, or with another one, nothing connects.
	c, _ := startPeer(t, "carol", "--peer", firstAddr(t, readyA))
	d, _ := startPeer(t, "dave", "--swarm-key", other, "--peer", firstAddr(t, readyA))
	b.Send("/msg " + idA + " inside")
	a.Wait(20*time.Second, "dm", func(e proctest.Event) bool { return e.Str("text") == "inside" })
	for _, outsider := range []*proctest.Peer{c, d} {
		for _, e := range outsider.Seen() {
			if e.Type() == "peer_connected" && e.Str("peer_id") == idA {
				t.Fatalf("%s connected to the private swarm", outsider.Name)
			}
		}
	}
	// QUIC cannot carry it: a one-line usage-time error.
	code, _, stderr := runOnce(t, "--data-dir", t.TempDir(), "--no-mdns", "--swarm-key", key, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	if code != 1 || !strings.Contains(stderr, "TCP only") {
		t.Fatalf("QUIC listen with a swarm key: %d %q", code, stderr)
	}
}

func TestAllowPeerFromConfig(t *testing.T) {
	a, readyA := startPeer(t, "alice")
	_ = a
	idA := readyA.Str("peer_id")
	dir := filepath.Join(t.TempDir(), "bob")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Bob allows only a peer that is not alice: alice cannot connect.
	stranger := "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"
	writeSecret(t, dir, "config.toml", "allow_peers = [\""+stranger+"\"]\n")
	b := proctest.Start(t, bin, "bob", append([]string{"--data-dir", dir}, proctest.Loopback()...)...)
	b.Wait(20*time.Second, "ready", nil)
	b.Send("/connect " + firstAddr(t, readyA))
	e := b.Wait(20*time.Second, "error", nil)
	if !strings.Contains(e.Str("error"), "connect") {
		t.Fatalf("connect to a peer outside the allow list: %v", e)
	}
	for _, e := range b.Seen() {
		if e.Type() == "peer_connected" && e.Str("peer_id") == idA {
			t.Fatal("connected outside the allow list")
		}
	}
	code, _, stderr := runOnce(t, "--data-dir", t.TempDir(), "--no-mdns", "--allow-peer", "not-a-peer-id")
	if code != 2 || !strings.Contains(stderr, "allow-peer") {
		t.Fatalf("bad --allow-peer: %d %q", code, stderr)
	}
}
