package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// dataDirUser is a command that works in a data dir; usedDataDir is the
// dir it used (known once it ran).
type dataDirUser interface{ usedDataDir() string }

func (s *settings) usedDataDir() string { return s.dataDir }

// dataDirError is a permission error on the data dir, a file in it (its
// config.toml, its key, its store) or a directory above it, with what to
// do about it.
type dataDirError struct {
	dir     string // the data dir
	checked string // the directory whose permissions to check
	err     error
}

func (e *dataDirError) Error() string {
	if e.checked != e.dir {
		return fmt.Sprintf("%s; check the permissions of %s (the data dir %s must be creatable, readable and writable by you) or choose another data dir with --data-dir",
			oneLine(e.err.Error()), e.checked, e.dir)
	}
	return fmt.Sprintf("%s; check the permissions of %s (it and its files must be readable and writable by you) or choose another data dir with --data-dir",
		oneLine(e.err.Error()), e.dir)
}

func (e *dataDirError) Unwrap() error { return e.err }

// explainDataDir turns a permission error on a path in, of or above the
// data dir dir into a *dataDirError. Other errors, permission errors on
// other paths (a --downloads dir elsewhere, a swarm key file) and errors
// that name no path are returned as they are.
func explainDataDir(dir string, err error) error {
	if err != nil && dir != "" && errors.Is(err, syscall.ENOTDIR) {
		if file := fileInPath(dir); file != "" {
			return fmt.Errorf("%w; %s is a file, not a directory: move it away or choose another data dir with --data-dir", err, file)
		}
	}
	if err == nil || dir == "" || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	var de *dataDirError
	if errors.As(err, &de) {
		return err
	}
	path := errPath(err)
	if path == "" {
		return err
	}
	absDir, err1 := filepath.Abs(dir)
	absPath, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return err
	}
	switch {
	case within(absDir, absPath):
		return &dataDirError{dir: dir, checked: dir, err: err}
	case within(absPath, absDir):
		return &dataDirError{dir: dir, checked: path, err: err}
	}
	return err
}

// fileInPath returns dir, or the directory above it, that exists and is
// not a directory; "" when there is none.
func fileInPath(dir string) string {
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p) // #nosec G703 -- the user's own --data-dir and its parents, to name what is in the way
		if err == nil {
			if st.IsDir() {
				return ""
			}
			return p
		}
		up := filepath.Dir(p)
		if up == p {
			return ""
		}
		p = up
	}
}

// errPath is the path an error is about: of its *fs.PathError or
// *os.LinkError, if it has one.
func errPath(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.New
	}
	return ""
}

// within reports whether path is dir or inside it (both absolute and
// clean).
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// warnDataDirMode logs a warning when the data dir dir is open to its
// group or to others: it holds the identity key and the message store.
// It changes nothing (the dir is the user's; new ones are made 0700). A
// dir that cannot be examined is left to the code that uses it to report.
func warnDataDirMode(logger *slog.Logger, dir string) {
	if runtime.GOOS == "windows" {
		return // no Unix permission bits to speak of
	}
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		logger.Warn("the data dir is accessible by other users; it holds your identity key and messages",
			"dir", dir, "mode", fmt.Sprintf("%04o", mode), "fix", "chmod 700 "+dir)
	}
}
