package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, in string
		wantErr  string
	}{
		{"empty", "", ""},
		{"full", "nick = \"ann\"\nlisten = [\"/ip4/0.0.0.0/tcp/4001\"]\nupnp = false\nconn_low = 10\nconn_high = 20\n", ""},
		{"unknown key", "nick = \"ann\"\ncolour = \"red\"\n", "unknown key colour"},
		{"bad type", "conn_low = \"many\"\n", "conn_low"},
		{"syntax", "nick = \n", "line 1"},
		{"bad nick", "nick = \"a\\u001b[31m\"\n", "invalid nick"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestSaveNickKeepsOtherLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	orig := "# my settings\nnick = \"old\"\nconn_low = 5\n"
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SaveNick(dir, "Zoë \"z\""); err != nil {
		t.Fatal(err)
	}
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Nick != "Zoë \"z\"" || f.ConnLow != 5 {
		t.Fatalf("after save: %+v", f)
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(raw), "# my settings\n") {
		t.Fatalf("comment lost: %q", raw)
	}
	// A fresh data dir gets a new file.
	dir2 := t.TempDir()
	if err := SaveNick(dir2, "ann"); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(dir2); err != nil || f.Nick != "ann" {
		t.Fatalf("fresh: %+v %v", f, err)
	}
	if err := SaveNick(dir2, "bad\x07"); err == nil {
		t.Fatal("invalid nick saved")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("nick = \"ann\"\nlisten = [\"/ip4/0.0.0.0/tcp/0\"]\n"))
	f.Add([]byte("[x]\ny=1"))
	f.Add([]byte("nick = 5"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = Parse("fuzz.toml", raw)
	})
}

// TestValue: every key of File reads back as the text a flag takes, and
// an unset key (absent, empty or zero) is not set.
func TestValue(t *testing.T) {
	f, err := Parse("config.toml", []byte(`nick = "ann"
listen = ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]
mdns = false
conn_low = 10
max_file_size = 1024
downloads = ""
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		want []string
		ok   bool
	}{
		{"nick", []string{"ann"}, true},
		{"listen", []string{"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"}, true},
		{"mdns", []string{"false"}, true},
		{"upnp", nil, false},
		{"conn_low", []string{"10"}, true},
		{"conn_high", []string{"0"}, false},
		{"max_file_size", []string{"1024"}, true},
		{"downloads", []string{""}, false},
		{"peers", []string{}, false},
		{"no_such_key", nil, false},
	} {
		got, ok := f.Value(tc.key)
		if ok != tc.ok || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Value(%q) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
	for _, k := range Keys() {
		if k == "" {
			t.Error("a File field without a toml key")
		}
		if _, ok := (File{}).Value(k); ok {
			t.Errorf("the empty File sets %s", k)
		}
	}
}
