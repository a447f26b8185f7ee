package rooms

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// A signed message is a GossipSub Message (from, data, seqno, topic,
// signature, key) exactly as its author signed it: GossipSub's own
// signature (StrictSign) over "libp2p-pubsub:" and the message without
// signature and key. History keeps the signed bytes of every chat line,
// and a member keeps the signed presence of every other member, so that
// the room sync can hand them on and the receiver verify the author's
// signature itself: a member passing messages on cannot forge or alter
// them. The presence a member spreads by the sync is built and signed
// here the same way, without being published.

// signPrefix is GossipSub's signature domain (pubsub.SignPrefix).
const signPrefix = pubsub.SignPrefix

// maxSignedSize bounds a signed message: the data plus GossipSub's
// fields (peer IDs, seqno, topic, signature, an RSA key at most).
const maxSignedSize = MaxMessageSize + 2<<10

var errBadSignature = errors.New("bad author signature")

// signedMsg is a verified signed message.
type signedMsg struct {
	author peer.ID
	topic  string
	data   []byte
	raw    []byte // the marshalled message, signature included
}

// signMessage builds and signs a message of topic with data, as GossipSub
// would publish it.
func signMessage(key crypto.PrivKey, author peer.ID, topic string, data []byte) ([]byte, error) {
	seq := make([]byte, 8)
	if _, err := rand.Read(seq); err != nil {
		return nil, fmt.Errorf("seqno: %w", err)
	}
	m := &pubsubpb.Message{From: []byte(author), Data: data, Seqno: seq, Topic: &topic}
	unsigned, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode message to sign: %w", err)
	}
	sig, err := key.Sign(append([]byte(signPrefix), unsigned...))
	if err != nil {
		return nil, fmt.Errorf("sign message: %w", err)
	}
	m.Signature = sig
	if pk, _ := author.ExtractPublicKey(); pk == nil {
		if m.Key, err = crypto.MarshalPublicKey(key.GetPublic()); err != nil {
			return nil, fmt.Errorf("encode public key: %w", err)
		}
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode signed message: %w", err)
	}
	return b, nil
}

// marshalSigned returns the signed bytes of a message GossipSub delivered.
func marshalSigned(m *pubsubpb.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode signed message: %w", err)
	}
	return b, nil
}

// verifySigned decodes raw and checks its author's signature the way
// GossipSub does (pubsub's verifyMessageSignature).
func verifySigned(raw []byte) (signedMsg, error) {
	p, err := parseSigned(raw)
	if err != nil {
		return signedMsg{}, err
	}
	if err := p.verify(); err != nil {
		return signedMsg{}, err
	}
	return p.sm, nil
}

// parsedSigned is a decoded signed message whose signature is not checked
// yet: what it claims (author, topic, data) may be read to decide whether
// it is worth checking, never trusted before verify succeeded.
type parsedSigned struct {
	m   *pubsubpb.Message
	pub crypto.PubKey
	sm  signedMsg
}

// parseSigned decodes raw and finds its claimed author's public key,
// without checking the signature (verify does).
func parseSigned(raw []byte) (parsedSigned, error) {
	if len(raw) > maxSignedSize {
		return parsedSigned{}, fmt.Errorf("%w: %d bytes", errOversizeItem, len(raw))
	}
	m := &pubsubpb.Message{}
	if err := proto.Unmarshal(raw, m); err != nil {
		return parsedSigned{}, fmt.Errorf("decode signed message: %w", err)
	}
	author, err := peer.IDFromBytes(m.From)
	if err != nil {
		return parsedSigned{}, fmt.Errorf("%w: author: %w", errBadSignature, err)
	}
	var pub crypto.PubKey
	if m.Key == nil {
		if pub, err = author.ExtractPublicKey(); err != nil || pub == nil {
			return parsedSigned{}, fmt.Errorf("%w: no key for %s", errBadSignature, author)
		}
	} else {
		if pub, err = crypto.UnmarshalPublicKey(m.Key); err != nil {
			return parsedSigned{}, fmt.Errorf("%w: key: %w", errBadSignature, err)
		}
		if !author.MatchesPublicKey(pub) {
			return parsedSigned{}, fmt.Errorf("%w: key does not match %s", errBadSignature, author)
		}
	}
	return parsedSigned{m: m, pub: pub, sm: signedMsg{author: author, topic: m.GetTopic(), data: m.Data, raw: raw}}, nil
}

// verify checks the author's signature of a parsed message.
func (p parsedSigned) verify() error {
	unsigned := proto.CloneOf(p.m)
	unsigned.Signature, unsigned.Key = nil, nil
	b, err := proto.Marshal(unsigned)
	if err != nil {
		return fmt.Errorf("encode signed message: %w", err)
	}
	ok, err := p.pub.Verify(append([]byte(signPrefix), b...), p.m.Signature)
	if err != nil || !ok {
		return errBadSignature
	}
	return nil
}

// itemIDSize is the size of a sync item ID.
const itemIDSize = 16

// itemID names a message in the sync: a hash of its author and the
// envelope ID the author chose, the pair replay protection remembers, so
// that two copies of one message are one item.
func itemID(author peer.ID, envID [idSize]byte) [itemIDSize]byte {
	h := sha256.New()
	h.Write([]byte("parley/rooms/sync/1 item\x00"))
	var l [binary.MaxVarintLen64]byte
	h.Write(l[:binary.PutUvarint(l[:], uint64(len(author)))])
	h.Write([]byte(author))
	h.Write(envID[:])
	var out [itemIDSize]byte
	copy(out[:], h.Sum(nil))
	return out
}
