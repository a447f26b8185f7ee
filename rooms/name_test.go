package rooms

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/parley-chat/parley/rooms/pb"
)

func TestNormalizeName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"lobby", "lobby", true},
		{"Lobby", "lobby", true},
		{"go-dev_2.0", "go-dev_2.0", true},
		{"Café", "café", true},
		{"cafe\u0301", "café", true}, // decomposed é composes to NFC
		{"日本語", "日本語", true},
		{"x", "x", true},
		{strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen), true},
		{"", "", false},
		{strings.Repeat("a", MaxNameLen+1), "", false},
		{"two words", "", false},
		{"-dash", "", false},
		{".hidden", "", false},
		{"a/b", "", false},
		{"a:b", "", false},
		{"#lobby", "", false},
		{"evil\x1b[31m", "", false},
		{"abc\u202edef", "", false}, // bidi override
		{"ab\u200bc", "", false},    // zero width space
		{"ab\u3164c", "", false},    // Hangul filler (a letter that shows nothing)
		{"ab\ufe0fc", "", false},    // variation selector
		{"a\tb", "", false},
		{"bad\xffutf8", "", false},
		{"parley-invite:abc", "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeName(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("NormalizeName(%q) = %q, %v; want ErrInvalidName", tt.in, got, err)
		}
	}
}

func TestLooksLikeInvite(t *testing.T) {
	if !LooksLikeInvite(" parley-invite:xyz ") || LooksLikeInvite("lobby") {
		t.Fatal("LooksLikeInvite misclassifies")
	}
}

// Non-ASCII names: one rule (identity.FoldName: NFKC, Unicode Default Case
// Folding, NFC), the same on every stack that implements it.
func TestNormalizeNameNonASCII(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ΣΑΣ", "σασ"},
		{"σας", "σασ"},
		{"Σας", "σασ"},
		{"İstanbul", "i\u0307stanbul"},
		{"istanbul", "istanbul"},
		{"Straße", "strasse"},
		{"ＬＯＢＢＹ", "lobby"},
		{"Ｌｏｂｂｙ２", "lobby2"},
		{"ﬁle", "file"},
		{"x²", "x2"}, // superscript two is a digit after NFKC
		{"Ꭰꭰ", "ᎠᎠ"},
		{"Москва", "москва"},
		{"日本語", "日本語"},
		{"ｶﾀｶﾅ", "カタカナ"}, // half-width katakana
	}
	for _, tt := range tests {
		got, err := NormalizeName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeName(%q) = %q (%+q), %v; want %q (%+q)", tt.in, got, got, err, tt.want, tt.want)
		}
		if !isCanonicalName(got) {
			t.Errorf("NormalizeName(%q) = %q is not canonical", tt.in, got)
		}
	}
}

// oldNormalize is the room name rule before identity.FoldName:
// NFC, Go's strings.ToLower, NFC.
func oldNormalize(name string) string {
	return norm.NFC.String(strings.ToLower(norm.NFC.String(name)))
}

// An ASCII name has the canonical form, and so the topic, it had under
// the old rule: every name of one or two printable ASCII characters, and
// random longer ones.
func TestASCIINamesKeepTheirTopics(t *testing.T) {
	check := func(name string) {
		t.Helper()
		got, err := NormalizeName(name)
		oldOK := checkName(oldNormalize(name)) == nil
		if (err == nil) != oldOK || (err == nil && got != oldNormalize(name)) {
			t.Fatalf("NormalizeName(%q) = %q, %v; the old rule gave %q (valid %v)", name, got, err, oldNormalize(name), oldOK)
		}
	}
	for a := byte(0x20); a < 0x7f; a++ {
		check(string(a))
		for b := byte(0x20); b < 0x7f; b++ {
			check(string([]byte{a, b}))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
	for range 5000 {
		b := make([]byte, 1+rng.IntN(MaxNameLen))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
	if got := PublicTopicPrefix + mustNormalize(t, "Lobby"); got != "parley/room/1/public/lobby" {
		t.Fatalf("topic of Lobby = %q", got)
	}
}

// The names whose canonical form, and so topic, the new rule changed: a
// node rejoins a stored room under its new canonical name (see
// TestRejoinMovesRoomToNewCanonicalName); invites carrying the old form of
// such a name are refused as not canonical.
func TestNamesWhoseTopicChanged(t *testing.T) {
	for _, in := range []string{"straße", "σας", "ｌｏｂｂｙ", "ﬁle", "ꭰ", "µ"} {
		if checkName(oldNormalize(in)) != nil {
			t.Fatalf("%q was not a valid name under the old rule", in)
		}
		if got := mustNormalize(t, in); got == oldNormalize(in) {
			t.Errorf("%q: the canonical form %q did not change", in, got)
		}
		if isCanonicalName(oldNormalize(in)) {
			t.Errorf("the old canonical form of %q is still canonical", in)
		}
	}
}

func mustNormalize(t testing.TB, name string) string {
	t.Helper()
	n, err := NormalizeName(name)
	if err != nil {
		t.Fatalf("NormalizeName(%q): %v", name, err)
	}
	return n
}

// A room stored under a name the old rule made canonical is rejoined
// under its new canonical name, and the stored record moves with it.
func TestRejoinMovesRoomToNewCanonicalName(t *testing.T) {
	n := newNode(t, "alice", nil)
	if err := n.svc.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"straße", "lobby"} {
		if err := putJoined(n.db, &pb.JoinedRoom{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	n.start()
	var names []string
	for _, r := range n.svc.Rooms() {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"lobby", "strasse"}) {
		t.Fatalf("rooms after restart = %q, want lobby and strasse", names)
	}
	recs, err := loadJoined(n.db)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, r := range recs {
		stored = append(stored, r.Name)
	}
	slices.Sort(stored)
	if !slices.Equal(stored, []string{"lobby", "strasse"}) {
		t.Fatalf("stored rooms = %q, want lobby and strasse", stored)
	}
}
