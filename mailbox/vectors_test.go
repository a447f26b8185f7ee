package mailbox

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/mailbox/pb"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite testdata/vectors.json")

// vectors are the test vectors of docs/PROTOCOL.md, "Offline delivery".
type vectors struct {
	AliceSeed, CarolSeed, HolderSeed string // Ed25519 seeds, hex
	CarolKEMPublicKey                string // hex
	CarolRecord                      string // signed envelope, hex
	CarolMailboxID                   string // hex
	AliceRecord                      string
	Seal                             string // alice's note to carol, hex
	NoteID, NoteText                 string
	NoteSentAtMs                     int64
}

func seedKey(t *testing.T, seed byte) (crypto.PrivKey, string) {
	t.Helper()
	s := bytes.Repeat([]byte{seed}, 32)
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return k, hex.EncodeToString(s)
}

// TestVectors: the record is deterministic (Ed25519 signatures and the
// KEM key derivation are) and must come out byte for byte; the seal,
// made with a deterministic randomness source when the file was
// written, must open to the note.
func TestVectors(t *testing.T) {
	alice, aseed := seedKey(t, 1)
	carol, cseed := seedKey(t, 2)
	holder, hseed := seedKey(t, 3)
	hid, err := peer.IDFromPrivateKey(holder)
	if err != nil {
		t.Fatal(err)
	}
	issued := time.UnixMilli(1767225600000) // 2026-01-01T00:00:00Z
	holders := []peer.AddrInfo{{ID: hid, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/192.0.2.1/tcp/4747")}}}
	ck, err := DeriveKEMKey(carol)
	if err != nil {
		t.Fatal(err)
	}
	crec, err := SignRecord(carol, ck.PublicKey(), holders, issued)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := DeriveKEMKey(alice)
	if err != nil {
		t.Fatal(err)
	}
	arec, err := SignRecord(alice, ak.PublicKey(), holders, issued)
	if err != nil {
		t.Fatal(err)
	}
	note := &pb.Note{Id: bytes.Repeat([]byte{0xab}, 16), Text: "hello from the vectors", Nick: "alice", SentAtMs: issued.UnixMilli(), Seq: 1}
	path := filepath.Join("testdata", "vectors.json")
	if *updateVectors {
		cryptotest.SetGlobalRandom(t, 1)
		sealed, err := Seal(alice, arec.Envelope, crec, note)
		if err != nil {
			t.Fatal(err)
		}
		v := vectors{AliceSeed: aseed, CarolSeed: cseed, HolderSeed: hseed,
			CarolKEMPublicKey: hex.EncodeToString(ck.PublicKey().Bytes()), CarolRecord: hex.EncodeToString(crec.Envelope),
			CarolMailboxID: hex.EncodeToString(crec.MailboxID()), AliceRecord: hex.EncodeToString(arec.Envelope),
			Seal: hex.EncodeToString(sealed), NoteID: hex.EncodeToString(note.Id), NoteText: note.Text, NoteSentAtMs: note.SentAtMs}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path) // #nosec G304 -- a fixed test file
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(crec.Envelope); got != v.CarolRecord {
		t.Fatalf("carol's record differs from the vector:\n got %s\nwant %s", got, v.CarolRecord)
	}
	if got := hex.EncodeToString(crec.MailboxID()); got != v.CarolMailboxID {
		t.Fatalf("mailbox id %s, vector %s", got, v.CarolMailboxID)
	}
	if got := hex.EncodeToString(ck.PublicKey().Bytes()); got != v.CarolKEMPublicKey {
		t.Fatal("KEM public key differs from the vector")
	}
	sealed, err := hex.DecodeString(v.Seal)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(sealed, ck, crec.Peer)
	if err != nil {
		t.Fatalf("vector seal does not open: %v", err)
	}
	if l.From != arec.Peer || l.Note.Text != v.NoteText || hex.EncodeToString(l.Note.Id) != v.NoteID {
		t.Fatalf("vector seal opened to %+v", l)
	}
}
