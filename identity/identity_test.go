package identity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestLoadOrCreateSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, created, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	if !created {
		t.Fatal("first start did not report a new key")
	}
	second, created, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if created {
		t.Fatal("second start made a new key")
	}
	if first.ID != second.ID {
		t.Fatalf("peer ID changed across restart: %s != %s", first.ID, second.ID)
	}
	if runtime.GOOS == "windows" {
		return
	}
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, KeyFileName), 0o600)
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %04o, want %04o", path, got, want)
	}
}

func TestKeyFileErrors(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix permissions")
	}
	valid := func(t *testing.T, dir string) {
		if _, _, err := LoadOrCreate(dir); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, keyPath string)
		want    error
		mention string
	}{
		{"group readable", func(t *testing.T, p string) { chmod(t, p, 0o640) }, ErrKeyPermissions, "chmod 600"},
		{"world readable", func(t *testing.T, p string) { chmod(t, p, 0o644) }, ErrKeyPermissions, "chmod 600"},
		{"truncated", func(t *testing.T, p string) { truncate(t, p, 20) }, ErrKeyCorrupt, "cannot be decoded"},
		{"empty", func(t *testing.T, p string) { truncate(t, p, 0) }, ErrKeyCorrupt, "cannot be decoded"},
		{"garbage", func(t *testing.T, p string) { write(t, p, []byte("not a key at all, just text\n")) }, ErrKeyCorrupt, "cannot be decoded"},
		{"huge", func(t *testing.T, p string) { write(t, p, make([]byte, maxKeyFileSize+1)) }, ErrKeyCorrupt, "expected an ed25519 key"},
		{"directory", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}, ErrKeyCorrupt, "not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			valid(t, dir)
			keyPath := filepath.Join(dir, KeyFileName)
			tc.prepare(t, keyPath)
			before, _ := os.ReadFile(keyPath)
			_, _, err := LoadOrCreate(dir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), keyPath) {
				t.Fatalf("error %q should name %s and say %q", err, keyPath, tc.mention)
			}
			after, _ := os.ReadFile(keyPath)
			if string(before) != string(after) {
				t.Fatal("a bad key file was modified")
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), KeyFileName))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, p string, n int64) {
	t.Helper()
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFingerprint(t *testing.T) {
	a, _, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fa := a.Fingerprint()
	if len(fa) != FingerprintLen+3 || strings.Count(fa, "-") != 3 {
		t.Fatalf("fingerprint %q has the wrong shape", fa)
	}
	if fa == b.Fingerprint() {
		t.Fatal("two keys share a fingerprint")
	}
	if fa != Fingerprint(a.ID) || ShortFingerprint(a.ID) != fa[:4] {
		t.Fatal("fingerprint is not stable")
	}
}

func TestValidateNick(t *testing.T) {
	cases := []struct {
		nick string
		ok   bool
	}{
		{"alice", true},
		{"Zoë 🦊", true},
		{"a", true},
		{strings.Repeat("x", 32), true},
		{strings.Repeat("é", 32), true},
		{"", false},
		{strings.Repeat("x", 33), false},
		{"bad\x1b[31m", false},
		{"tab\there", false},
		{"new\nline", false},
		{"rlo\u202egnp.exe", false},
		{"lri\u2066x", false},
		{"zero\u200bwidth", false},
		{" padded", false},
		{"padded ", false},
		{"\xff\xfe", false},
		{"del\x7f", false},
	}
	for _, tc := range cases {
		err := ValidateNick(tc.nick)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateNick(%q) = %v, want ok=%v", tc.nick, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidNick) {
			t.Errorf("ValidateNick(%q) error %v is not ErrInvalidNick", tc.nick, err)
		}
	}
}

func FuzzValidateNick(f *testing.F) {
	for _, s := range []string{"alice", "\u202e", "a\x00b", strings.Repeat("x", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateNick(s) != nil {
			return
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
				t.Fatalf("accepted nick %q with control %U", s, r)
			}
		}
	})
}
