// Package identity owns a Parley node's long-term identity: the Ed25519
// private key stored in the data directory, the peer ID derived from it, the
// short fingerprint people compare by eye, and the rules for nicknames.
//
// The key file is written once, atomically (temporary file, fsync, link into
// place, fsync of the directory) with mode 0600 inside a 0700 directory. It is
// never overwritten: a corrupt or truncated key file is an error the user has
// to resolve, because silently replacing it would silently change the node's
// identity. Like ssh, a key file that group or others can read is refused.
//
// The key file may be encrypted with a passphrase (Argon2id and
// XChaCha20-Poly1305; the format is described in keyenc.go and
// docs/SECURITY.md). LoadWith asks for the passphrase only when the file is
// encrypted; EncryptKeyFile and DecryptKeyFile convert a key file in place,
// atomically, and never write the key unencrypted when asked to encrypt it.
//
// Nothing in this package ever sends, prints or logs the private key.
package identity
