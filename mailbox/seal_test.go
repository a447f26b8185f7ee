package mailbox

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/mailbox/pb"
)

func TestRecordRoundTrip(t *testing.T) {
	holder := peer.AddrInfo{ID: newOwner(t).id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4747")}}
	o := newOwner(t, holder)
	got, err := OpenRecord(o.rec.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if got.Peer != o.id || !bytes.Equal(got.KEM.Bytes(), o.rec.KEM.Bytes()) || len(got.Holders) != 1 ||
		got.Holders[0].ID != holder.ID || !got.Holders[0].Addrs[0].Equal(holder.Addrs[0]) {
		t.Fatalf("record %+v", got)
	}
	if !bytes.Equal(got.MailboxID(), o.rec.MailboxID()) || len(got.MailboxID()) != MailboxIDLen {
		t.Fatal("mailbox id differs")
	}
}

func TestRecordRefusesForgery(t *testing.T) {
	o := newOwner(t)
	other := newOwner(t)
	// A record signed by other that names o as its peer.
	m := &pb.Record{PeerId: []byte(o.id), KemId: KEMID, KemPublicKey: other.rec.KEM.Bytes(), IssuedMs: 1}
	forged, err := sealEnvelope(other.key, recordDomain, recordCodec, m)
	if err != nil {
		t.Fatal(err)
	}
	// A letter envelope offered as a record (wrong domain).
	letter, err := sealEnvelope(o.key, letterDomain, letterCodec, &pb.Letter{})
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(o.rec.Envelope)
	flipped[len(flipped)/2] ^= 1
	for name, b := range map[string][]byte{"other signer": forged, "letter domain": letter, "bit flip": flipped,
		"empty": nil, "oversize": make([]byte, MaxRecordSize+1)} {
		if _, err := OpenRecord(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSealOpen(t *testing.T) {
	alice, carol, mallory := newOwner(t), newOwner(t), newOwner(t)
	carolKEM, err := DeriveKEMKey(carol.key)
	if err != nil {
		t.Fatal(err)
	}
	note := &pb.Note{Id: bytes.Repeat([]byte{7}, 16), Text: "hi carol", Nick: "alice", SentAtMs: time.Now().UnixMilli(), Seq: 3}
	sealed, err := Seal(alice.key, alice.rec.Envelope, carol.rec, note)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(sealed, carolKEM, carol.id)
	if err != nil {
		t.Fatal(err)
	}
	if l.From != alice.id || l.Note.GetText() != "hi carol" || l.Note.GetSeq() != 3 || l.SenderRecord.Peer != alice.id {
		t.Fatalf("letter %+v", l)
	}
	malloryKEM, err := DeriveKEMKey(mallory.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(sealed, malloryKEM, mallory.id); !errors.Is(err, ErrUndecryptable) {
		t.Fatalf("opened by another key: %v", err)
	}
	// Every single-byte change is refused.
	for i := 0; i < len(sealed); i += 97 {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x40
		if _, err := Open(bad, carolKEM, carol.id); err == nil {
			t.Fatalf("tampered byte %d accepted", i)
		}
	}
	if _, err := Open(sealed[:len(sealed)-1], carolKEM, carol.id); err == nil {
		t.Fatal("truncated seal accepted")
	}
	// Mallory seals a note claiming alice's record: the signer is mallory,
	// the record alice's: refused.
	forged, err := Seal(mallory.key, alice.rec.Envelope, carol.rec, note)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(forged, carolKEM, carol.id); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("letter with another peer's record: %v", err)
	}
	// A letter for bob, sealed to carol's key, is not for carol.
	bob := newOwner(t)
	misaddressed := &Record{Peer: bob.id, KEM: carol.rec.KEM}
	s2, err := Seal(alice.key, alice.rec.Envelope, misaddressed, note)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s2, carolKEM, carol.id); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("letter to bob opened by carol: %v", err)
	}
}

func TestKEMKeyIsStable(t *testing.T) {
	key := testnet.NewKey(t)
	a, err := DeriveKEMKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DeriveKEMKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.PublicKey().Bytes(), b.PublicKey().Bytes()) {
		t.Fatal("derived KEM keys differ")
	}
	if len(a.PublicKey().Bytes()) != 1216 {
		t.Fatalf("KEM public key of %d bytes", len(a.PublicKey().Bytes()))
	}
}
