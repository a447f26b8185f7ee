package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestExplainDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	denied := func(op, path string) error {
		return fmt.Errorf("step: %w", &fs.PathError{Op: op, Path: path, Err: syscall.EACCES})
	}
	cases := []struct {
		name    string
		err     error
		explain bool
		check   string // the directory the message says to check
	}{
		{"nil", nil, false, ""},
		{"not a permission error", fmt.Errorf("x: %w", &fs.PathError{Op: "open", Path: dir, Err: syscall.ENOENT}), false, ""},
		{"no path", fmt.Errorf("x: %w", fs.ErrPermission), false, ""},
		{"config", denied("open", filepath.Join(dir, "config.toml")), true, dir},
		{"temp key", denied("open", filepath.Join(dir, ".identity.key.tmp-1")), true, dir},
		{"the dir", denied("open", dir), true, dir},
		{"link", fmt.Errorf("place: %w", &os.LinkError{Op: "link", Old: "/tmp/x", New: filepath.Join(dir, "identity.key"), Err: syscall.EPERM}), true, dir},
		{"above", denied("mkdir", filepath.Dir(dir)), true, filepath.Dir(dir)},
		{"elsewhere", denied("open", "/somewhere/else/swarm.key"), false, ""},
		{"sibling with the same prefix", denied("open", dir+"-other/file"), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := explainDataDir(dir, tc.err)
			var de *dataDirError
			if errors.As(got, &de) != tc.explain {
				t.Fatalf("explainDataDir(%v) = %v; explained: %v, want %v", tc.err, got, !tc.explain, tc.explain)
			}
			if !tc.explain {
				if got != tc.err {
					t.Fatalf("error changed to %v", got)
				}
				return
			}
			msg := got.Error()
			if !errors.Is(got, fs.ErrPermission) || !strings.HasPrefix(msg, tc.err.Error()) ||
				!strings.Contains(msg, "check the permissions of "+tc.check+" (") || !strings.Contains(msg, "--data-dir") ||
				strings.Contains(msg, "\n") {
				t.Fatalf("message %q", msg)
			}
			if again := explainDataDir(dir, got); again != got {
				t.Fatalf("explained twice: %v", again)
			}
		})
	}
}

func TestWarnDataDirMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits on Windows")
	}
	cases := []struct {
		mode os.FileMode
		warn bool
	}{
		{0o700, false},
		{0o500, false},
		{0o750, true},
		{0o755, true},
		{0o701, true},
		{0o777, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
			var buf bytes.Buffer
			warnDataDirMode(slog.New(slog.NewTextHandler(&buf, nil)), dir)
			out := buf.String()
			if got := out != ""; got != tc.warn {
				t.Fatalf("mode %04o: warned %v (%q), want %v", tc.mode, got, out, tc.warn)
			}
			if tc.warn {
				for _, want := range []string{"level=WARN", "dir=" + dir, fmt.Sprintf("mode=%04o", tc.mode), "chmod 700 " + dir} {
					if !strings.Contains(out, want) {
						t.Fatalf("warning %q does not say %q", out, want)
					}
				}
			}
			st, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tc.mode {
				t.Fatalf("mode changed from %04o to %04o", tc.mode, st.Mode().Perm())
			}
		})
	}
	var buf bytes.Buffer
	warnDataDirMode(slog.New(slog.NewTextHandler(&buf, nil)), filepath.Join(t.TempDir(), "missing"))
	if buf.Len() != 0 {
		t.Fatalf("warned about a missing dir: %q", buf.String())
	}
}
