package identity

import "errors"

var (
	// ErrKeyPermissions is returned when the key file can be read by group
	// or others.
	ErrKeyPermissions = errors.New("key file permissions too open")
	// ErrKeyCorrupt is returned when the key file cannot be decoded as an
	// Ed25519 libp2p private key.
	ErrKeyCorrupt = errors.New("key file corrupt")
	// ErrInvalidNick is returned for a nickname that breaks the rules of
	// ValidateNick.
	ErrInvalidNick = errors.New("invalid nick")
)

var (
	// ErrKeyEncrypted is returned when the key file is encrypted and no
	// passphrase was supplied.
	ErrKeyEncrypted = errors.New("key file is encrypted")
	// ErrKeyNotEncrypted is returned when asked to decrypt a key file
	// that is not encrypted.
	ErrKeyNotEncrypted = errors.New("key file is not encrypted")
	// ErrWrongPassphrase is returned when an encrypted key file does not
	// open with the passphrase given: the passphrase is wrong, or the file
	// was modified.
	ErrWrongPassphrase = errors.New("wrong passphrase for the key file (or the file was modified)")
	// ErrWeakPassphrase is returned for a passphrase too short, too long
	// or not UTF-8 to encrypt a key with.
	ErrWeakPassphrase = errors.New("unusable key passphrase")
)
