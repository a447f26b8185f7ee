package rooms

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/rooms/pb"
)

// syncVectors is docs/vectors/sync.json: the derivations and frames of
// the room sync (docs/PROTOCOL.md, Rooms protocol §13).
// PARLEY_UPDATE_VECTORS=1 rewrites it from the code.
type syncVectors struct {
	Comment      string              `json:"comment"`
	Keys         []vectorKey         `json:"keys"`
	Signed       []signedMsgVector   `json:"signed_messages"`
	ItemIDs      []itemIDVector      `json:"item_ids"`
	Fingerprints []fingerprintVector `json:"fingerprints"`
	Proofs       []syncProofVector   `json:"proofs"`
	Recon        reconVector         `json:"reconciliation"`
}

// vectorKey is an Ed25519 identity made from a 32-byte seed.
type vectorKey struct {
	SeedHex   string `json:"ed25519_seed_hex"`
	PeerIDHex string `json:"peer_id_hex"`
	PeerID    string `json:"peer_id"`
}

// signedMsgVector: a GossipSub message as its author signs it (StrictSign,
// rooms §1), the form of a sync item.
type signedMsgVector struct {
	Topic     string `json:"topic"`
	FromHex   string `json:"from_hex"`
	SeqnoHex  string `json:"seqno_hex"`
	DataHex   string `json:"data_hex"`
	SignedHex string `json:"signed_bytes_hex"`
	SigHex    string `json:"signature_hex"`
	Message   string `json:"message_protobuf_hex"`
}

type itemIDVector struct {
	AuthorHex     string `json:"author_peer_id_hex"`
	EnvelopeIDHex string `json:"envelope_id_hex"`
	ItemIDHex     string `json:"item_id_hex"`
}

type syncItemVector struct {
	SentAtMs uint64 `json:"sent_at_ms"`
	IDHex    string `json:"item_id_hex"`
}

type fingerprintVector struct {
	Items       []syncItemVector `json:"items"`
	Fingerprint string           `json:"fingerprint_hex"`
}

type syncProofVector struct {
	RoomKeyHex    string `json:"room_key_hex"`
	SyncKeyHex    string `json:"sync_key_hex"`
	Topic         string `json:"topic"`
	Set           int32  `json:"set"`
	Initiator     string `json:"initiator_peer_id"`
	Responder     string `json:"responder_peer_id"`
	NonceIHex     string `json:"initiator_nonce_hex"`
	NonceRHex     string `json:"responder_nonce_hex"`
	SinceMs       int64  `json:"since_ms"`
	HelloHex      string `json:"hello_frame_hex"`
	ResponderMAC  string `json:"responder_mac_hex"`
	ChallengeHex  string `json:"challenge_frame_hex"`
	InitiatorMAC  string `json:"initiator_mac_hex"`
	FirstRoundHex string `json:"first_round_frame_hex"`
}

// reconVector is a whole reconciliation between two sets: the frames
// each side sends, in order, and what the initiator learns.
type reconVector struct {
	Comment   string           `json:"comment"`
	Initiator []syncItemVector `json:"initiator_items"`
	Responder []syncItemVector `json:"responder_items"`
	Rounds    []reconRound     `json:"rounds"`
	Want      []string         `json:"initiator_wants_hex"`
	Has       []string         `json:"initiator_has_hex"`
}

type reconRound struct {
	From  string `json:"from"`
	Frame string `json:"sync_frame_protobuf_hex"`
}

// seededKey returns the Ed25519 identity of a 32-byte seed of seed bytes.
func seededKey(t *testing.T, seed byte) (crypto.PrivKey, peer.ID, vectorKey) {
	t.Helper()
	s := bytes.Repeat([]byte{seed}, ed25519.SeedSize)
	sk, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(s))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return sk, id, vectorKey{hex.EncodeToString(s), hex.EncodeToString([]byte(id)), id.String()}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itemVectors(items []item) []syncItemVector {
	out := []syncItemVector{}
	for _, it := range items {
		out = append(out, syncItemVector{it.ts, hex.EncodeToString(it.id[:])})
	}
	return out
}

