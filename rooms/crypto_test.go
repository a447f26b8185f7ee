package rooms

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestDeriveKeys(t *testing.T) {
	a, err := deriveKeys(testKey(1), "room")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.topic, PrivateTopicPrefix) || len(a.topic) != len(PrivateTopicPrefix)+2*topicIDSize {
		t.Fatalf("topic %q", a.topic)
	}
	if strings.Contains(strings.TrimPrefix(a.topic, PrivateTopicPrefix), "room") {
		t.Fatalf("topic %q reveals the name", a.topic)
	}
	b, _ := deriveKeys(testKey(1), "other")
	c, _ := deriveKeys(testKey(2), "room")
	if a.topic == b.topic || a.topic == c.topic {
		t.Fatal("topic does not depend on both name and key")
	}
	if a.seal == c.seal {
		t.Fatal("seal key does not depend on the key")
	}
	if _, err := deriveKeys(testKey(1)[:16], "room"); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestSealOpen(t *testing.T) {
	k, _ := deriveKeys(testKey(1), "room")
	alice, bob := peer.ID("alice-id"), peer.ID("bob-id")
	msg := []byte("hello private room")
	n1, c1, err := seal(&k, alice, msg)
	if err != nil {
		t.Fatal(err)
	}
	n2, c2, _ := seal(&k, alice, msg)
	if bytes.Equal(n1, n2) || bytes.Equal(c1, c2) {
		t.Fatal("nonce or ciphertext repeats")
	}
	if bytes.Contains(c1, msg) {
		t.Fatal("plaintext visible in ciphertext")
	}
	got, err := open(&k, alice, n1, c1)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open = %q, %v", got, err)
	}
	other, _ := deriveKeys(testKey(1), "other") // other topic
	wrongKey, _ := deriveKeys(testKey(2), "room")
	tampered := bytes.Clone(c1)
	tampered[3] ^= 1
	cases := map[string]func() error{
		"other publisher": func() error { _, err := open(&k, bob, n1, c1); return err },
		"other topic":     func() error { _, err := open(&other, alice, n1, c1); return err },
		"other key":       func() error { _, err := open(&wrongKey, alice, n1, c1); return err },
		"tampered":        func() error { _, err := open(&k, alice, n1, tampered); return err },
		"short nonce":     func() error { _, err := open(&k, alice, n1[:12], c1); return err },
		"short ct":        func() error { _, err := open(&k, alice, n1, c1[:8]); return err },
		"nil":             func() error { _, err := open(&k, alice, nil, nil); return err },
	}
	for name, f := range cases {
		if f() == nil {
			t.Errorf("%s: opened", name)
		}
	}
}

func TestSealADUnambiguous(t *testing.T) {
	if bytes.Equal(sealAD("ab", "c"), sealAD("a", "bc")) {
		t.Fatal("AD is ambiguous")
	}
}

func TestPassphraseKey(t *testing.T) {
	if testing.Short() {
		t.Skip("Argon2id with 64 MiB")
	}
	k1, err := passphraseKey("room", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := passphraseKey("room", "correct horse battery")
	k3, _ := passphraseKey("room2", "correct horse battery")
	if !bytes.Equal(k1, k2) || bytes.Equal(k1, k3) || len(k1) != KeySize {
		t.Fatal("passphrase key not deterministic per name")
	}
	for _, p := range []string{"", "short", strings.Repeat("x", MaxPassphraseBytes+1), "elevenchars", "bad\xffutf8 long enough"} {
		if _, err := passphraseKey("room", p); !errors.Is(err, ErrWeakPassphrase) {
			t.Errorf("passphrase %q: %v", p, err)
		}
	}
}
