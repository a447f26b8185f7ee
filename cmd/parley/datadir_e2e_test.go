//go:build unix

package main_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unprivileged runs the parley binary as a user that permission bits
// apply to: this process's own user when it is not root, else nobody (the
// binary copied where nobody can run it). Files it should own are handed
// to it with own.
type unprivileged struct {
	t    *testing.T
	bin  string
	cred *syscall.Credential // nil: run as this process's user
	base string              // a directory the user can enter, for its data dirs
}

func newUnprivileged(t *testing.T) *unprivileged {
	t.Helper()
	u := &unprivileged{t: t, bin: bin}
	if os.Geteuid() != 0 {
		u.base = t.TempDir()
		u.chmodBackOnCleanup()
		return u
	}
	uid, gid := uint32(65534), uint32(65534)
	if nobody, err := user.Lookup("nobody"); err == nil {
		if n, err := strconv.ParseUint(nobody.Uid, 10, 32); err == nil {
			uid = uint32(n)
		}
		if n, err := strconv.ParseUint(nobody.Gid, 10, 32); err == nil {
			gid = uint32(n)
		}
	}
	u.cred = &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}
	// t.TempDir's parent is 0700: a directory of our own that nobody
	// can enter holds the binary and the data dirs.
	base, err := os.MkdirTemp("", "parley-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	u.base = base
	u.bin = filepath.Join(base, "parley")
	copyFile(t, bin, u.bin, 0o755)
	if code, out, stderr := u.run("version"); code != 0 || !strings.HasPrefix(out, "parley ") {
		t.Skipf("running as root, and the binary cannot be run as uid %d (exit %d: %s): permission bits do not apply to root, so there is nothing to test", uid, code, strings.TrimSpace(stderr))
	}
	return u
}

// chmodBackOnCleanup makes the data dirs removable again when the test
// ends (a 0000 dir cannot be emptied by its non-root owner). It runs
// before t.TempDir's own cleanup.
func (u *unprivileged) chmodBackOnCleanup() {
	base := u.base
	u.t.Cleanup(func() {
		_ = filepath.WalkDir(base, func(p string, d fs.DirEntry, _ error) error {
			if d != nil && d.IsDir() {
				_ = os.Chmod(p, 0o700) // before WalkDir reads it
			}
			return nil
		})
	})
}

// dir makes a data dir owned by the user.
func (u *unprivileged) dir(name string) string {
	u.t.Helper()
	d := filepath.Join(u.base, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		u.t.Fatal(err)
	}
	u.own(d)
	return d
}

// own hands path to the user.
func (u *unprivileged) own(path string) {
	u.t.Helper()
	if u.cred == nil {
		return
	}
	if err := os.Chown(path, int(u.cred.Uid), int(u.cred.Gid)); err != nil {
		u.t.Fatal(err)
	}
}

func (u *unprivileged) chmod(path string, mode os.FileMode) {
	u.t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		u.t.Fatal(err)
	}
}

