// Package safename turns a file name chosen by a remote peer into a name
// that is safe to create inside a downloads directory on Linux, macOS and
// Windows.
//
// A name from the network is hostile input. Sanitize keeps only its last
// path element (so "../../etc/passwd" becomes "passwd"), refuses names that
// leave nothing usable ("", ".", ".."), and rewrites everything a file
// system or a file manager could misread:
//
//   - invalid UTF-8, NUL and other control characters, Unicode format
//     characters (bidi overrides such as U+202E, zero-width joiners) and
//     line or paragraph separators become '_';
//   - characters Windows forbids in names (< > : " | ? *) become '_';
//   - leading and trailing spaces are trimmed, trailing dots are trimmed
//     (Windows drops them silently), and a leading dot becomes '_' so that
//     nothing lands hidden;
//   - Windows reserved device names (CON, PRN, AUX, NUL, COM0-9, LPT0-9 with
//     superscript digits, CONIN$, CONOUT$), with or without an extension and
//     in any case, get a leading '_';
//   - names longer than MaxLen bytes are shortened, keeping a short
//     extension and whole UTF-8 sequences.
//
// Numbered derives "name (1).ext", "name (2).ext"... for callers that must
// never overwrite an existing file.
package safename

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/safetext"
)

// MaxLen is the longest name, in bytes, that Sanitize returns. It leaves
// room under the usual 255-byte limit for a " (NNNN)" suffix from Numbered
// and a ".part" suffix.
const MaxLen = 200

// maxExtLen is the longest extension (with its dot) kept when a name is
// shortened.
const maxExtLen = 24

// ErrInvalid is returned when nothing usable remains of a name.
var ErrInvalid = errors.New("unusable file name")

// Sanitize returns a safe base name for name, or an error wrapping
// ErrInvalid. Sanitize(Sanitize(x)) == Sanitize(x).
func Sanitize(name string) (string, error) {
	name = strings.ToValidUTF8(name, "_")
	name = lastElement(name)
	if name == "" || name == "." || name == ".." {
		return "", fmt.Errorf("%w: %q", ErrInvalid, name)
	}
	name = strings.Map(replaceRune, name)
	name = strings.TrimLeftFunc(name, unicode.IsSpace)
	name = strings.TrimRightFunc(name, isSpaceOrDot)
	if name == "" {
		return "", fmt.Errorf("%w: nothing left after cleaning", ErrInvalid)
	}
	if name[0] == '.' {
		name = "_" + name[1:]
	}
	if isReserved(name) {
		name = "_" + name
	}
	name = shorten(name, MaxLen)
	return name, nil
}

// Numbered returns name with " (n)" inserted before its extension:
// Numbered("a.txt", 2) == "a (2).txt". n <= 0 returns name unchanged. For a
// name returned by Sanitize, the result is at most MaxLen+12 bytes and is
// itself safe.
func Numbered(name string, n int) string {
	if n <= 0 {
		return name
	}
	stem, ext := splitExt(name)
	return fmt.Sprintf("%s (%d)%s", stem, n, ext)
}

// lastElement returns the last non-empty element of name split at '/' and
// '\', the separators of every supported platform.
func lastElement(name string) string {
	name = strings.TrimRight(name, `/\`)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return name
}

func replaceRune(r rune) rune {
	switch {
	case r == utf8.RuneError:
		return '_'
	case r < 0x20 || r == 0x7f:
		return '_'
	case strings.ContainsRune(`<>:"|?*/\`, r):
		return '_'
	case unicode.IsControl(r), unicode.Is(unicode.Cf, r),
		unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
		return '_'
	case r == 0xfeff: // BOM, also Cf; listed for clarity
		return '_'
	}
	return r
}

func isSpaceOrDot(r rune) bool { return r == '.' || unicode.IsSpace(r) }

// reserved holds the Windows device names, upper case.
var reserved = func() map[string]bool {
	m := map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true,
		"CONIN$": true, "CONOUT$": true}
	for _, d := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³"} {
		m["COM"+d] = true
		m["LPT"+d] = true
	}
	return m
}()

// isReserved reports whether name is a Windows device name: the part before
// the first dot, with trailing spaces removed, matches case-insensitively.
func isReserved(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.TrimRight(stem, " ")
	if len(stem) > 7 {
		return false
	}
	return reserved[strings.ToUpper(stem)]
}

// splitExt splits name into stem and extension (with its dot). A ".tar.X"
// double extension stays together, and a name without a stem has no
// extension.
func splitExt(name string) (stem, ext string) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return name, ""
	}
	if j := strings.LastIndexByte(name[:i], '.'); j > 0 && strings.EqualFold(name[j:i], ".tar") {
		i = j
	}
	return name[:i], name[i:]
}

// shorten cuts name to at most max bytes, keeping an extension of at most
// maxExtLen bytes and never splitting a UTF-8 sequence.
func shorten(name string, max int) string {
	if len(name) <= max {
		return name
	}
	stem, ext := splitExt(name)
	if len(ext) > maxExtLen {
		stem, ext = name, ""
	}
	stem = safetext.Cut(stem, max-len(ext))
	stem = strings.TrimRightFunc(stem, isSpaceOrDot)
	if stem == "" {
		stem = "_"
	}
	return stem + ext
}
