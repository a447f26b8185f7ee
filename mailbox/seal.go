package mailbox

import (
	"crypto/hpke"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/mailbox/pb"
)

// sealInfo is the HPKE info string of every seal.
const sealInfo = "parley-mailbox-seal-v1"

// Limits of seals (docs/PROTOCOL.md).
const (
	// MaxSealSize is the largest seal (HPKE enc || ciphertext) a holder
	// takes and a recipient opens.
	MaxSealSize = 32 << 10
	// MaxReceiptIDs is how many note ids one receipt carries at most.
	MaxReceiptIDs = 512
	// noteIDLen is the length of a note id (a dm message id).
	noteIDLen = 16
)

// Letter is an opened, verified seal.
type Letter struct {
	// From is the signer of the letter: the sender's identity.
	From peer.ID
	// SenderRecord is the sender's own record, signed by From.
	SenderRecord *Record
	// Exactly one of Note and Receipt is set.
	Note    *pb.Note
	Receipt [][]byte
}

// Seal signs a letter to the owner of to with the sender's identity key
// and its record (senderRecord, an envelope signed by the same key), and
// encrypts it to to's KEM key with single-shot HPKE (RFC 9180, base mode).
// body is a *pb.Note or a *pb.Receipt.
func Seal(id crypto.PrivKey, senderRecord []byte, to *Record, body any) ([]byte, error) {
	l := &pb.Letter{To: []byte(to.Peer), SenderRecord: senderRecord}
	switch b := body.(type) {
	case *pb.Note:
		l.Body = &pb.Letter_Note{Note: b}
	case *pb.Receipt:
		l.Body = &pb.Letter_Receipt{Receipt: b}
	default:
		return nil, fmt.Errorf("mailbox: seal a %T", body)
	}
	env, err := sealEnvelope(id, letterDomain, letterCodec, l)
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	_, kdf, aead := suite()
	ct, err := hpke.Seal(to.KEM, kdf, aead, []byte(sealInfo), env)
	if err != nil {
		return nil, fmt.Errorf("mailbox: seal: %w", err)
	}
	if len(ct) > MaxSealSize {
		return nil, fmt.Errorf("mailbox: seal of %d bytes, at most %d", len(ct), MaxSealSize)
	}
	return ct, nil
}

// Open decrypts a seal with the node's KEM key, verifies the sender's
// signature and the sender's record, and checks that the letter is
// addressed to self. Whatever it returns is authentic; it never panics on
// bad input.
func Open(sealed []byte, key hpke.PrivateKey, self peer.ID) (*Letter, error) {
	if len(sealed) > MaxSealSize {
		return nil, fmt.Errorf("%w: seal of %d bytes, at most %d", ErrMalformed, len(sealed), MaxSealSize)
	}
	_, kdf, aead := suite()
	env, err := hpke.Open(key, kdf, aead, []byte(sealInfo), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUndecryptable, err)
	}
	var l pb.Letter
	signer, err := openEnvelope(env, letterDomain, letterCodec, &l)
	if err != nil {
		return nil, fmt.Errorf("open letter: %w", err)
	}
	if peer.ID(l.To) != self {
		return nil, ErrNotForUs
	}
	rec, err := OpenRecord(l.SenderRecord)
	if err != nil {
		return nil, fmt.Errorf("letter's sender record: %w", err)
	}
	if rec.Peer != signer {
		return nil, fmt.Errorf("%w: letter signed by %s carries the record of %s", ErrBadSignature, signer, rec.Peer)
	}
	out := &Letter{From: signer, SenderRecord: rec}
	switch b := l.Body.(type) {
	case *pb.Letter_Note:
		if b.Note == nil || len(b.Note.Id) != noteIDLen {
			return nil, fmt.Errorf("%w: note without a 16-byte id", ErrMalformed)
		}
		out.Note = b.Note
	case *pb.Letter_Receipt:
		if b.Receipt == nil || len(b.Receipt.Ids) == 0 || len(b.Receipt.Ids) > MaxReceiptIDs {
			return nil, fmt.Errorf("%w: receipt of %d ids", ErrMalformed, len(b.Receipt.GetIds()))
		}
		for _, id := range b.Receipt.Ids {
			if len(id) != noteIDLen {
				return nil, fmt.Errorf("%w: receipt id of %d bytes", ErrMalformed, len(id))
			}
		}
		out.Receipt = b.Receipt.Ids
	default:
		return nil, fmt.Errorf("%w: letter without a body", ErrMalformed)
	}
	return out, nil
}
