package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"golang.org/x/term"

	"github.com/parley-chat/parley/identity"
)

// errNoTerminal is returned when a passphrase is needed, no passphrase
// file was given and stdin is not a terminal to ask on.
var errNoTerminal = errors.New("no terminal to ask for the passphrase on; give it with --key-passphrase-file or PARLEY_KEY_PASSPHRASE_FILE")

// passphrases supplies key passphrases: read from a file when one is named
// (--key-passphrase-file, PARLEY_KEY_PASSPHRASE_FILE), else typed on the
// terminal without echo. Passphrases are never read from a stdin that is
// not a terminal: there it carries commands.
type passphrases struct {
	file   string
	stdin  io.Reader
	stderr io.Writer
	log    *slog.Logger
}

// maxPassphraseFile bounds a passphrase file: the longest passphrase and a
// line ending.
const maxPassphraseFile = identity.MaxKeyPassphraseBytes + 2

// unlock returns the passphrase of an existing encrypted key.
func (p passphrases) unlock() ([]byte, error) {
	if p.file != "" {
		return p.readFile(p.file)
	}
	return p.prompt("passphrase for the identity key: ")
}

// newKeyFromFile returns the passphrase file's content as the passphrase
// for a new key, or nil when no file was named (a new key is then stored
// unencrypted, as without a passphrase).
func (p passphrases) newKeyFromFile() identity.PassphraseFunc {
	if p.file == "" {
		return nil
	}
	return func() ([]byte, error) { return p.readFile(p.file) }
}

// choose returns a new passphrase from file, or typed twice on the
// terminal.
func (p passphrases) choose(file string) ([]byte, error) {
	if file != "" {
		return p.readFile(file)
	}
	first, err := p.prompt(fmt.Sprintf("new passphrase (at least %d characters): ", identity.MinKeyPassphraseLen))
	if err != nil {
		return nil, err
	}
	if err := identity.CheckNewPassphrase(first); err != nil {
		clear(first)
		return nil, err
	}
	second, err := p.prompt("the same passphrase again: ")
	if err != nil {
		clear(first)
		return nil, err
	}
	defer clear(second)
	if !bytes.Equal(first, second) {
		clear(first)
		return nil, errors.New("the two passphrases differ; nothing was changed")
	}
	return first, nil
}

// readFile reads a passphrase file: its content without one final line
// ending.
func (p passphrases) readFile(path string) ([]byte, error) {
	// #nosec G304 -- path is the passphrase file the user named.
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open passphrase file: %w", err)
	}
	defer func() { _ = f.Close() }()
	if st, err := f.Stat(); err == nil && runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 && p.log != nil {
		p.log.Warn("the passphrase file can be read by other users", "file", path, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile+1))
	if err != nil {
		return nil, fmt.Errorf("read passphrase file %s: %w", path, err)
	}
	if len(raw) > maxPassphraseFile {
		clear(raw)
		return nil, fmt.Errorf("passphrase file %s is longer than %d bytes", path, identity.MaxKeyPassphraseBytes)
	}
	pass, ok := bytes.CutSuffix(raw, []byte("\n"))
	if ok {
		pass = bytes.TrimSuffix(pass, []byte("\r"))
	}
	return pass, nil
}

// prompt asks on stderr and reads a line from the terminal on stdin
// without echo.
func (p passphrases) prompt(question string) ([]byte, error) {
	f, ok := p.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) { // #nosec G115 -- a file descriptor fits in an int
		return nil, errNoTerminal
	}
	if _, err := io.WriteString(p.stderr, question); err != nil {
		return nil, fmt.Errorf("ask for the passphrase: %w", err)
	}
	pass, err := term.ReadPassword(int(f.Fd())) // #nosec G115 -- a file descriptor fits in an int
	_, _ = io.WriteString(p.stderr, "\n")
	if err != nil {
		return nil, fmt.Errorf("read the passphrase from the terminal: %w", err)
	}
	return pass, nil
}
