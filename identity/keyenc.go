package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/text/unicode/norm"
)

// Encrypted key files.
//
// A key file may hold the private key encrypted under a passphrase. The
// format, version 1 (integers big-endian):
//
//	offset size  field
//	0      21    magic "parley-encrypted-key\n"
//	21     1     version, 1
//	22     1     KDF, 1 = Argon2id (RFC 9106)
//	23     4     Argon2id passes (time), 1..16
//	27     4     Argon2id memory in KiB, 8 x lanes .. 1048576 (1 GiB)
//	31     1     Argon2id lanes (threads), 1..64
//	32     16    salt, random
//	48     24    nonce, random
//	72     rest  ciphertext: XChaCha20-Poly1305 with the 32-byte Argon2id
//	             output as key, the nonce, every byte before the
//	             ciphertext (offsets 0-71) as associated data, and as
//	             plaintext the key in libp2p's protobuf encoding
//	             (crypto.MarshalPrivateKey), the same bytes an
//	             unencrypted key file holds.
//
// The passphrase is UTF-8, normalised to NFC before use so that the same
// passphrase typed on different systems gives the same key. Salt and nonce
// are fresh for every write, also when only the passphrase changes. A wrong
// passphrase and a modified file are the same error (ErrWrongPassphrase):
// the AEAD cannot tell them apart. KDF parameters are bounded before any
// work, so a doctored file cannot make Load allocate more than 1 GiB or run
// for long.
const (
	encMagic      = "parley-encrypted-key\n"
	encVersion    = 1
	encKDFArgon2  = 1
	encSaltSize   = 16
	encHeaderSize = len(encMagic) + 1 + 1 + 4 + 4 + 1 + encSaltSize + chacha20poly1305.NonceSizeX

	maxArgonTime    = 16
	maxArgonMemory  = 1 << 20 // KiB: 1 GiB
	maxArgonThreads = 64

	// MinKeyPassphraseLen is the minimum length, in characters, of a
	// passphrase that encrypts a key.
	MinKeyPassphraseLen = 8
	// MaxKeyPassphraseBytes bounds a key passphrase.
	MaxKeyPassphraseBytes = 1024
)

// KDFParams are the Argon2id parameters of an encrypted key file.
type KDFParams struct {
	// Time is the number of passes.
	Time uint32
	// MemoryKiB is the memory used, in KiB.
	MemoryKiB uint32
	// Threads is the degree of parallelism (lanes).
	Threads uint8
}

// DefaultKDF returns the parameters used for new encrypted key files: the
// second recommended option of RFC 9106 (3 passes, 64 MiB, 4 lanes), about
// a fifth of a second on a laptop.
func DefaultKDF() KDFParams {
	return KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}
}

func (p KDFParams) check() error {
	switch {
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("argon2id passes %d outside 1..%d", p.Time, maxArgonTime)
	case p.Threads < 1 || p.Threads > maxArgonThreads:
		return fmt.Errorf("argon2id lanes %d outside 1..%d", p.Threads, maxArgonThreads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgonMemory:
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxArgonMemory)
	}
	return nil
}

// PassphraseFunc supplies a passphrase. The caller zeroes the returned
// slice once it is done with it.
type PassphraseFunc func() ([]byte, error)

// isEncryptedKey reports whether raw is an encrypted key file.
func isEncryptedKey(raw []byte) bool { return bytes.HasPrefix(raw, []byte(encMagic)) }

// encHeader is the parsed header of an encrypted key file.
type encHeader struct {
	kdf   KDFParams
	salt  []byte
	nonce []byte
}

