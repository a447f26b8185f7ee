package identity

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// UnicodeVersion is the version of the Unicode data behind FoldName,
// ValidateNick and the room name rules (Go's unicode package and
// golang.org/x/text must agree on it; a test checks that they do).
const UnicodeVersion = "15.0.0"

// FoldName returns the name key of s, the one rule by which Parley decides
// that two names (room names, nicks) are the same:
//
//	FoldName(s) = NFC(toCasefold(NFKC(s)))
//
// NFKC and NFC are the normalization forms of UAX #15; toCasefold is
// Unicode Default Case Folding (Unicode §3.13, the full mappings: statuses
// C and F of CaseFolding.txt, not the Turkic T entries), all as of
// UnicodeVersion. So "ΣΑΣ", "σας" and "σασ" have one key ("σασ"),
// "Straße" has the key of "strasse", "İstanbul" that of "i̇stanbul" (i with
// a combining dot above), and full-width "ＬＯＢＢＹ" that of "lobby". An ASCII
// string's key is its ASCII lower case. FoldName is idempotent. Callers
// check that s is valid UTF-8 first.
func FoldName(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	return norm.NFC.String(caseFold(norm.NFKC.String(s)))
}

// caseFold applies Unicode Default Case Folding to s.
//
// golang.org/x/text/cases.Fold (v0.40, Unicode 15.0.0) agrees with
// CaseFolding.txt on every code point except the Cherokee capital letters
// U+13A0..U+13F5, which it maps to the small letters although
// CaseFolding.txt has no entry for them (Cherokee folds the other way:
// small U+AB70..U+ABBF and U+13F8..U+13FD fold to capitals). They are left
// as they are here; the conformance vectors list every mapping.
func caseFold(s string) string {
	// cases.Fold is stateless and safe for concurrent use; it is cheap to
	// make, so none is kept in a package variable.
	fold := cases.Fold()
	var b strings.Builder
	b.Grow(len(s))
	start := 0 // start of the run not yet written
	for i, r := range s {
		if r < cherokeeCapitalFirst || r > cherokeeCapitalLast {
			continue
		}
		b.WriteString(fold.String(s[start:i]))
		b.WriteRune(r)
		start = i + utf8.RuneLen(r)
	}
	b.WriteString(fold.String(s[start:]))
	return b.String()
}

const (
	cherokeeCapitalFirst = 0x13A0
	cherokeeCapitalLast  = 0x13F5
)

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
