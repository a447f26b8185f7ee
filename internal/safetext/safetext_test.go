package safetext

import (
	"strings"
	"testing"
	"unicode"
)

func TestLine(t *testing.T) {
	cases := []struct{ in, want string }{
		{"hello", "hello"},
		{"Zoë 🦊", "Zoë 🦊"},
		{"\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\x07`},
		{"a\rb", `a\x0db`},
		{"line\nbreak\ttab", `line\x0abreak\x09tab`},
		{"evil\u202egpj.exe", `evil\u202egpj.exe`},
		{"c1\u009bcsi", `c1\x9bcsi`},
		{"del\x7f", `del\x7f`},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"ls\u2028sep", `ls\u2028sep`},
	}
	for _, tc := range cases {
		if got := Line(tc.in); got != tc.want {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBlockKeepsLayout(t *testing.T) {
	if got := Block("a\nb\tc\x1b"); got != "a\nb\tc\\x1b" {
		t.Fatalf("Block = %q", got)
	}
}

func FuzzLine(f *testing.F) {
	for _, s := range []string{"hi", "\x1b[31m", "\u202e", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Line(s)
		for _, r := range out {
			if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
				t.Fatalf("Line(%q) = %q keeps %U", s, out, r)
			}
		}
		if !IsClean(out) {
			t.Fatalf("Line(%q) = %q is not clean", s, out)
		}
		if strings.ContainsRune(out, '\x1b') {
			t.Fatal("escape survived")
		}
	})
}