// parseEncryptedKey checks the header of an encrypted key file and returns
// it with the ciphertext. Errors wrap ErrKeyCorrupt.
func parseEncryptedKey(raw []byte) (encHeader, []byte, error) {
	var h encHeader
	if !isEncryptedKey(raw) {
		return h, nil, fmt.Errorf("%w: not an encrypted key file", ErrKeyCorrupt)
	}
	if len(raw) < encHeaderSize+chacha20poly1305.Overhead+1 {
		return h, nil, fmt.Errorf("%w: encrypted key file is truncated", ErrKeyCorrupt)
	}
	b := raw[len(encMagic):]
	if b[0] != encVersion {
		return h, nil, fmt.Errorf("%w: encrypted key file version %d is not supported", ErrKeyCorrupt, b[0])
	}
	if b[1] != encKDFArgon2 {
		return h, nil, fmt.Errorf("%w: unknown key derivation function %d", ErrKeyCorrupt, b[1])
	}
	h.kdf = KDFParams{
		Time:      binary.BigEndian.Uint32(b[2:6]),
		MemoryKiB: binary.BigEndian.Uint32(b[6:10]),
		Threads:   b[10],
	}
	if err := h.kdf.check(); err != nil {
		return h, nil, fmt.Errorf("%w: %v", ErrKeyCorrupt, err)
	}
	h.salt = b[11 : 11+encSaltSize]
	h.nonce = b[11+encSaltSize : 11+encSaltSize+chacha20poly1305.NonceSizeX]
	return h, raw[encHeaderSize:], nil
}

// CheckNewPassphrase checks that pass can encrypt a key: valid UTF-8 of
// MinKeyPassphraseLen characters up to MaxKeyPassphraseBytes bytes. Errors
// wrap ErrWeakPassphrase.
func CheckNewPassphrase(pass []byte) error {
	if len(pass) > MaxKeyPassphraseBytes {
		return fmt.Errorf("%w: longer than %d bytes", ErrWeakPassphrase, MaxKeyPassphraseBytes)
	}
	if !utf8.Valid(pass) {
		return fmt.Errorf("%w: not valid UTF-8", ErrWeakPassphrase)
	}
	if n := utf8.RuneCount(pass); n < MinKeyPassphraseLen {
		return fmt.Errorf("%w: %d characters, at least %d required", ErrWeakPassphrase, n, MinKeyPassphraseLen)
	}
	return nil
}

// normPassphrase checks a passphrase and returns its NFC form.
func normPassphrase(pass []byte) ([]byte, error) {
	if len(pass) > MaxKeyPassphraseBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrWeakPassphrase, MaxKeyPassphraseBytes)
	}
	if !utf8.Valid(pass) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrWeakPassphrase)
	}
	// Append always copies, so the caller may clear the result.
	return norm.NFC.Append(nil, pass...), nil
}

func deriveKeyFileKey(pass []byte, h *encHeader) []byte {
	return argon2.IDKey(pass, h.salt, h.kdf.Time, h.kdf.MemoryKiB, h.kdf.Threads, chacha20poly1305.KeySize)
}

// encryptKey returns the encrypted key file content for sk.
func encryptKey(sk crypto.PrivKey, pass []byte, kdf KDFParams) ([]byte, error) {
	if err := kdf.check(); err != nil {
		return nil, err
	}
	if err := CheckNewPassphrase(pass); err != nil {
		return nil, err
	}
	pass, err := normPassphrase(pass)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	plain, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	defer clear(plain)
	out := make([]byte, encHeaderSize, encHeaderSize+len(plain)+chacha20poly1305.Overhead)
	copy(out, encMagic)
	b := out[len(encMagic):]
	b[0], b[1] = encVersion, encKDFArgon2
	binary.BigEndian.PutUint32(b[2:6], kdf.Time)
	binary.BigEndian.PutUint32(b[6:10], kdf.MemoryKiB)
	b[10] = kdf.Threads
	if _, err := rand.Read(b[11 : 11+encSaltSize+chacha20poly1305.NonceSizeX]); err != nil {
		return nil, fmt.Errorf("salt and nonce: %w", err)
	}
	h, _, err := parseEncryptedKey(append(out[:encHeaderSize:encHeaderSize], make([]byte, chacha20poly1305.Overhead+1)...))
	if err != nil {
		return nil, fmt.Errorf("encrypted key header: %w", err)
	}
	k := deriveKeyFileKey(pass, &h)
	defer clear(k)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, fmt.Errorf("key file cipher: %w", err)
	}
	return aead.Seal(out, h.nonce, plain, out[:encHeaderSize]), nil
}