// run runs parley as the user to completion.
func (u *unprivileged) run(args ...string) (code int, stdout, stderr string) {
	u.t.Helper()
	cmd := exec.Command(u.bin, args...) // #nosec G204 -- the parley binary under test
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	if u.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
		cmd.Dir = u.base
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader("")
	if err := cmd.Start(); err != nil {
		u.t.Fatalf("start parley as %v: %v", u.cred, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String(), errb.String()
		}
		if err != nil {
			u.t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		u.t.Fatalf("parley %v did not exit", args)
		return 0, "", ""
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from) // #nosec G304 -- the test's own binary
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode) // #nosec G302 G304 -- an executable in the test's dir
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirPermissionErrors: a data dir (or its config.toml, key or
// store) the user may not read or write gives one line naming the path
// and what to do, for the subcommands that use it.
func TestDataDirPermissionErrors(t *testing.T) {
	u := newUnprivileged(t)
	chat := []string{"--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}
	// withKey is a data dir with an identity made by the user.
	withKey := func(name string) string {
		d := u.dir(name)
		if code, _, stderr := u.run("id", "--data-dir", d); code != 0 {
			t.Fatalf("id in %s: exit %d: %s", d, code, stderr)
		}
		return d
	}
	pass := filepath.Join(u.base, "passphrase")
	if err := os.WriteFile(pass, []byte("a long enough passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u.own(pass)
	// DIR in args is the data dir.
	cases := []struct {
		name  string
		setup func(name string) string // returns the data dir
		args  []string
	}{
		{"dir 0000, chat", func(n string) string { d := u.dir(n); u.chmod(d, 0o000); return d }, append([]string{"--data-dir", "DIR"}, chat...)},
		{"dir 0000, id", func(n string) string { d := u.dir(n); u.chmod(d, 0o000); return d }, []string{"id", "--data-dir", "DIR"}},
		{"read-only dir, chat", func(n string) string { d := u.dir(n); u.chmod(d, 0o500); return d }, append([]string{"--data-dir", "DIR"}, chat...)},
		{"read-only dir, key encrypt", func(n string) string { d := withKey(n); u.chmod(d, 0o500); return d },
			[]string{"key", "encrypt", "--data-dir", "DIR", "--key-passphrase-file", pass}},
		{"config.toml 0000", func(n string) string {
			d := u.dir(n)
			p := filepath.Join(d, "config.toml")
			if err := os.WriteFile(p, []byte("nick = \"x\"\n"), 0o000); err != nil {
				t.Fatal(err)
			}
			u.own(p)
			return d
		}, append([]string{"--data-dir", "DIR"}, chat...)},
		{"key 0000", func(n string) string { d := withKey(n); u.chmod(filepath.Join(d, "identity.key"), 0o000); return d }, []string{"id", "--data-dir", "DIR"}},
		{"store read-only", func(n string) string {
			d := withKey(n)
			p := filepath.Join(d, "parley.db")
			if err := os.WriteFile(p, nil, 0o400); err != nil {
				t.Fatal(err)
			}
			u.own(p)
			return d
		}, append([]string{"--data-dir", "DIR"}, chat...)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.setup("data" + strconv.Itoa(i))
			args := make([]string, len(tc.args))
			for j, a := range tc.args {
				args[j] = strings.ReplaceAll(a, "DIR", d)
			}
			code, _, stderr := u.run(args...)
			if code != 1 {
				t.Fatalf("parley %q: exit %d, want 1; stderr: %s", args, code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "parley: ") {
				t.Fatalf("stderr is not one 'parley: ...' line: %q", stderr)
			}
			for _, want := range []string{"permission denied", "check the permissions of " + d + " (", "--data-dir"} {
				if !strings.Contains(lines[0], want) {
					t.Fatalf("stderr %q does not say %q", lines[0], want)
				}
			}
			t.Log(lines[0])
		})
	}
}

// TestDataDirOpenToOthersWarns: a data dir with group or other permission
// bits is used, with a warning naming it, its mode and the fix, and left
// as it is.
func TestDataDirOpenToOthersWarns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"id", "--data-dir", dir},
		{"--data-dir", dir, "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}, // chat, until EOF on stdin
	} {
		code, _, stderr := runOnce(t, args...)
		if code != 0 {
			t.Fatalf("parley %q: exit %d; stderr: %s", args, code, stderr)
		}
		for _, want := range []string{"level=WARN", "accessible by other users", "dir=" + dir, "mode=0755", "chmod 700 " + dir} {
			if !strings.Contains(stderr, want) {
				t.Fatalf("parley %q: stderr %q does not say %q", args, stderr, want)
			}
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Fatalf("the data dir's mode was changed to %04o", st.Mode().Perm())
	}
	// A private dir gets no warning.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runOnce(t, "id", "--data-dir", dir); code != 0 || stderr != "" {
		t.Fatalf("id in a 0700 dir: exit %d, stderr %q", code, stderr)
	}
}
