package safename

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	long := strings.Repeat("é", 150) + ".txt" // 300 bytes of stem
	tests := []struct {
		in, want string
	}{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`..\..\Windows\system32\drivers\etc\hosts`, "hosts"},
		{"/etc/shadow", "shadow"},
		{`C:\Users\x\evil.exe`, "evil.exe"},
		{"dir/", "dir"},
		{"a\x00b.txt", "a_b.txt"},
		{"bell\a\x1b[31mred", "bell__[31mred"},
		{"new\nline.txt", "new_line.txt"},
		{"exe\u202egpj.txt", "exe_gpj.txt"},
		{"zero\u200bwidth", "zero_width"},
		{"a<b>c:d\"e|f?g*h", "a_b_c_d_e_f_g_h"},
		{"trailing dots...", "trailing dots"},
		{"trailing space  ", "trailing space"},
		{"  leading", "leading"},
		{".bashrc", "_bashrc"},
		{"CON", "_CON"},
		{"con.txt", "_con.txt"},
		{"Lpt1.tar.gz", "_Lpt1.tar.gz"},
		{"COM¹", "_COM¹"},
		{"CONOUT$", "_CONOUT$"},
		{"CON .txt", "_CON .txt"},
		{"CONSOLE.txt", "CONSOLE.txt"},
		{"COM10", "COM10"},
		{"bad\xff\xfeutf8", "bad_utf8"},
		{"日本語.txt", "日本語.txt"},
		{long, strings.Repeat("é", 98) + ".txt"},
		{strings.Repeat("a", 300), strings.Repeat("a", MaxLen)},
		{"x." + strings.Repeat("e", 300), "x." + strings.Repeat("e", MaxLen-2)},
	}
	for _, tt := range tests {
		got, err := Sanitize(tt.in)
		if err != nil {
			t.Errorf("Sanitize(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
		checkSafe(t, tt.in, got)
	}
}

func TestSanitizeRefuses(t *testing.T) {
	for _, in := range []string{"", ".", "..", "/", `\`, "a/..", "...", "   ", "foo/../.."} {
		if got, err := Sanitize(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Sanitize(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

func TestNumbered(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a.txt", 0, "a.txt"},
		{"a.txt", 1, "a (1).txt"},
		{"archive.tar.gz", 2, "archive (2).tar.gz"},
		{"README", 3, "README (3)"},
		{"_bashrc", 1, "_bashrc (1)"},
		{"_CON.txt", 1, "_CON (1).txt"},
	}
	for _, tt := range tests {
		if got := Numbered(tt.in, tt.n); got != tt.want {
			t.Errorf("Numbered(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// checkSafe asserts the properties every Sanitize result has.
func checkSafe(t *testing.T, in, got string) {
	t.Helper()
	if got == "" || got == "." || got == ".." {
		t.Fatalf("Sanitize(%q) = %q: unusable", in, got)
	}
	if len(got) > MaxLen+12 {
		t.Fatalf("Sanitize(%q) = %q: %d bytes", in, got, len(got))
	}
	if !utf8.ValidString(got) {
		t.Fatalf("Sanitize(%q) = %q: invalid UTF-8", in, got)
	}
	if strings.ContainsAny(got, `/\<>:"|?*`) {
		t.Fatalf("Sanitize(%q) = %q: forbidden character", in, got)
	}
	for _, r := range got {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			t.Fatalf("Sanitize(%q) = %q: control or format character %U", in, got, r)
		}
	}
	if got[0] == '.' || strings.HasSuffix(got, ".") || strings.HasSuffix(got, " ") {
		t.Fatalf("Sanitize(%q) = %q: bad leading or trailing character", in, got)
	}
	if isReserved(got) {
		t.Fatalf("Sanitize(%q) = %q: reserved device name", in, got)
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "CON", "a\x00b", "exe\u202egpj.txt", ".hidden",
		strings.Repeat("ü", 200) + ".tar.gz", "x.\u3000.", "…", `\\?\C:\x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Sanitize(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Sanitize(%q): unexpected error %v", in, err)
			}
			return
		}
		checkSafe(t, in, got)
		again, err := Sanitize(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
		checkSafe(t, got, Numbered(got, 9999))
	})
}
