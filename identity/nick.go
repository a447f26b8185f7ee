package identity

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// MaxNickLen is the maximum nickname length in characters (runes).
const MaxNickLen = 32

// ValidateNick checks a nickname: 1 to MaxNickLen printable characters,
// valid UTF-8, no control, format (bidi overrides, zero-width) or
// non-space whitespace characters, and no leading or trailing space.
func ValidateNick(nick string) error {
	if nick == "" {
		return fmt.Errorf("%w: empty; choose 1-%d printable characters", ErrInvalidNick, MaxNickLen)
	}
	if !utf8.ValidString(nick) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidNick, nick)
	}
	if n := utf8.RuneCountInString(nick); n > MaxNickLen {
		return fmt.Errorf("%w: %q has %d characters, at most %d allowed", ErrInvalidNick, nick, n, MaxNickLen)
	}
	for _, r := range nick {
		// unicode.IsPrint admits letters, marks, numbers, punctuation,
		// symbols and the ASCII space; it rejects Cc (controls), Cf
		// (bidi overrides, zero-width joiners), Zl, Zp and other spaces.
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: %q contains the non-printable character %U", ErrInvalidNick, nick, r)
		}
	}
	if strings.TrimSpace(nick) != nick {
		return fmt.Errorf("%w: %q starts or ends with a space", ErrInvalidNick, nick)
	}
	return nil
}

// NickKey returns the comparison key of a nick: two nicks with the same
// key are the same nick everywhere Parley compares nicks (trust pins and
// resolving, nick_shared in rooms, the peer list, the terminal UI). It is
// the RFC 8266 Nickname comparison: case folded, width and compatibility
// characters mapped (NFKC), so "ａｌｉｃｅ" and "ALICE" are "alice", and
// inner spaces collapsed.
func NickKey(nick string) string {
	if k, err := precis.Nickname.CompareKey(nick); err == nil && k != "" {
		return k
	}
	// The PRECIS profile refuses a few characters ValidateNick admits
	// (for example unassigned code points); compare those as they are,
	// lower-cased.
	return strings.ToLower(nick)
}

// SameNick reports whether a and b are the same nick under NickKey.
func SameNick(a, b string) bool {
	return a == b || NickKey(a) == NickKey(b)
}
