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
