package identity

import (
	"fmt"
	"os"
	"path/filepath"
)

// EnsureDir creates dir (and parents) with mode 0700 when it does not exist
// and checks that it is a directory this process can write.
func EnsureDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("data dir is empty; pass --data-dir or set PARLEY_DATA_DIR")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat data dir %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	return nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory (fsync, rename, fsync of the directory), so readers see either
// the old or the new content, never a mix. The file gets mode perm.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename %s into place: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// writeNewFile is WriteFileAtomic that never replaces an existing file: the
// temporary file is hard-linked into place, which fails with fs.ErrExist
// when path exists.
func writeNewFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data, 0o600)
	if err != nil {
		return err
	}
	// The temporary name is removed whether or not the link worked; a
	// failure leaves a hidden .tmp file behind and nothing worse.
	defer func() { _ = os.Remove(tmp) }()
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("place key file %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func writeTemp(path string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	name := f.Name()
	fail := func(step string, err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(name)
		return "", fmt.Errorf("%s %s: %w", step, name, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail("chmod", err)
	}
	if _, err := f.Write(data); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("close %s: %w", name, err)
	}
	return name, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir) // #nosec G304 -- the key's own directory
	if err != nil {
		return fmt.Errorf("open dir %s for fsync: %w", dir, err)
	}
	defer func() { _ = d.Close() }() // opened read-only for Sync; nothing to lose
	if err := d.Sync(); err != nil && !isSyncUnsupported(err) {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
