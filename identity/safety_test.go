package identity

import (
	"crypto/ed25519"
	"errors"
	"regexp"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func seededKey(t testing.TB, seed byte) crypto.PrivKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(s))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

var safetyShape = regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){11}$`)

func TestSafetyNumber(t *testing.T) {
	a, b, c := seededKey(t, 1).GetPublic(), seededKey(t, 2).GetPublic(), seededKey(t, 3).GetPublic()
	ab, err := SafetyNumber(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !safetyShape.MatchString(ab) {
		t.Fatalf("safety number %q is not 12 groups of 5 digits", ab)
	}
	ba, err := SafetyNumber(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if ab != ba {
		t.Fatalf("order matters: %q != %q", ab, ba)
	}
	ac, err := SafetyNumber(a, c)
	if err != nil {
		t.Fatal(err)
	}
	if ac == ab {
		t.Fatal("different pairs share a safety number")
	}
	// The half that belongs to a is the same in both numbers: each side
	// can see which half changed when one key changes.
	ha, _ := safetyHalf(a)
	if digitsOf(ab)[:30] != ha && digitsOf(ab)[30:] != ha {
		t.Fatal("a's half is not part of the number")
	}
	// Known answer: the construction must never change silently, or every
	// user's comparison would break.
	// Computed independently (Python hashlib) from the construction above.
	const want = "08842 30154 36051 56219 96406 22253 43419 34438 31248 90486 11799 02846"
	if ab != want {
		t.Fatalf("known answer changed:\n got %s\nwant %s", ab, want)
	}
}

func digitsOf(s string) string {
	return regexp.MustCompile(`[^0-9]`).ReplaceAllString(s, "")
}

func TestPeerSafetyNumber(t *testing.T) {
	a, b := seededKey(t, 1), seededKey(t, 2)
	ida, _ := peer.IDFromPrivateKey(a)
	idb, _ := peer.IDFromPrivateKey(b)
	got, err := PeerSafetyNumber(ida, idb)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := SafetyNumber(a.GetPublic(), b.GetPublic())
	if got != want {
		t.Fatalf("%q != %q", got, want)
	}
	if _, err := PeerSafetyNumber(ida, peer.ID("not a peer id")); !errors.Is(err, ErrNoPublicKey) {
		t.Fatalf("bad peer ID: err = %v, want ErrNoPublicKey", err)
	}
	if _, err := SafetyNumber(nil, a.GetPublic()); !errors.Is(err, ErrNoPublicKey) {
		t.Fatalf("nil key: err = %v, want ErrNoPublicKey", err)
	}
}

func BenchmarkSafetyNumber(b *testing.B) {
	x, y := seededKey(b, 1).GetPublic(), seededKey(b, 2).GetPublic()
	for b.Loop() {
		if _, err := SafetyNumber(x, y); err != nil {
			b.Fatal(err)
		}
	}
}
