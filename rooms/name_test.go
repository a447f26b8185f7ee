package rooms

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"lobby", "lobby", true},
		{"Lobby", "lobby", true},
		{"go-dev_2.0", "go-dev_2.0", true},
		{"Café", "café", true},
		{"cafe\u0301", "café", true}, // decomposed é composes to NFC
		{"日本語", "日本語", true},
		{"x", "x", true},
		{strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen), true},
		{"", "", false},
		{strings.Repeat("a", MaxNameLen+1), "", false},
		{"two words", "", false},
		{"-dash", "", false},
		{".hidden", "", false},
		{"a/b", "", false},
		{"a:b", "", false},
		{"#lobby", "", false},
		{"evil\x1b[31m", "", false},
		{"abc\u202edef", "", false}, // bidi override
		{"ab\u200bc", "", false},    // zero width space
		{"ab\u3164c", "", false},    // Hangul filler (a letter that shows nothing)
		{"ab\ufe0fc", "", false},    // variation selector
		{"a\tb", "", false},
		{"bad\xffutf8", "", false},
		{"parley-invite:abc", "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeName(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("NormalizeName(%q) = %q, %v; want ErrInvalidName", tt.in, got, err)
		}
	}
}

func TestLooksLikeInvite(t *testing.T) {
	if !LooksLikeInvite(" parley-invite:xyz ") || LooksLikeInvite("lobby") {
		t.Fatal("LooksLikeInvite misclassifies")
	}
}
