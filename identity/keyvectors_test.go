package identity

import (
	"encoding/hex"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// identityVectors is docs/vectors/identity.json: peer IDs, fingerprints
// and safety numbers (docs/PROTOCOL.md, "Identities") of Ed25519 keys made
// from fixed 32-byte seeds. PARLEY_UPDATE_VECTORS=1 rewrites it.
type identityVectors struct {
	Comment       string               `json:"comment"`
	Keys          []identityKeyVector  `json:"keys"`
	SafetyNumbers []safetyNumberVector `json:"safety_numbers"`
}

type identityKeyVector struct {
	SeedHex string `json:"ed25519_seed_hex"`
	// PublicKeyProtobufHex is the libp2p protobuf encoding of the public
	// key (K of the safety number).
	PublicKeyProtobufHex string `json:"public_key_protobuf_hex"`
	PeerIDHex            string `json:"peer_id_hex"`
	PeerID               string `json:"peer_id"`
	Fingerprint          string `json:"fingerprint"`
	ShortFingerprint     string `json:"short_fingerprint"`
	// SafetyHalf is the 30 digits this key contributes.
	SafetyHalf string `json:"safety_half"`
}

type safetyNumberVector struct {
	A            string `json:"peer_id_a"`
	B            string `json:"peer_id_b"`
	SafetyNumber string `json:"safety_number"`
}

func TestVectorsIdentity(t *testing.T) {
	got := identityVectors{Comment: "Identities (docs/PROTOCOL.md, Direct messages, Identities): Ed25519 keys from " +
		"the seeds given; fingerprint = base32(SHA-256(\"parley-fingerprint-v1\\0\" || peer ID bytes)[:10]) in groups of 4; " +
		"safety number = the two 30-digit halves sorted and concatenated, 12 groups of 5. The same number whatever " +
		"the order of a and b."}
	var ids []peer.ID
	var pubs []crypto.PubKey
	for _, seed := range []byte{1, 2, 3, 0xff} {
		sk := seededKey(t, seed)
		pub := sk.GetPublic()
		enc, err := crypto.MarshalPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		half, err := safetyHalf(pub)
		if err != nil {
			t.Fatal(err)
		}
		seedBytes := make([]byte, 32)
		for i := range seedBytes {
			seedBytes[i] = seed
		}
		got.Keys = append(got.Keys, identityKeyVector{
			SeedHex: hex.EncodeToString(seedBytes), PublicKeyProtobufHex: hex.EncodeToString(enc),
			PeerIDHex: hex.EncodeToString([]byte(id)), PeerID: id.String(),
			Fingerprint: Fingerprint(id), ShortFingerprint: ShortFingerprint(id), SafetyHalf: half,
		})
		ids, pubs = append(ids, id), append(pubs, pub)
	}
	for _, p := range [][2]int{{0, 1}, {1, 0}, {0, 2}, {1, 3}, {2, 2}} {
		sn, err := PeerSafetyNumber(ids[p[0]], ids[p[1]])
		if err != nil {
			t.Fatal(err)
		}
		if sk, err := SafetyNumber(pubs[p[0]], pubs[p[1]]); err != nil || sk != sn {
			t.Fatalf("SafetyNumber and PeerSafetyNumber differ: %q, %q, %v", sk, sn, err)
		}
		got.SafetyNumbers = append(got.SafetyNumbers, safetyNumberVector{ids[p[0]].String(), ids[p[1]].String(), sn})
	}
	checkVectors(t, "identity.json", got)
}
