package rooms

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Topic names, versioned with the protocol.
const (
	// ProtocolVersion is the rooms protocol version, part of every topic.
	ProtocolVersion = "1"
	// PublicTopicPrefix is followed by the canonical room name.
	PublicTopicPrefix = "parley/room/" + ProtocolVersion + "/public/"
	// PrivateTopicPrefix is followed by 32 lowercase hex digits derived
	// from the room key and name (see privateRoom).
	PrivateTopicPrefix = "parley/room/" + ProtocolVersion + "/private/"
)

// Key sizes and derivation labels.
const (
	// KeySize is the size of a private room key.
	KeySize = 32
	// hkdfSalt is the HKDF salt of every private-room derivation.
	hkdfSalt = "parley/room/1"
	// topicInfo and sealInfo are the HKDF info prefixes for the topic ID and
	// the AEAD key; the topic info is followed by the room name.
	topicInfo = "parley/room/1 topic\x00"
	sealInfo  = "parley/room/1 seal"
	// rendezvousInfo is the HKDF info prefix of the DHT rendezvous
	// namespace, followed by the room name.
	rendezvousInfo = "parley/room/1 rendezvous\x00"
	// topicIDSize is the size of the derived topic ID (hex in the topic).
	topicIDSize = 16
)

// Passphrase rooms: Argon2id parameters (RFC 9106, second recommended
// option) and passphrase limits.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 4
	argonSalt    = "parley/room/1 passphrase\x00"
	// MinPassphraseLen is the minimum passphrase length in characters.
	MinPassphraseLen = 12
	// MaxPassphraseBytes bounds a passphrase.
	MaxPassphraseBytes = 1024
)

// roomKeys are the values derived from a private room's key and name.
type roomKeys struct {
	topic string // PrivateTopicPrefix + hex(topic ID)
	// rendezvous is the namespace members meet under in the DHT: derived
	// apart from the topic, which GossipSub tells every connected peer.
	rendezvous string
	seal       [chacha20poly1305.KeySize]byte
}

// deriveKeys derives a private room's topic and seal key. The name is bound
// into the topic, so an invite whose name was altered leads to another
// (empty) room rather than relabelling this one.
func deriveKeys(key []byte, name string) (roomKeys, error) {
	var k roomKeys
	if len(key) != KeySize {
		return k, fmt.Errorf("room key is %d bytes, want %d", len(key), KeySize)
	}
	id, err := hkdf.Key(sha256.New, key, []byte(hkdfSalt), topicInfo+name, topicIDSize)
	if err != nil {
		return k, fmt.Errorf("derive topic: %w", err)
	}
	seal, err := hkdf.Key(sha256.New, key, []byte(hkdfSalt), sealInfo, len(k.seal))
	if err != nil {
		return k, fmt.Errorf("derive seal key: %w", err)
	}
	rv, err := hkdf.Key(sha256.New, key, []byte(hkdfSalt), rendezvousInfo+name, topicIDSize)
	if err != nil {
		return k, fmt.Errorf("derive rendezvous: %w", err)
	}
	k.topic = PrivateTopicPrefix + hex.EncodeToString(id)
	k.rendezvous = PrivateTopicPrefix + "rendezvous/" + hex.EncodeToString(rv)
	copy(k.seal[:], seal)
	return k, nil
}

// newRoomKey returns a fresh random 256-bit room key.
func newRoomKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate room key: %w", err)
	}
	return key, nil
}

// passphraseKey derives a room key from a passphrase and canonical room name
// with Argon2id. Everyone who knows both derives the same key.
func passphraseKey(name, passphrase string) ([]byte, error) {
	if len(passphrase) > MaxPassphraseBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrWeakPassphrase, MaxPassphraseBytes)
	}
	if !utf8.ValidString(passphrase) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrWeakPassphrase)
	}
	if n := utf8.RuneCountInString(passphrase); n < MinPassphraseLen {
		return nil, fmt.Errorf("%w: %d characters, at least %d required", ErrWeakPassphrase, n, MinPassphraseLen)
	}
	salt := sha256.Sum256([]byte(argonSalt + name))
	return argon2.IDKey([]byte(passphrase), salt[:16], argonTime, argonMemory, argonThreads, KeySize), nil
}

// sealAD is the AEAD associated data: the topic and the publisher's peer
// ID, each prefixed with its length as an unsigned varint.
func sealAD(topic string, from peer.ID) []byte {
	ad := make([]byte, 0, 2*binary.MaxVarintLen64+len(topic)+len(from))
	ad = binary.AppendUvarint(ad, uint64(len(topic)))
	ad = append(ad, topic...)
	ad = binary.AppendUvarint(ad, uint64(len(from)))
	return append(ad, from...)
}

// seal encrypts plaintext for topic as published by from, with a fresh
// random 24-byte nonce.
func seal(k *roomKeys, from peer.ID, plaintext []byte) (nonce, ciphertext []byte, err error) {
	aead, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil {
		return nil, nil, fmt.Errorf("seal: %w", err)
	}
	nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("seal nonce: %w", err)
	}
	return nonce, aead.Seal(nil, nonce, plaintext, sealAD(k.topic, from)), nil
}

// open decrypts a sealed envelope published by from on k.topic.
func open(k *roomKeys, from peer.ID, nonce, ciphertext []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.seal[:])
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if len(nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("nonce is %d bytes, want %d", len(nonce), aead.NonceSize())
	}
	if len(ciphertext) < aead.Overhead() {
		return nil, fmt.Errorf("ciphertext shorter than the tag")
	}
	pt, err := aead.Open(nil, nonce, ciphertext, sealAD(k.topic, from))
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return pt, nil
}
