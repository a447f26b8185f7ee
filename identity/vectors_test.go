package identity

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// The conformance vectors of docs/vectors are the protocol document's
// test data: another implementation checks itself against them, and these
// tests check this one. PARLEY_UPDATE_VECTORS=1 rewrites them from the
// code (then read the diff: a changed vector is a protocol change).

const vectorsDir = "../docs/vectors"

// updateVectors reports whether the tests should rewrite the vector files.
func updateVectors() bool { return os.Getenv("PARLEY_UPDATE_VECTORS") == "1" }

// caseFoldVectors is docs/vectors/casefold.json.
type caseFoldVectors struct {
	Comment        string `json:"comment"`
	UnicodeVersion string `json:"unicode_version"`
	// Mappings maps a code point (hex) to its full case folding (hex code
	// points separated by spaces), for every code point whose folding is
	// not itself.
	Mappings map[string]string `json:"mappings"`
}

func hexRunes(s string) string {
	var parts []string
	for _, r := range s {
		parts = append(parts, fmt.Sprintf("%04X", r))
	}
	return strings.Join(parts, " ")
}

func TestVectorsCaseFold(t *testing.T) {
	got := caseFoldVectors{
		Comment: "Unicode Default Case Folding (full: CaseFolding.txt statuses C and F) of every code point " +
			"whose folding is not itself; all others fold to themselves. Keys and values are hex code points.",
		UnicodeVersion: UnicodeVersion,
		Mappings:       map[string]string{},
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if f := caseFold(string(r)); f != string(r) {
			got.Mappings[fmt.Sprintf("%04X", r)] = hexRunes(f)
		}
	}
	checkVectors(t, "casefold.json", got)
}

// nameVectors is docs/vectors/names.json (the identity part; rooms adds
// the room names in its own test, to rooms.json).
type nameVectors struct {
	Comment        string       `json:"comment"`
	UnicodeVersion string       `json:"unicode_version"`
	NameKeys       []nameVector `json:"name_keys"`
	Nicks          []nickVector `json:"nicks"`
}

type nameVector struct {
	Input string `json:"input"`
	Key   string `json:"key"`
}

type nickVector struct {
	Nick  string `json:"nick"`
	Valid bool   `json:"valid"`
	Key   string `json:"key"`
}

func TestVectorsNames(t *testing.T) {
	got := nameVectors{
		Comment: "name_keys: FoldName = NFC(toCasefold(NFKC(input))). nicks: validity (ValidateNick) and " +
			"NickKey (FoldName, runs of U+0020 made one, trimmed).",
		UnicodeVersion: UnicodeVersion,
	}
	for _, in := range []string{
		"lobby", "Lobby", "LOBBY", "go-dev_2.0", "ΣΑΣ", "σας", "Σας", "σασ", "İstanbul", "ISTANBUL",
		"Straße", "STRAẞE", "ＬＯＢＢＹ", "Ｌｏｂｂｙ２", "ﬁle", "x²", "𝐀lice", "cafe\u0301", "Café",
		"Ꭰ", "ꭰ", "ǅ", "\u212a", "\u2126", "µ", "ｶﾀｶﾅ", "Москва", "日本語", "ΐ", "ﬃ", "ŉ", "İ",
	} {
		got.NameKeys = append(got.NameKeys, nameVector{in, FoldName(in)})
	}
	for _, nick := range []string{
		"alice", "ALICE", "ａｌｉｃｅ", "Sam  Smith", "Straße", "ΣΑΣ", "İlker", "日本語", "x\u0301", "🙂 bob",
		"", " alice", "alice ", "ali\u200bce", "ali\u202ece", "a\tb", "a\u00a0b", "\ue000", "\u0378",
		strings.Repeat("a", MaxNickLen), strings.Repeat("a", MaxNickLen+1),
	} {
		v := nickVector{Nick: nick, Valid: ValidateNick(nick) == nil}
		if v.Valid {
			v.Key = NickKey(nick)
		}
		got.Nicks = append(got.Nicks, v)
	}
	checkVectors(t, "names.json", got)
}

// checkVectors compares got with the vector file name, or writes it.
func checkVectors[T any](t *testing.T, name string, got T) {
	t.Helper()
	path := filepath.Join(vectorsDir, name)
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if updateVectors() {
		if err := os.WriteFile(path, b, 0o644); err != nil { // #nosec G306 -- documentation
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path) // #nosec G304 -- a fixed test path
	if err != nil {
		t.Fatalf("read %s (PARLEY_UPDATE_VECTORS=1 writes it): %v", path, err)
	}
	var wantV T
	if err := json.Unmarshal(want, &wantV); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	w, _ := json.MarshalIndent(wantV, "", "  ")
	if string(w)+"\n" != string(b) {
		t.Fatalf("%s does not match the code: the protocol changed, or the code did. "+
			"Compare with PARLEY_UPDATE_VECTORS=1 and git diff.", path)
	}
}
