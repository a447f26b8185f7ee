package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
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
}

// Fingerprint returns the short human-comparable fingerprint of the identity.
func (id *Identity) Fingerprint() string { return Fingerprint(id.ID) }

// LoadOrCreate loads the key from dir, generating and storing a new Ed25519
// key when there is no key file yet. created reports whether a key was made.
// The directory is created with mode 0700 when missing.
func LoadOrCreate(dir string) (id *Identity, created bool, err error) {
	if err := EnsureDir(dir); err != nil {
		return nil, false, err
	}
	path := filepath.Join(dir, KeyFileName)
	id, err = Load(path)
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
	raw, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, false, fmt.Errorf("encode private key: %w", err)
	}
	if err := writeNewFile(path, raw); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created the key between our read and write:
			// use theirs rather than fight over it.
			id, err = Load(path)
			return id, false, err
		}
		return nil, false, err
	}
	pid, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, false, fmt.Errorf("derive peer id: %w", err)
	}
	return &Identity{PrivKey: sk, ID: pid, KeyPath: path}, true, nil
}

// Load reads an existing key file. It refuses files readable by group or
// others (ErrKeyPermissions) and files that do not hold an Ed25519 key
// (ErrKeyCorrupt). A missing file is reported with fs.ErrNotExist.
func Load(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
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
	if _, err := readFull(f, raw); err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s cannot be decoded (%v); restore it from a backup or move it away to make a new identity",
			ErrKeyCorrupt, path, err)
	}
	if sk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s holds a %v key, expected ed25519", ErrKeyCorrupt, path, sk.Type())
	}
	pid, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("%w: derive peer id from %s: %v", ErrKeyCorrupt, path, err)
	}
	return &Identity{PrivKey: sk, ID: pid, KeyPath: path}, nil
}

func readFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