func hexIDs(ids [][itemIDSize]byte) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, hex.EncodeToString(id[:]))
	}
	return out
}

func TestVectorsSync(t *testing.T) {
	got := syncVectors{Comment: "Room sync (docs/PROTOCOL.md, Rooms protocol §13): item IDs, range fingerprints, the " +
		"key proofs of a private room and a whole reconciliation. Keys and nonces are fixed for the vectors only; hex " +
		"is lowercase; frames in proofs are uvarint(len) || protobuf."}
	ska, a, ka := seededKey(t, 1)
	_, b, kb := seededKey(t, 2)
	got.Keys = []vectorKey{ka, kb}

	// A signed GossipSub message (the form of every sync item).
	topic := PublicTopicPrefix + "lobby"
	env := envelope{kind: pb.Kind_KIND_TEXT, nick: "alice", text: "hello"}
	copy(env.id[:], seq(idSize, 0xa0))
	env.sentAt = time.UnixMilli(1767225600000)
	data, err := env.marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := &pubsubpb.Message{From: []byte(a), Data: data, Seqno: seq(8, 0x01), Topic: &topic}
	unsigned := append([]byte(signPrefix), mustMarshal(t, m)...)
	m.Signature, err = ska.Sign(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	raw := mustMarshal(t, m)
	if sm, err := verifySigned(raw); err != nil || sm.author != a {
		t.Fatalf("verifySigned of the vector: %v", err)
	}
	got.Signed = append(got.Signed, signedMsgVector{topic, hex.EncodeToString(m.From), hex.EncodeToString(m.Seqno),
		hex.EncodeToString(data), hex.EncodeToString(unsigned), hex.EncodeToString(m.Signature), hex.EncodeToString(raw)})

	var envIDs [][idSize]byte
	for i := range 3 {
		var e [idSize]byte
		copy(e[:], seq(idSize, byte(0xa0+16*i)))
		envIDs = append(envIDs, e)
	}
	for _, p := range []peer.ID{a, b} {
		for _, e := range envIDs[:2] {
			id := itemID(p, e)
			got.ItemIDs = append(got.ItemIDs, itemIDVector{hex.EncodeToString([]byte(p)), hex.EncodeToString(e[:]), hex.EncodeToString(id[:])})
		}
	}

	mkItems := func(n int, skip func(int) bool) []item {
		var out []item
		for k := range n {
			if skip != nil && skip(k) {
				continue
			}
			var e [idSize]byte
			e[0], e[1] = byte(k>>8), byte(k)
			out = append(out, item{ts: 1767225600000 + uint64(k/2)*1000, id: itemID(a, e)})
		}
		return out
	}
	for _, set := range [][]item{nil, mkItems(1, nil), mkItems(3, nil), mkItems(40, nil)} {
		r := newReconciler(set, false) // sorts
		fp := fingerprint(r.items)
		got.Fingerprints = append(got.Fingerprints, fingerprintVector{itemVectors(r.items), hex.EncodeToString(fp[:])})
	}

	// The key proofs of a private room.
	key := seq(KeySize, 0)
	k, err := deriveKeys(key, "room")
	if err != nil {
		t.Fatal(err)
	}
	sk, err := deriveSyncKey(key)
	if err != nil {
		t.Fatal(err)
	}
	hello := &pb.SyncHello{Topic: k.topic, Set: pb.SyncSet_SYNC_SET_HISTORY, Nonce: seq(syncNonceSize, 0x60), SinceMs: 1767225600000 - 7*24*3600*1000}
	nonceR := seq(syncNonceSize, 0x80)
	macR := syncMAC(sk, macResponder, hello, nonceR, a, b)
	macI := syncMAC(sk, macInitiator, hello, nonceR, a, b)
	initial := newReconciler(mkItems(3, nil), true).initial()
	got.Proofs = append(got.Proofs, syncProofVector{
		RoomKeyHex: hex.EncodeToString(key), SyncKeyHex: hex.EncodeToString(sk), Topic: k.topic, Set: int32(hello.Set),
		Initiator: a.String(), Responder: b.String(), NonceIHex: hex.EncodeToString(hello.Nonce), NonceRHex: hex.EncodeToString(nonceR),
		SinceMs: hello.SinceMs, HelloHex: frameOf(t, hello), ResponderMAC: hex.EncodeToString(macR),
		ChallengeHex: frameOf(t, &pb.SyncChallenge{Nonce: nonceR, Mac: macR}), InitiatorMAC: hex.EncodeToString(macI),
		FirstRoundHex: frameOf(t, &pb.SyncFrame{Mac: macI, Ranges: rangesToWire(initial)}),
	})

	// A reconciliation of about 600 items each: 9 only at the initiator,
	// 8 only at the responder.
	iItems := mkItems(605, func(k int) bool { return k%97 == 3 || k == 600 })
	rItems := mkItems(605, func(k int) bool { return k%101 == 7 || k >= 602 })
	ri, rr := newReconciler(iItems, true), newReconciler(rItems, false)
	got.Recon.Comment = "items: sent_at and item ID (the items of the author of keys[0] with envelope IDs 00 k 00...); " +
		"rounds alternate, initiator first, until the initiator's answer would be only SKIP ranges (not sent)."
	got.Recon.Initiator, got.Recon.Responder = itemVectors(ri.items), itemVectors(rr.items)
	round := ri.initial()
	for n := 0; ; n++ {
		if n >= MaxSyncRounds {
			t.Fatal("reconciliation did not settle")
		}
		got.Recon.Rounds = append(got.Recon.Rounds, reconRound{"initiator", hex.EncodeToString(mustMarshal(t, &pb.SyncFrame{Ranges: rangesToWire(round)}))})
		in, err := rangesFromWire(rangesToWire(round))
		if err != nil {
			t.Fatal(err)
		}
		reply, _, err := rr.process(in)
		if err != nil {
			t.Fatal(err)
		}
		got.Recon.Rounds = append(got.Recon.Rounds, reconRound{"responder", hex.EncodeToString(mustMarshal(t, &pb.SyncFrame{Ranges: rangesToWire(reply)}))})
		if in, err = rangesFromWire(rangesToWire(reply)); err != nil {
			t.Fatal(err)
		}
		var settled bool
		if round, settled, err = ri.process(in); err != nil {
			t.Fatal(err)
		}
		if settled {
			break
		}
	}
	got.Recon.Want, got.Recon.Has = hexIDs(ri.need), hexIDs(ri.have)
	if len(ri.need) != 8 || len(ri.have) != 9 {
		t.Fatalf("reconciliation found %d wanted, %d held, want 8 and 9", len(ri.need), len(ri.have))
	}
	checkVectorFile(t, "sync.json", got)
}

// frameOf is the uvarint-length-prefixed frame of m, in hex.
func frameOf(t *testing.T, m proto.Message) string {
	t.Helper()
	b := mustMarshal(t, m)
	var l []byte
	for x := uint64(len(b)); ; x >>= 7 {
		if x < 0x80 {
			l = append(l, byte(x))
			break
		}
		l = append(l, byte(x)|0x80)
	}
	return hex.EncodeToString(append(l, b...))
}

// checkVectorFile compares got with docs/vectors/name, or writes it when
// PARLEY_UPDATE_VECTORS=1.
func checkVectorFile[T any](t *testing.T, name string, got T) {
	t.Helper()
	path := filepath.Join("..", "docs", "vectors", name)
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if os.Getenv("PARLEY_UPDATE_VECTORS") == "1" {
		if err := os.WriteFile(path, b, 0o644); err != nil { // #nosec G306 -- documentation
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path) // #nosec G304 -- a fixed test path
	if err != nil {
		t.Fatalf("read %s (PARLEY_UPDATE_VECTORS=1 writes it): %v", path, err)
	}
	if !bytes.Equal(want, b) {
		t.Fatalf("%s does not match the code: the protocol changed, or the code did. "+
			"Compare with PARLEY_UPDATE_VECTORS=1 and git diff.", path)
	}
}
