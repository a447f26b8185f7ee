package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// KeyFileName is the name of the private key file inside the data directory.
const KeyFileName = "identity.key"

// maxKeyFileSize bounds what Load reads; an Ed25519 key in libp2p's protobuf
// encoding is 68 bytes.
const maxKeyFileSize = 4096

// Identity is a node's private key and the peer ID derived from it.
type Identity struct {
	// PrivKey is the node's Ed25519 key. It never leaves the process
	// except to its own key file.
	PrivKey crypto.PrivKey
	// ID is the libp2p peer ID of PrivKey's public key.
	ID peer.ID
	// KeyPath is the file the key was loaded from or written to.
	KeyPath string
	// Encrypted reports whether the key file is encrypted with a
	// passphrase.
	Encrypted bool
}

// Fingerprint returns the short human-comparable fingerprint of the identity.
func (id *Identity) Fingerprint() string { return Fingerprint(id.ID) }

// KeyOptions tell Load and LoadOrCreate how to handle encrypted key files.
// The zero value reads unencrypted key files only and creates unencrypted
// ones.
type KeyOptions struct {
	// Unlock supplies the passphrase of an encrypted key file. It is
	// called only when the file is encrypted; nil makes an encrypted file
	// an ErrKeyEncrypted error.
	Unlock PassphraseFunc
	// NewKeyPassphrase, when not nil, supplies the passphrase a newly
	// created key is encrypted with: the key is then never written
	// unencrypted.
	NewKeyPassphrase PassphraseFunc
	// KDF are the Argon2id parameters of newly encrypted files (zero:
	// DefaultKDF).
	KDF KDFParams
}

func (o *KeyOptions) kdf() KDFParams {
	if o.KDF == (KDFParams{}) {
		return DefaultKDF()
	}
	return o.KDF
}

// LoadOrCreate loads the key from dir, generating and storing a new Ed25519
// key when there is no key file yet. created reports whether a key was made.
// The directory is created with mode 0700 when missing. It reads
// unencrypted key files only; LoadOrCreateWith also reads encrypted ones.
func LoadOrCreate(dir string) (id *Identity, created bool, err error) {
	return LoadOrCreateWith(dir, KeyOptions{})
}

// LoadOrCreateWith is LoadOrCreate with the handling of encrypted key files
// that opts asks for.
func LoadOrCreateWith(dir string, opts KeyOptions) (id *Identity, created bool, err error) {
	if err := EnsureDir(dir); err != nil {
		return nil, false, err
	}
	path := filepath.Join(dir, KeyFileName)
	id, err = LoadWith(path, opts)
	if err == nil {
		return id, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate ed25519 key: %w", err)
	}
	raw, encrypted, err := encodeNewKey(sk, path, &opts)
	if err != nil {
		return nil, false, err
	}
	defer clear(raw)
	if err := writeNewFile(path, raw); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created the key between our read and write:
			// use theirs rather than fight over it.
			id, err = LoadWith(path, opts)
			return id, false, err
		}
		return nil, false, err
	}
	pid, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, false, fmt.Errorf("derive peer id: %w", err)
	}
	return &Identity{PrivKey: sk, ID: pid, KeyPath: path, Encrypted: encrypted}, true, nil
}

// encodeNewKey returns the key file content of a new key: encrypted when
// opts asks for it.
func encodeNewKey(sk crypto.PrivKey, path string, opts *KeyOptions) (raw []byte, encrypted bool, err error) {
	if opts.NewKeyPassphrase == nil {
		raw, err := crypto.MarshalPrivateKey(sk)
		if err != nil {
			return nil, false, fmt.Errorf("encode private key: %w", err)
		}
		return raw, false, nil
	}
	pass, err := opts.NewKeyPassphrase()
	if err != nil {
		return nil, false, fmt.Errorf("passphrase for the new key %s: %w", path, err)
	}
	defer clear(pass)
	raw, err = encryptKey(sk, pass, opts.kdf())
	if err != nil {
		return nil, false, fmt.Errorf("encrypt the new key %s: %w", path, err)
	}
	return raw, true, nil
}

