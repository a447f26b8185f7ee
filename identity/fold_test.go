package identity

import (
	"testing"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

func TestFoldName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"lobby", "lobby"},
		{"Go-Dev_2.0", "go-dev_2.0"},
		{"ΣΑΣ", "σασ"},
		{"σας", "σασ"}, // final sigma folds to sigma
		{"İstanbul", "i\u0307stanbul"},
		{"ISTANBUL", "istanbul"},
		{"Straße", "strasse"},
		{"STRAẞE", "strasse"},
		{"ＬＯＢＢＹ", "lobby"},     // full width
		{"ﬁle", "file"},        // compatibility ligature
		{"𝐀lice", "alice"},     // mathematical bold
		{"cafe\u0301", "café"}, // composes to NFC
		{"Ꭰ", "Ꭰ"},             // Cherokee capital: no folding
		{"ꭰ", "Ꭰ"},             // Cherokee small folds to the capital
		{"ǅ", "dž"},            // title case digraph
		{"Ω", "ω"},             // OHM SIGN (K in NFKC... Ω in NFC)
		{"\u212a", "k"},        // KELVIN SIGN
		{"", ""},
	}
	for _, tt := range tests {
		if got := FoldName(tt.in); got != tt.want {
			t.Errorf("FoldName(%q) = %q (%+q), want %q (%+q)", tt.in, got, got, tt.want, tt.want)
		}
	}
}

// The Unicode data of Go's unicode package, x/text's normalization and
// x/text's case tables must be the version the protocol names.
func TestUnicodeVersion(t *testing.T) {
	for name, v := range map[string]string{"unicode": unicode.Version, "norm": norm.Version, "cases": cases.UnicodeVersion} {
		if v != UnicodeVersion {
			t.Errorf("%s has Unicode %s, the protocol names %s", name, v, UnicodeVersion)
		}
	}
}

// FoldName(FoldName(s)) == FoldName(s) for every code point alone and
// after a letter it may combine with, so a canonical name stays canonical.
func TestFoldNameIdempotent(t *testing.T) {
	// Every third code point keeps the test at a few seconds under -race
	// (the vectors test checks every code point's case folding).
	const step = 3
	for r := rune(0); r <= unicode.MaxRune; r += step {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		for _, s := range []string{string(r), "a" + string(r)} {
			k := FoldName(s)
			if k2 := FoldName(k); k2 != k {
				t.Fatalf("FoldName(%+q) = %+q, but FoldName of that = %+q", s, k, k2)
			}
		}
	}
}
