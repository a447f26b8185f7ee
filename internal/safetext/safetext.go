// Package safetext makes text from peers safe to put on a terminal.
//
// Nicks, room names, messages and file names arrive from the network and are
// shown verbatim, except that nothing in them may act on the terminal: C0
// and C1 control characters (ESC, CSI, BEL, backspace, carriage return...),
// DEL, bidi overrides and isolates and other invisible format characters are
// replaced by a visible escape such as \x1b or \u202e, and invalid UTF-8 by
// U+FFFD. Newlines and tabs are kept only where the caller allows them.
package safetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s made inert for display on one line: every control or
// format character, including newline and tab, is escaped.
func Line(s string) string { return clean(s, false) }

// Block returns s made inert for display as a multi-line block: like Line,
// but newlines and tabs are kept as they are.
func Block(s string) string { return clean(s, true) }

// IsClean reports whether Line(s) == s: s contains nothing that Line escapes.
func IsClean(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if needsEscape(r, false) {
			return false
		}
	}
	return true
}

func clean(s string, keepLayout bool) string {
	if IsClean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(unicode.ReplacementChar)
			continue
		}
		if !needsEscape(r, keepLayout) {
			b.WriteRune(r)
			continue
		}
		if r <= 0xff {
			fmt.Fprintf(&b, `\x%02x`, r)
		} else {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func needsEscape(r rune, keepLayout bool) bool {
	if keepLayout && (r == '\n' || r == '\t') {
		return false
	}
	if r == '\\' {
		return false
	}
	// Cc: C0, DEL, C1. Cf: bidi embeddings, overrides and isolates, zero
	// width characters, the soft hyphen and friends. Zl/Zp: line and
	// paragraph separators that some terminals treat as newlines.
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}

// Cut returns the longest prefix of s of at most n bytes that ends on a
// rune boundary (it never splits a UTF-8 sequence). It does not make s
// inert.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:max(n, 0)]
}
