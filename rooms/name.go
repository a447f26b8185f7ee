package rooms

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/identity"
)

// Room name limits.
const (
	// MaxNameLen is the maximum room name length in characters (runes).
	MaxNameLen = 32
	// maxNameBytes bounds the UTF-8 size of a name (it fits the one-byte
	// length of an invite).
	maxNameBytes = 128
)

// NormalizeName returns the canonical form of a room name, or
// ErrInvalidName. The canonical form is identity.FoldName of the name:
// NFKC, Unicode Default Case Folding, NFC (Unicode 15.0.0), so "Lobby",
// "LOBBY" and full-width "ＬＯＢＢＹ" are the room "lobby", and "ΣΑΣ" and "σας"
// the room "σασ". ASCII names keep the canonical form (ASCII lower case)
// and so the topic they had before this rule.
//
// A canonical name has 1 to MaxNameLen characters (and at most 128 bytes);
// every character is a letter, a decimal digit, a combining mark, or one of
// '-', '_' and '.'; the first character is a letter or digit. Spaces,
// control and format characters (bidi overrides, zero-width characters),
// default-ignorable fillers and variation selectors are refused, so a room
// name is never invisible and never acts on a terminal. Names are not
// checked for confusable characters across scripts.
func NormalizeName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrInvalidName)
	}
	if len(name) > 4*maxNameBytes {
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidName, MaxNameLen)
	}
	n := identity.FoldName(name)
	if err := checkName(n); err != nil {
		return "", err
	}
	return n, nil
}

// checkName applies the rules of NormalizeName to an already canonical
// name, without normalizing.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty; use 1-%d letters, digits, '-', '_' or '.'", ErrInvalidName, MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidName)
	}
	if c := utf8.RuneCountInString(name); c > MaxNameLen || len(name) > maxNameBytes {
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidName, c, MaxNameLen)
	}
	for i, r := range name {
		if !nameRune(r, i == 0) {
			return fmt.Errorf("%w: character %U not allowed at byte %d; use letters, digits, '-', '_' or '.'", ErrInvalidName, r, i)
		}
	}
	return nil
}

func nameRune(r rune, first bool) bool {
	if unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r) {
		return false
	}
	if unicode.IsLetter(r) || unicode.IsDigit(r) {
		return true
	}
	if first {
		return false
	}
	return r == '-' || r == '_' || r == '.' || unicode.In(r, unicode.Mn, unicode.Mc)
}

// isCanonicalName reports whether name is valid and already canonical.
func isCanonicalName(name string) bool {
	n, err := NormalizeName(name)
	return err == nil && n == name
}
