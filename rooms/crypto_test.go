package rooms

import (
	"bytes"
	"encoding/hex"
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

// TestVectors pins the derivations documented in docs/PROTOCOL.md
// (checked there against an independent HKDF implementation).
func TestVectors(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	k, err := deriveKeys(key, "room")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"topic":      "parley/room/1/private/daacacb59cdd49a61a0081bf20b08209",
		"seal":       "4dd7170ff46f5005580cbadfd6c4adfde4057d5ab261b67c9fd291116546a23e",
		"rendezvous": "parley/room/1/private/rendezvous/cd142b49b643eed0e0be8e47621958a6",
		"invite":     "parley-invite:AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fBHJvb20LqO3m",
		"ad":         "367061726c65792f726f6f6d2f312f707269766174652f6461616361636235396364643439613631613030383162663230623038323039020001",
	}
	invite, err := EncodeInvite("room", key)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"topic":      k.topic,
		"seal":       hex.EncodeToString(k.seal[:]),
		"rendezvous": k.rendezvous,
		"invite":     invite,
		"ad":         hex.EncodeToString(sealAD(k.topic, peer.ID("\x00\x01"))),
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %s, want %s", name, got[name], w)
		}
	}
	if testing.Short() {
		return
	}
	pk, err := passphraseKey("room", "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(pk); h != "f1c13973c4f94f8626abfcf0fc62c20335d2c43fd8a5a24f808d45b5a1e27a0c" {
		t.Errorf("passphrase key = %s", h)
	}
}
