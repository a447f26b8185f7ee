package mailbox

import (
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// The HPKE suite of every seal (RFC 9180 identifiers in docs/PROTOCOL.md):
// the hybrid post-quantum KEM ML-KEM-768 + X25519, HKDF-SHA256 and
// ChaCha20-Poly1305.
func suite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.MLKEM768X25519(), hpke.HKDFSHA256(), hpke.ChaCha20Poly1305()
}

// KEMID is the HPKE KEM identifier of MLKEM768-X25519, the only KEM a
// record may name.
const KEMID = 0x647a

// kemKeyInfo separates the derivation of the KEM key from every other use
// of the identity key.
const kemKeyInfo = "parley-mailbox-kem-v1"

// DeriveKEMKey derives the node's HPKE private key from its libp2p
// identity key: HKDF-SHA256 of the raw identity key with the info
// "parley-mailbox-kem-v1" gives 32 bytes of input keying material for the
// KEM's DeriveKeyPair (RFC 9180). The KEM key is therefore exactly as
// protected as the identity key (an encrypted key file protects both) and
// never stored; it changes only with the identity.
func DeriveKEMKey(id crypto.PrivKey) (hpke.PrivateKey, error) {
	raw, err := id.Raw()
	if err != nil {
		return nil, fmt.Errorf("mailbox: read identity key: %w", err)
	}
	ikm, err := hkdf.Key(sha256.New, raw, nil, kemKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("mailbox: derive KEM seed: %w", err)
	}
	kem, _, _ := suite()
	k, err := kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, fmt.Errorf("mailbox: derive KEM key: %w", err)
	}
	return k, nil
}
