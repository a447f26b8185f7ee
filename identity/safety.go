package identity

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Safety numbers, modelled on Signal's (libsignal NumericFingerprint,
// version 2 of its "displayable fingerprint"):
//
// For each of the two public keys K (in libp2p's protobuf encoding, which
// names the key type and carries the raw key bytes):
//
//	h = SHA-512(safetyDomain || K)
//	repeat safetyIterations times: h = SHA-512(h || K)
//
// The first 30 bytes of h are cut into six 5-byte big-endian integers, and
// each is written as its value mod 100000, zero-padded to 5 digits: 30
// digits per key. The two 30-digit halves are sorted as strings and
// concatenated, so both sides of a conversation compute the same 60 digits
// regardless of who is "a". The result is shown in 12 groups of 5.
//
// Each half carries about 99.6 bits (30 decimal digits). To pass a
// man-in-the-middle key off as the real one, an attacker has to find a key
// whose half equals the victim's; the 5200 SHA-512 iterations multiply the
// cost of each of the ~2^99 attempts, which puts grinding far out of reach.
// The domain string separates Parley's numbers from any other use of the
// same keys.
const (
	// SafetyNumberDigits is the number of decimal digits of a safety
	// number, not counting separators.
	SafetyNumberDigits = 60
	safetyIterations   = 5200
	safetyDomain       = "parley-safety-number-v1\x00"
	safetyHalfDigits   = SafetyNumberDigits / 2
	safetyGroup        = 5
)

// ErrNoPublicKey is returned when a safety number is asked for a key that
// is missing or cannot be extracted from a peer ID.
var ErrNoPublicKey = errors.New("no public key")

// SafetyNumber returns the safety number of the pair of public keys a and b:
// 60 decimal digits in 12 groups of 5 separated by spaces. It does not
// depend on the order of a and b. Two people who see the same number on
// their screens talk to each other's real keys.
func SafetyNumber(a, b crypto.PubKey) (string, error) {
	ha, err := safetyHalf(a)
	if err != nil {
		return "", fmt.Errorf("safety number, first key: %w", err)
	}
	hb, err := safetyHalf(b)
	if err != nil {
		return "", fmt.Errorf("safety number, second key: %w", err)
	}
	if hb < ha {
		ha, hb = hb, ha
	}
	digits := ha + hb
	var s strings.Builder
	s.Grow(SafetyNumberDigits + SafetyNumberDigits/safetyGroup)
	for i := 0; i < len(digits); i += safetyGroup {
		if i > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(digits[i : i+safetyGroup])
	}
	return s.String(), nil
}

// PeerSafetyNumber is SafetyNumber for two peer IDs that embed their public
// keys (as Ed25519 peer IDs do).
func PeerSafetyNumber(a, b peer.ID) (string, error) {
	ka, err := a.ExtractPublicKey()
	if err != nil {
		return "", fmt.Errorf("%w: peer %s: %v", ErrNoPublicKey, a, err)
	}
	kb, err := b.ExtractPublicKey()
	if err != nil {
		return "", fmt.Errorf("%w: peer %s: %v", ErrNoPublicKey, b, err)
	}
	return SafetyNumber(ka, kb)
}

func safetyHalf(k crypto.PubKey) (string, error) {
	if k == nil {
		return "", ErrNoPublicKey
	}
	enc, err := crypto.MarshalPublicKey(k)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	h := sha512.New()
	h.Write([]byte(safetyDomain))
	h.Write(enc)
	sum := h.Sum(nil)
	for range safetyIterations {
		h.Reset()
		h.Write(sum)
		h.Write(enc)
		sum = h.Sum(sum[:0])
	}
	var digits bytes.Buffer
	digits.Grow(safetyHalfDigits)
	var chunk [8]byte
	for i := 0; i < safetyHalfDigits/safetyGroup; i++ {
		copy(chunk[3:], sum[i*5:i*5+5])
		fmt.Fprintf(&digits, "%05d", binary.BigEndian.Uint64(chunk[:])%100000)
	}
	return digits.String(), nil
}
