package identity

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNickLen is the maximum nickname length in characters (runes).
const MaxNickLen = 32

// ValidateNick checks a nickname: valid UTF-8 of 1 to MaxNickLen code
// points, each of General_Category L (letters), M (marks), N (numbers),
// P (punctuation) or S (symbols) as of UnicodeVersion, or the space
// U+0020, which is neither first nor last. So control, format (bidi
// overrides, zero-width), separator other than U+0020, private-use,
// surrogate and unassigned code points are refused.
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
// FoldName (NFKC, Unicode Default Case Folding, NFC: the rule of room
// names) with runs of spaces (U+0020) made one and spaces at either end
// removed, as RFC 8266 does for nicknames. So "ａｌｉｃｅ", "ALICE" and
// "alice" are one nick, and so are "sam  smith" and "Sam Smith".
func NickKey(nick string) string {
	k := FoldName(nick)
	if !strings.Contains(k, "  ") && strings.TrimSpace(k) == k {
		return k
	}
	return strings.Join(strings.FieldsFunc(k, func(r rune) bool { return r == ' ' }), " ")
}

// SameNick reports whether a and b are the same nick under NickKey.
func SameNick(a, b string) bool {
	return a == b || NickKey(a) == NickKey(b)
}
