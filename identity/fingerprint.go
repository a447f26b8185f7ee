package identity

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FingerprintLen is the number of characters of a fingerprint without its
// separators: 16 base32 characters, 80 bits of SHA-256.
const FingerprintLen = 16

// fpEncoding is RFC 4648 base32 without padding; its alphabet avoids 0/O and
// 1/I confusion well enough for reading aloud.
var fpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Fingerprint returns a short, human-comparable fingerprint of a peer ID:
// SHA-256 over the peer ID's bytes (which embed the Ed25519 public key),
// the first 80 bits in base32, grouped in fours: "ABCD-EFGH-IJKL-MNOP".
//
// It is meant for telling peers apart on screen and for a quick comparison;
// /verify uses the longer safety number for deliberate verification.
func Fingerprint(id peer.ID) string {
	sum := sha256.Sum256([]byte("parley-fingerprint-v1\x00" + string(id)))
	s := fpEncoding.EncodeToString(sum[:10])
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String()
}

// ShortFingerprint returns the first group of the fingerprint, used next to
// a nick that two peers share.
func ShortFingerprint(id peer.ID) string {
	return Fingerprint(id)[:4]
}
