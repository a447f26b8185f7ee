package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
