package mailbox

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	lrec "github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/mailbox/pb"
)

// Signed-envelope domains and payload types (docs/PROTOCOL.md). The
// domain is part of what the identity key signs, so a record can never be
// taken for a letter or for any other libp2p signed record.
const (
	recordDomain = "parley-mailbox-record"
	recordCodec  = "/parley/mailbox/record/1"
	letterDomain = "parley-mailbox-letter"
	letterCodec  = "/parley/mailbox/letter/1"
	// mailboxIDDomain prefixes the hash that makes a mailbox id.
	mailboxIDDomain = "parley-mailbox-id-v1"
)

// Limits of records (docs/PROTOCOL.md).
const (
	// MaxRecordSize is the largest signed record envelope accepted.
	MaxRecordSize = 4 << 10
	// MaxHolders is how many holders a record names at most.
	MaxHolders = 4
	// maxHolderAddrs is how many addresses of one holder a record keeps.
	maxHolderAddrs = 4
	// MailboxIDLen is the length of a mailbox id in bytes.
	MailboxIDLen = 16
)

// Record is a verified mailbox record: the KEM key others seal to and the
// holders its owner reads from.
type Record struct {
	Peer    peer.ID
	KEM     hpke.PublicKey
	Holders []peer.AddrInfo
	Issued  time.Time
	// Envelope is the signed envelope the record was read from (or made
	// into), as it travels.
	Envelope []byte
}

// MailboxID is the id deposits for the record's owner are held under.
func (r *Record) MailboxID() []byte { return MailboxID(r.KEM.Bytes()) }

// MailboxID derives a mailbox id from the owner's KEM public key:
// SHA-256("parley-mailbox-id-v1" || kem_public_key), first 16 bytes. It
// depends only on the recipient's record, nothing of the sender.
func MailboxID(kemPublicKey []byte) []byte {
	h := sha256.New()
	h.Write([]byte(mailboxIDDomain))
	h.Write(kemPublicKey)
	return h.Sum(nil)[:MailboxIDLen]
}

// envelopePayload adapts a protobuf message to libp2p's record.Record.
type envelopePayload struct {
	domain, codec string
	msg           proto.Message
}

func (e *envelopePayload) Domain() string                 { return e.domain }
func (e *envelopePayload) Codec() []byte                  { return []byte(e.codec) }
func (e *envelopePayload) MarshalRecord() ([]byte, error) { return proto.Marshal(e.msg) }
func (e *envelopePayload) UnmarshalRecord(b []byte) error { return proto.Unmarshal(b, e.msg) }

// seal signs msg into a serialized libp2p signed envelope.
func sealEnvelope(key crypto.PrivKey, domain, codec string, msg proto.Message) ([]byte, error) {
	env, err := lrec.Seal(&envelopePayload{domain: domain, codec: codec, msg: msg}, key)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", codec, err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode %s envelope: %w", codec, err)
	}
	return b, nil
}

// openEnvelope verifies a serialized envelope of the given domain and
// payload type, decodes its payload into msg and returns the signer.
func openEnvelope(b []byte, domain, codec string, msg proto.Message) (peer.ID, error) {
	env, err := lrec.ConsumeTypedEnvelope(b, &envelopePayload{domain: domain, codec: codec, msg: msg})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if !bytes.Equal(env.PayloadType, []byte(codec)) {
		return "", fmt.Errorf("%w: payload type %q, want %q", ErrMalformed, env.PayloadType, codec)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return "", fmt.Errorf("%w: signer key: %v", ErrMalformed, err)
	}
	return signer, nil
}

// SignRecord makes the record of the identity key id, with the public key
// of kem and the given holders (at most MaxHolders, each with at most 4
// addresses).
func SignRecord(id crypto.PrivKey, kem hpke.PublicKey, holders []peer.AddrInfo, issued time.Time) (*Record, error) {
	p, err := peer.IDFromPrivateKey(id)
	if err != nil {
		return nil, fmt.Errorf("mailbox: record signer: %w", err)
	}
	if len(holders) > MaxHolders {
		return nil, fmt.Errorf("mailbox: %d holders, at most %d", len(holders), MaxHolders)
	}
	if kem.KEM().ID() != KEMID {
		return nil, fmt.Errorf("mailbox: KEM %#x, want %#x", kem.KEM().ID(), KEMID)
	}
	m := &pb.Record{PeerId: []byte(p), KemId: KEMID, KemPublicKey: kem.Bytes(), IssuedMs: issued.UnixMilli()}
	kept := make([]peer.AddrInfo, 0, len(holders))
	for _, h := range holders {
		ph := &pb.Holder{PeerId: []byte(h.ID)}
		ai := peer.AddrInfo{ID: h.ID}
		for _, a := range h.Addrs {
			if len(ph.Addrs) == maxHolderAddrs {
				break
			}
			ph.Addrs = append(ph.Addrs, a.Bytes())
			ai.Addrs = append(ai.Addrs, a)
		}
		m.Holders = append(m.Holders, ph)
		kept = append(kept, ai)
	}
	env, err := sealEnvelope(id, recordDomain, recordCodec, m)
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	if len(env) > MaxRecordSize {
		return nil, fmt.Errorf("mailbox: record of %d bytes, at most %d", len(env), MaxRecordSize)
	}
	return &Record{Peer: p, KEM: kem, Holders: kept, Issued: time.UnixMilli(m.IssuedMs), Envelope: env}, nil
}

// OpenRecord verifies a signed record envelope: signature, signer equal
// to the record's peer, the KEM, the holders. It never panics on bad
// input.
func OpenRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: record of %d bytes, at most %d", ErrMalformed, len(b), MaxRecordSize)
	}
	var m pb.Record
	signer, err := openEnvelope(b, recordDomain, recordCodec, &m)
	if err != nil {
		return nil, fmt.Errorf("open record: %w", err)
	}
	if peer.ID(m.PeerId) != signer {
		return nil, fmt.Errorf("%w: record of %s signed by %s", ErrBadSignature, peer.ID(m.PeerId), signer)
	}
	if m.KemId != KEMID {
		return nil, fmt.Errorf("%w: KEM %#x, want %#x", ErrMalformed, m.KemId, KEMID)
	}
	kem, _, _ := suite()
	pub, err := kem.NewPublicKey(m.KemPublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: KEM public key: %v", ErrMalformed, err)
	}
	if len(m.Holders) > MaxHolders {
		return nil, fmt.Errorf("%w: %d holders, at most %d", ErrMalformed, len(m.Holders), MaxHolders)
	}
	r := &Record{Peer: signer, KEM: pub, Issued: time.UnixMilli(m.IssuedMs), Envelope: bytes.Clone(b)}
	for _, h := range m.Holders {
		id, err := peer.IDFromBytes(h.PeerId)
		if err != nil {
			return nil, fmt.Errorf("%w: holder id: %v", ErrMalformed, err)
		}
		if len(h.Addrs) > maxHolderAddrs {
			return nil, fmt.Errorf("%w: holder with %d addresses, at most %d", ErrMalformed, len(h.Addrs), maxHolderAddrs)
		}
		ai := peer.AddrInfo{ID: id}
		for _, ab := range h.Addrs {
			a, err := ma.NewMultiaddrBytes(ab)
			if err != nil {
				return nil, fmt.Errorf("%w: holder address: %v", ErrMalformed, err)
			}
			ai.Addrs = append(ai.Addrs, a)
		}
		r.Holders = append(r.Holders, ai)
	}
	return r, nil
}