// decryptKey opens an encrypted key file's content with pass and returns
// the key's protobuf encoding, which the caller zeroes after use.
func decryptKey(raw, pass []byte) ([]byte, error) {
	h, ct, err := parseEncryptedKey(raw)
	if err != nil {
		return nil, err
	}
	pass, err = normPassphrase(pass)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongPassphrase, err)
	}
	defer clear(pass)
	k := deriveKeyFileKey(pass, &h)
	defer clear(k)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, fmt.Errorf("key file cipher: %w", err)
	}
	plain, err := aead.Open(nil, h.nonce, ct, raw[:encHeaderSize])
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return plain, nil
}

// askPassphrase calls f, failing clearly when there is none.
func askPassphrase(f PassphraseFunc, path string) ([]byte, error) {
	if f == nil {
		return nil, fmt.Errorf("%w: %s; give its passphrase on a terminal or with --key-passphrase-file", ErrKeyEncrypted, path)
	}
	pass, err := f()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyEncrypted, path, err)
	}
	return pass, nil
}

// EncryptKeyFile encrypts the key file in dir with the passphrase newPass
// and returns the identity. When the file is already encrypted it is first
// opened with unlock, so this also changes the passphrase. When there is no
// key file yet, a new key is made and written encrypted (created is true).
// The new content goes to a temporary file (mode 0600) that replaces the
// key file atomically only after it was read back and opened with newPass;
// the key is never written unencrypted. kdf zero means DefaultKDF.
//
// Replacing an unencrypted key file does not erase the old bytes from the
// disk, from backups or from snapshots; see docs/SECURITY.md.
func EncryptKeyFile(dir string, unlock PassphraseFunc, newPass []byte, kdf KDFParams) (id *Identity, created bool, err error) {
	if err := CheckNewPassphrase(newPass); err != nil {
		return nil, false, err
	}
	opts := KeyOptions{Unlock: unlock, KDF: kdf}
	newKey := func() ([]byte, error) { return bytes.Clone(newPass), nil }
	// A missing file is created encrypted; an existing one is loaded.
	opts.NewKeyPassphrase = newKey
	id, created, err = LoadOrCreateWith(dir, opts)
	if err != nil || created {
		return id, created, err
	}
	raw, err := encryptKey(id.PrivKey, newPass, opts.kdf())
	if err != nil {
		return nil, false, err
	}
	if err := replaceKeyFile(id, raw, newPass); err != nil {
		return nil, false, err
	}
	id.Encrypted = true
	return id, false, nil
}

// DecryptKeyFile replaces the encrypted key file in dir by its unencrypted
// form (mode 0600, atomically), after opening it with unlock. An
// unencrypted file is ErrKeyNotEncrypted.
func DecryptKeyFile(dir string, unlock PassphraseFunc) (*Identity, error) {
	path := filepath.Join(dir, KeyFileName)
	raw, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	if !isEncryptedKey(raw) {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotEncrypted, path)
	}
	id, err := LoadWith(path, KeyOptions{Unlock: unlock})
	if err != nil {
		return nil, err
	}
	plain, err := crypto.MarshalPrivateKey(id.PrivKey)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	defer clear(plain)
	if err := replaceKeyFile(id, plain, nil); err != nil {
		return nil, err
	}
	id.Encrypted = false
	return id, nil
}

// replaceKeyFile writes raw to a temporary file next to the key file,
// checks that it holds id's key (opening it with pass when encrypted), and
// renames it over the key file.
func replaceKeyFile(id *Identity, raw, pass []byte) error {
	path := id.KeyPath
	tmp, err := writeTemp(path, raw, 0o600)
	if err != nil {
		return err
	}
	check, err := LoadWith(tmp, KeyOptions{Unlock: func() ([]byte, error) { return bytes.Clone(pass), nil }})
	if err == nil && check.ID != id.ID {
		err = fmt.Errorf("%w: read back a different key", ErrKeyCorrupt)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("check the new key file before replacing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replace key file %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}
