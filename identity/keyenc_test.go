package identity

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// fastKDF keeps the tests quick; real files use DefaultKDF.
var fastKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func passFunc(s string) PassphraseFunc {
	return func() ([]byte, error) { return []byte(s), nil }
}

func keyBytes(t *testing.T, id *Identity) []byte {
	t.Helper()
	raw, err := crypto.MarshalPrivateKey(id.PrivKey)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	leftovers, err := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

func TestEncryptExistingKey(t *testing.T) {
	dir := t.TempDir()
	plain, _, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := plain.KeyPath
	secret := keyBytes(t, plain)

	id, created, err := EncryptKeyFile(dir, nil, []byte("correct horse battery"), fastKDF)
	if err != nil || created || !id.Encrypted || id.ID != plain.ID {
		t.Fatalf("encrypt: %+v created=%v err=%v", id, created, err)
	}
	raw := readFile(t, path)
	if !bytes.HasPrefix(raw, []byte(encMagic)) || bytes.Contains(raw, secret) || bytes.Contains(raw, secret[4:36]) {
		t.Fatal("key file still holds the plaintext key")
	}
	if runtime.GOOS != "windows" {
		assertMode(t, path, 0o600)
	}
	noTempFiles(t, dir)

	// Without a passphrase: a clear error, nothing replaced.
	if _, _, err := LoadOrCreate(dir); !errors.Is(err, ErrKeyEncrypted) || !strings.Contains(err.Error(), "--key-passphrase-file") {
		t.Fatalf("load without passphrase: %v", err)
	}
	// Wrong passphrase: ErrWrongPassphrase, file untouched.
	if _, err := LoadWith(path, KeyOptions{Unlock: passFunc("wrong horse battery")}); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if !bytes.Equal(raw, readFile(t, path)) {
		t.Fatal("a failed load changed the key file")
	}
	got, created, err := LoadOrCreateWith(dir, KeyOptions{Unlock: passFunc("correct horse battery")})
	if err != nil || created || got.ID != plain.ID || !got.Encrypted {
		t.Fatalf("load encrypted: %+v created=%v err=%v", got, created, err)
	}

	// Change the passphrase: fresh salt and nonce.
	if _, _, err := EncryptKeyFile(dir, passFunc("wrong horse battery"), []byte("new passphrase here"), fastKDF); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("re-encrypt with a wrong old passphrase: %v", err)
	}
	if _, _, err := EncryptKeyFile(dir, passFunc("correct horse battery"), []byte("new passphrase here"), fastKDF); err != nil {
		t.Fatal(err)
	}
	raw2 := readFile(t, path)
	if bytes.Equal(raw[:encHeaderSize], raw2[:encHeaderSize]) {
		t.Fatal("salt and nonce reused")
	}
	if _, err := LoadWith(path, KeyOptions{Unlock: passFunc("correct horse battery")}); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase after change: %v", err)
	}

	// Decrypt: back to the unencrypted file, same key.
	if _, err := DecryptKeyFile(dir, passFunc("correct horse battery")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("decrypt with wrong passphrase: %v", err)
	}
	back, err := DecryptKeyFile(dir, passFunc("new passphrase here"))
	if err != nil || back.Encrypted || back.ID != plain.ID {
		t.Fatalf("decrypt: %+v %v", back, err)
	}
	if !bytes.Equal(readFile(t, path), secret) {
		t.Fatal("decrypted key file differs from the original")
	}
	if _, err := DecryptKeyFile(dir, nil); !errors.Is(err, ErrKeyNotEncrypted) {
		t.Fatalf("decrypt an unencrypted file: %v", err)
	}
	noTempFiles(t, dir)
}

func TestEncryptNewKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	id, created, err := EncryptKeyFile(dir, nil, []byte("from the very start"), fastKDF)
	if err != nil || !created || !id.Encrypted {
		t.Fatalf("new encrypted key: %+v created=%v err=%v", id, created, err)
	}
	got, err := LoadWith(id.KeyPath, KeyOptions{Unlock: passFunc("from the very start")})
	if err != nil || got.ID != id.ID {
		t.Fatalf("load: %v", err)
	}
	// LoadOrCreateWith with NewKeyPassphrase encrypts a new key too.
	dir2 := t.TempDir()
	id2, created, err := LoadOrCreateWith(dir2, KeyOptions{NewKeyPassphrase: passFunc("another good one"), KDF: fastKDF})
	if err != nil || !created || !id2.Encrypted {
		t.Fatalf("LoadOrCreateWith: %+v %v %v", id2, created, err)
	}
	if !isEncryptedKey(readFile(t, id2.KeyPath)) {
		t.Fatal("new key written unencrypted")
	}
}

