package rooms

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Invite code format, version 1:
//
//	parley-invite:<base64url without padding of payload>
//	payload = 0x01 | key (32 bytes) | name length (1 byte) | name (UTF-8) | check (4 bytes)
//	check   = first 4 bytes of SHA-256("parley-invite-v1\x00" | the bytes before it)
//
// The name must be canonical (NormalizeName). Decoding is strict: exact
// prefix, canonical base64url, exact lengths, known version, matching check
// bytes. The check catches copy-paste damage; a deliberate change of the
// name changes the derived topic (the name is bound into it), so an altered
// invite leads to another room, never relabels this one. An invite is a
// bearer secret: whoever holds it can read and write the room.
const (
	// InvitePrefix starts every invite code. It contains ':', which room
	// names cannot, so a /join argument is an invite exactly when it has
	// this prefix.
	InvitePrefix = "parley-invite:"

	inviteVersion = 1
	// limitedInviteVersion is a limited invite (invites.go): version 1's
	// fields followed by the 32-byte seed of the invite's Ed25519 key.
	limitedInviteVersion = 2
	inviteCheckLen       = 4
	inviteCheckTag       = "parley-invite-v1\x00"
	inviteMinRaw         = 1 + KeySize + 1 + 1 + inviteCheckLen
	inviteMaxRaw         = 1 + KeySize + 1 + maxNameBytes + ed25519.SeedSize + inviteCheckLen
)

var inviteEncoding = base64.RawURLEncoding.Strict()

// LooksLikeInvite reports whether s is meant as an invite code rather than
// a room name (it may still fail to decode).
func LooksLikeInvite(s string) bool {
	return strings.HasPrefix(strings.TrimSpace(s), InvitePrefix)
}

// EncodeInvite returns the invite code for a private room.
func EncodeInvite(name string, key []byte) (string, error) {
	if len(key) != KeySize {
		return "", fmt.Errorf("%w: key is %d bytes, want %d", ErrInvalidInvite, len(key), KeySize)
	}
	if !isCanonicalName(name) {
		return "", fmt.Errorf("%w: room name %q is not canonical", ErrInvalidInvite, name)
	}
	return encodeInvite(name, key, nil), nil
}

// encodeInvite builds a version 1 code, or version 2 when seed is set.
func encodeInvite(name string, key, seed []byte) string {
	raw := make([]byte, 0, inviteMaxRaw)
	if seed != nil {
		raw = append(raw, limitedInviteVersion)
	} else {
		raw = append(raw, inviteVersion)
	}
	raw = append(raw, key...)
	raw = append(raw, byte(len(name))) // #nosec G115 -- canonical names are at most maxNameBytes (128) bytes
	raw = append(raw, name...)
	raw = append(raw, seed...)
	raw = append(raw, inviteCheck(raw)...)
	return InvitePrefix + inviteEncoding.EncodeToString(raw)
}

// DecodeInvite parses a version 1 (open) invite code strictly and returns
// the canonical room name and the 32-byte room key. Errors wrap
// ErrInvalidInvite; a limited invite is one (DecodeAnyInvite reads both).
func DecodeInvite(code string) (name string, key []byte, err error) {
	name, key, seed, err := DecodeAnyInvite(code)
	if err == nil && seed != nil {
		return "", nil, fmt.Errorf("%w: a limited invite (version %d)", ErrInvalidInvite, limitedInviteVersion)
	}
	return name, key, err
}

// DecodeAnyInvite parses an open (version 1) or limited (version 2) invite
// code strictly: the room name, the room key and, for a limited invite,
// the 32-byte seed of the invite's key (nil for an open one).
func DecodeAnyInvite(code string) (name string, key, seed []byte, err error) {
	body, ok := strings.CutPrefix(code, InvitePrefix)
	if !ok {
		return "", nil, nil, fmt.Errorf("%w: does not start with %q", ErrInvalidInvite, InvitePrefix)
	}
	if len(body) > inviteEncoding.EncodedLen(inviteMaxRaw) {
		return "", nil, nil, fmt.Errorf("%w: too long", ErrInvalidInvite)
	}
	// encoding/base64 skips '\r' and '\n' even in strict mode; refuse
	// anything outside the alphabet first.
	if i := strings.IndexFunc(body, notBase64URL); i >= 0 {
		return "", nil, nil, fmt.Errorf("%w: character %q at %d is not base64url", ErrInvalidInvite, body[i], len(InvitePrefix)+i)
	}
	raw, err := inviteEncoding.DecodeString(body)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: bad encoding: %v", ErrInvalidInvite, err)
	}
	if len(raw) < inviteMinRaw {
		return "", nil, nil, fmt.Errorf("%w: too short", ErrInvalidInvite)
	}
	if raw[0] != inviteVersion && raw[0] != limitedInviteVersion {
		return "", nil, nil, fmt.Errorf("%w: unknown version %d", ErrInvalidInvite, raw[0])
	}
	body2, check := raw[:len(raw)-inviteCheckLen], raw[len(raw)-inviteCheckLen:]
	if !bytes.Equal(check, inviteCheck(body2)) {
		return "", nil, nil, fmt.Errorf("%w: check bytes do not match (damaged or mistyped)", ErrInvalidInvite)
	}
	nameLen := int(body2[1+KeySize])
	nameBytes := body2[1+KeySize+1:]
	if raw[0] == limitedInviteVersion {
		if len(nameBytes) < ed25519.SeedSize {
			return "", nil, nil, fmt.Errorf("%w: too short for a limited invite", ErrInvalidInvite)
		}
		nameBytes, seed = nameBytes[:len(nameBytes)-ed25519.SeedSize], bytes.Clone(nameBytes[len(nameBytes)-ed25519.SeedSize:])
	}
	if len(nameBytes) != nameLen {
		return "", nil, nil, fmt.Errorf("%w: name length %d, have %d bytes", ErrInvalidInvite, nameLen, len(nameBytes))
	}
	name = string(nameBytes)
	if !isCanonicalName(name) {
		return "", nil, nil, fmt.Errorf("%w: room name is not valid", ErrInvalidInvite)
	}
	key = bytes.Clone(body2[1 : 1+KeySize])
	return name, key, seed, nil
}

func notBase64URL(r rune) bool {
	return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

func inviteCheck(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte(inviteCheckTag))
	h.Write(b)
	return h.Sum(nil)[:inviteCheckLen]
}
