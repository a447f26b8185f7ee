package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
)

// runKeygen is `parley keygen --swarm-key FILE`: it writes a new random
// swarm key (mode 0600) and never overwrites a file.
func runKeygen(args []string, stdout io.Writer) error {
	var path string
	flags := newFlagSet("keygen")
	flags.StringVar(&path, "swarm-key", "", "write a new private-network swarm key to `FILE` (mode 0600; an existing file is never replaced)")
	if err := flags.parse(args, stdout); err != nil {
		return err
	}
	if path == "" {
		return usageError{errors.New("nothing to generate: use parley keygen --swarm-key FILE")}
	}
	if err := overlay.WriteSwarmKey(path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; it was left as it is (remove it first to make a new key)", path)
		}
		return err
	}
	_, err := fmt.Fprintf(stdout, "wrote a new swarm key to %s\n"+
		"Give it to every member of the private swarm over a secure channel, and start each node, serve nodes included, with --swarm-key %s.\n",
		path, path)
	return err
}

// keySettings are the flags of `parley key encrypt|decrypt|passphrase`.
type keySettings struct {
	common
	newPassFile string
}

// runKey is `parley key encrypt|decrypt|passphrase`: it converts the
// identity key file in the data dir in place.
func runKey(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || len(args[0]) == 0 || args[0][0] == '-' {
		return usageError{errors.New("use parley key encrypt, parley key decrypt or parley key passphrase")}
	}
	action, args := args[0], args[1:]
	var s keySettings
	flags := newFlagSet("key " + action)
	s.register(flags)
	if action == "passphrase" {
		flags.StringVar(&s.newPassFile, "new-key-passphrase-file", "", "read the new passphrase from `FILE` (default: ask twice on the terminal)")
	}
	if err := flags.parse(args, stdout); err != nil {
		return err
	}
	level, err := parseLevel(s.logLevel)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, level)
	if err := s.resolveDataDir(); err != nil {
		return err
	}
	pass := s.passphrases(stdin, stderr, logger)
	switch action {
	case "encrypt":
		return keyEncrypt(s.dataDir, pass, stdout)
	case "passphrase":
		return keyChangePassphrase(s.dataDir, pass, s.newPassFile, stdout)
	case "decrypt":
		return keyDecrypt(s.dataDir, pass, stdout)
	default:
		return usageError{fmt.Errorf("unknown key action %q: use encrypt, decrypt or passphrase", action)}
	}
}

// errAlreadyEncrypted stops `key encrypt` on an encrypted key.
var errAlreadyEncrypted = errors.New("the key is already encrypted; change its passphrase with parley key passphrase")

func keyEncrypt(dir string, pass passphrases, stdout io.Writer) error {
	newPass, err := pass.choose(pass.file)
	if err != nil {
		return err
	}
	defer clear(newPass)
	refuse := func() ([]byte, error) { return nil, errAlreadyEncrypted }
	id, created, err := identity.EncryptKeyFile(dir, refuse, newPass, identity.KDFParams{})
	if err != nil {
		return err
	}
	if created {
		_, err = fmt.Fprintf(stdout, "made a new identity, peer id %s, encrypted in %s\n", id.ID, id.KeyPath)
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s is now encrypted (peer id %s unchanged).\n"+
		"Copies of the unencrypted key in backups, snapshots or on the disk itself are not erased; see docs/SECURITY.md.\n",
		id.KeyPath, id.ID)
	return err
}

func keyChangePassphrase(dir string, pass passphrases, newFile string, stdout io.Writer) error {
	path := filepath.Join(dir, identity.KeyFileName)
	// Is there an encrypted key at all? (Asks for nothing.)
	_, err := identity.Load(path)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s; encrypt it with parley key encrypt", identity.ErrKeyNotEncrypted, path)
	case !errors.Is(err, identity.ErrKeyEncrypted):
		return err
	}
	// The old passphrase first, asked once: no point choosing a new one
	// for a key that does not open.
	old, forget := remember(pass.unlock)
	defer forget()
	if _, err := identity.LoadWith(path, identity.KeyOptions{Unlock: old}); err != nil {
		return err
	}
	newPass, err := pass.choose(newFile)
	if err != nil {
		return err
	}
	defer clear(newPass)
	id, _, err := identity.EncryptKeyFile(dir, old, newPass, identity.KDFParams{})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "the passphrase of %s was changed (peer id %s unchanged)\n", id.KeyPath, id.ID)
	return err
}

// remember returns a PassphraseFunc that calls f once and hands out
// copies of its answer, and a function that zeroes the remembered
// passphrase.
func remember(f identity.PassphraseFunc) (identity.PassphraseFunc, func()) {
	var pass []byte
	var err error
	asked := false
	get := func() ([]byte, error) {
		if !asked {
			pass, err = f()
			asked = true
		}
		if err != nil {
			return nil, err
		}
		return bytes.Clone(pass), nil
	}
	return get, func() { clear(pass) }
}

func keyDecrypt(dir string, pass passphrases, stdout io.Writer) error {
	id, err := identity.DecryptKeyFile(dir, pass.unlock)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s is now stored unencrypted (mode 0600); anyone who can read it can act as you\n", id.KeyPath)
	return err
}