func TestWeakPassphraseWritesNothing(t *testing.T) {
	for _, pass := range []string{"", "short", "\xff\xfe invalid utf-8", strings.Repeat("x", MaxKeyPassphraseBytes+1)} {
		dir := t.TempDir()
		if _, _, err := EncryptKeyFile(dir, nil, []byte(pass), fastKDF); !errors.Is(err, ErrWeakPassphrase) {
			t.Fatalf("passphrase %q: %v", pass, err)
		}
		if _, err := os.Stat(filepath.Join(dir, KeyFileName)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("passphrase %q: a key file was written (%v)", pass, err)
		}
	}
	// An existing unencrypted key stays as it was.
	dir := t.TempDir()
	id, _, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := readFile(t, id.KeyPath)
	if _, _, err := EncryptKeyFile(dir, nil, []byte("short"), fastKDF); !errors.Is(err, ErrWeakPassphrase) {
		t.Fatal(err)
	}
	if !bytes.Equal(before, readFile(t, id.KeyPath)) {
		t.Fatal("key file changed")
	}
}

func TestPassphraseIsNormalized(t *testing.T) {
	dir := t.TempDir()
	// "é" precomposed (NFC) when encrypting, decomposed (NFD) when
	// unlocking: the same passphrase to the user.
	id, _, err := EncryptKeyFile(dir, nil, []byte("caf\u00e9 au lait"), fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWith(id.KeyPath, KeyOptions{Unlock: passFunc("cafe\u0301 au lait")}); err != nil {
		t.Fatalf("NFD passphrase: %v", err)
	}
}

func TestTamperedEncryptedKey(t *testing.T) {
	dir := t.TempDir()
	id, _, err := EncryptKeyFile(dir, nil, []byte("tamper with me"), fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	raw := readFile(t, id.KeyPath)
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x01
		write(t, id.KeyPath, bad)
		_, err := LoadWith(id.KeyPath, KeyOptions{Unlock: passFunc("tamper with me")})
		if err == nil {
			t.Fatalf("byte %d flipped: the key still loads", i)
		}
		if i >= len(encMagic) && !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrKeyCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for _, n := range []int{len(encMagic), encHeaderSize, encHeaderSize + 16, len(raw) - 1} {
		write(t, id.KeyPath, raw[:n])
		if _, err := LoadWith(id.KeyPath, KeyOptions{Unlock: passFunc("tamper with me")}); err == nil {
			t.Fatalf("truncated to %d bytes: loads", n)
		}
	}
}

func TestKDFBounds(t *testing.T) {
	for _, p := range []KDFParams{
		{Time: 0, MemoryKiB: 64, Threads: 1},
		{Time: maxArgonTime + 1, MemoryKiB: 64, Threads: 1},
		{Time: 1, MemoryKiB: 7, Threads: 1},
		{Time: 1, MemoryKiB: maxArgonMemory + 1, Threads: 1},
		{Time: 1, MemoryKiB: 64, Threads: 0},
		{Time: 1, MemoryKiB: 1024, Threads: maxArgonThreads + 1},
	} {
		if p.check() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := DefaultKDF().check(); err != nil {
		t.Fatal(err)
	}
}

// FuzzEncryptedKeyHeader feeds arbitrary bytes to the encrypted key file
// parser and, when the KDF parameters are cheap, to the decryption: no
// panic, errors are ErrKeyCorrupt or ErrWrongPassphrase, nothing opens.
func FuzzEncryptedKeyHeader(f *testing.F) {
	id, _, err := EncryptKeyFile(f.TempDir(), nil, []byte("fuzzing passphrase"), fastKDF)
	if err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(id.KeyPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw, []byte("fuzzing passphrase"))
	f.Add([]byte(encMagic), []byte(""))
	f.Add(append([]byte(encMagic), 1, 1, 0, 0, 0, 1, 0, 0, 0, 64, 1), []byte("x"))
	f.Fuzz(func(t *testing.T, raw, pass []byte) {
		h, ct, err := parseEncryptedKey(raw)
		if err != nil {
			if !errors.Is(err, ErrKeyCorrupt) {
				t.Fatalf("parse error %v is not ErrKeyCorrupt", err)
			}
			return
		}
		if len(ct) < 17 || h.kdf.check() != nil {
			t.Fatalf("accepted header %+v with %d ciphertext bytes", h.kdf, len(ct))
		}
		if h.kdf.Time*h.kdf.MemoryKiB > 1024 {
			return // too slow to fuzz; the bounds are tested above
		}
		plain, err := decryptKey(raw, pass)
		if err == nil {
			// Only the seed opens; any other input must fail.
			if _, err := crypto.UnmarshalPrivateKey(plain); err != nil {
				t.Fatalf("decrypted to garbage: %v", err)
			}
			return
		}
		if !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("decrypt error %v", err)
		}
	})
}
