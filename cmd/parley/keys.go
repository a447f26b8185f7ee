package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
)

// keygenCmd is a parsed `parley keygen` command line.
type keygenCmd struct{ path string }

func parseKeygen(args []string, stdout io.Writer) (*keygenCmd, error) {
	c := &keygenCmd{}
	flags := newFlagSet("keygen")
	flags.StringVar(&c.path, "swarm-key", "", "write a new private-network swarm key to `FILE` (mode 0600; an existing file is never replaced)")
	if err := flags.parse(args, stdout); err != nil {
		return nil, err
	}
	if c.path == "" {
		return nil, usageError{errors.New("nothing to generate: use parley keygen --swarm-key FILE")}
	}
	return c, nil
}

// run is `parley keygen --swarm-key FILE`: it writes a new random swarm
// key (mode 0600) and never overwrites a file.
func (c *keygenCmd) run(_ context.Context, _ io.Reader, stdout, _ io.Writer) error {
	path := c.path
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

// keyCmd is a parsed `parley key encrypt|decrypt|passphrase` command
// line.
type keyCmd struct {
	settings
	newPassFile string
	action      string
}

func parseKey(args []string, stdout io.Writer) (*keyCmd, error) {
	if len(args) == 0 || len(args[0]) == 0 || args[0][0] == '-' {
		return nil, usageError{errors.New("use parley key encrypt, parley key decrypt or parley key passphrase")}
	}
	c := &keyCmd{action: args[0]}
	switch c.action {
	case "encrypt", "decrypt", "passphrase":
	default:
		return nil, usageError{fmt.Errorf("unknown key action %q: use encrypt, decrypt or passphrase", c.action)}
	}
	flags := newCommandFlags("key "+c.action, cmdKey, &c.settings)
	if c.action == "passphrase" {
		flags.StringVar(&c.newPassFile, "new-key-passphrase-file", "", "read the new passphrase from `FILE` (default: ask twice on the terminal)")
	}
	if err := flags.parse(args[1:], stdout); err != nil {
		return nil, err
	}
	return c, nil
}

// run is `parley key encrypt|decrypt|passphrase`: it converts the
// identity key file in the data dir in place.
func (c *keyCmd) run(_ context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	logger := newLogger(stderr, c.logLevel)
	if err := c.resolveDataDir(cmdKey); err != nil {
		return err
	}
	warnDataDirMode(logger, c.dataDir)
	pass := c.passphrases(stdin, stderr, logger)
	switch c.action {
	case "encrypt":
		return keyEncrypt(c.dataDir, pass, stdout)
	case "passphrase":
		return keyChangePassphrase(c.dataDir, pass, c.newPassFile, stdout)
	default:
		return keyDecrypt(c.dataDir, pass, stdout)
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