// Load reads an existing unencrypted key file; an encrypted one is
// ErrKeyEncrypted (use LoadWith). See LoadWith for the other errors.
func Load(path string) (*Identity, error) { return LoadWith(path, KeyOptions{}) }

// LoadWith reads an existing key file, asking opts.Unlock for the
// passphrase when it is encrypted. It refuses files readable by group or
// others (ErrKeyPermissions) and files that do not hold an Ed25519 key
// (ErrKeyCorrupt); a wrong passphrase is ErrWrongPassphrase. A missing file
// is reported with fs.ErrNotExist.
func LoadWith(path string, opts KeyOptions) (*Identity, error) {
	raw, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	encrypted := isEncryptedKey(raw)
	if encrypted {
		plain, err := unlock(raw, path, opts.Unlock)
		if err != nil {
			return nil, err
		}
		defer clear(plain)
		raw = plain
	}
	id, err := decodeKey(raw, path)
	if err != nil {
		return nil, err
	}
	id.Encrypted = encrypted
	return id, nil
}

// unlock decrypts an encrypted key file's content.
func unlock(raw []byte, path string, f PassphraseFunc) ([]byte, error) {
	if _, _, err := parseEncryptedKey(raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pass, err := askPassphrase(f, path)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	plain, err := decryptKey(raw, pass)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return plain, nil
}

// readKeyFile reads a key file after checking its type, mode and size.
func readKeyFile(path string) ([]byte, error) {
	// #nosec G304 -- path is the key file in the user's data dir.
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyCorrupt, path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s",
			ErrKeyPermissions, path, st.Mode().Perm(), path)
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, expected an ed25519 key (move it away to make a new identity)",
			ErrKeyCorrupt, path, st.Size())
	}
	raw := make([]byte, st.Size())
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	return raw, nil
}

// decodeKey decodes an unencrypted key.
func decodeKey(raw []byte, path string) (*Identity, error) {
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s cannot be decoded (%v); restore it from a backup or move it away to make a new identity",
			ErrKeyCorrupt, path, err)
	}
	if sk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s holds a %v key, expected ed25519", ErrKeyCorrupt, path, sk.Type())
	}
	if err := verifyKey(sk); err != nil {
		return nil, fmt.Errorf("%w: %s is damaged (%v); restore it from a backup, or move it away to make a new identity (a new peer ID)",
			ErrKeyCorrupt, path, err)
	}
	pid, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("%w: derive peer id from %s: %v", ErrKeyCorrupt, path, err)
	}
	return &Identity{PrivKey: sk, ID: pid, KeyPath: path}, nil
}

// keyCheckMessage is what verifyKey signs.
var keyCheckMessage = []byte("parley identity key check")

// verifyKey checks that an Ed25519 key is whole: the public half stored
// with it is the one its seed makes (a flipped seed byte would sign with
// another key under the same peer ID; a flipped public byte would give
// another peer ID), and a signature made with it verifies.
func verifyKey(sk crypto.PrivKey) error {
	raw, err := sk.Raw()
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	defer clear(raw)
	if len(raw) != ed25519.PrivateKeySize {
		return fmt.Errorf("key of %d bytes, want %d", len(raw), ed25519.PrivateKeySize)
	}
	derived := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	defer clear(derived)
	if !bytes.Equal(derived[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
		return errors.New("its public key does not match its private key")
	}
	sig, err := sk.Sign(keyCheckMessage)
	if err != nil {
		return fmt.Errorf("test signature: %w", err)
	}
	if ok, err := sk.GetPublic().Verify(keyCheckMessage, sig); err != nil || !ok {
		return errors.New("a test signature does not verify")
	}
	return nil
}
