package rooms

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/rooms/pb"
)

// roomVectors is docs/vectors/rooms.json: the derivations and encodings of
// the rooms protocol (docs/PROTOCOL.md, "Rooms protocol"), with fixed keys
// and nonces. PARLEY_UPDATE_VECTORS=1 rewrites it from the code.
type roomVectors struct {
	Comment      string              `json:"comment"`
	Names        []roomNameVector    `json:"room_names"`
	PrivateRooms []privateRoomVector `json:"private_rooms"`
	Passphrases  []passphraseVector  `json:"passphrases"`
	Invites      []inviteVector      `json:"invites"`
	BadInvites   []string            `json:"invalid_invites"`
	Envelopes    []envelopeVector    `json:"envelopes"`
	Seals        []sealVector        `json:"seals"`
}

type roomNameVector struct {
	Input     string `json:"input"`
	Canonical string `json:"canonical,omitempty"`
	Topic     string `json:"public_topic,omitempty"`
	Invalid   bool   `json:"invalid,omitempty"`
}

type privateRoomVector struct {
	KeyHex     string `json:"key_hex"`
	Name       string `json:"name"`
	Topic      string `json:"topic"`
	Rendezvous string `json:"rendezvous"`
	SealKeyHex string `json:"seal_key_hex"`
}

type passphraseVector struct {
	Name       string `json:"name"`
	Passphrase string `json:"passphrase"`
	KeyHex     string `json:"key_hex"`
}

type inviteVector struct {
	KeyHex string `json:"key_hex"`
	Name   string `json:"name"`
	Invite string `json:"invite"`
}

type envelopeVector struct {
	Kind     int32  `json:"kind"`
	IDHex    string `json:"id_hex"`
	Nick     string `json:"nick"`
	SentAtMs int64  `json:"sent_at_ms"`
	Text     string `json:"text,omitempty"`
	Leaving  bool   `json:"leaving,omitempty"`
	Hex      string `json:"protobuf_hex"`
}

type sealVector struct {
	KeyHex        string `json:"room_key_hex"`
	Name          string `json:"name"`
	Topic         string `json:"topic"`
	FromHex       string `json:"from_hex"`
	NonceHex      string `json:"nonce_hex"`
	PlaintextHex  string `json:"envelope_hex"`
	ADHex         string `json:"ad_hex"`
	CiphertextHex string `json:"ciphertext_hex"`
	SealedHex     string `json:"sealed_protobuf_hex"`
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// vectorAuthor is a fixed Ed25519 peer ID (identity multihash of the
// public key 0x00..0x1f): the bytes of a GossipSub `from`.
func vectorAuthor(t *testing.T) peer.ID {
	t.Helper()
	b := append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, seq(32, 0)...)
	id, err := peer.IDFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestVectorsRooms(t *testing.T) {
	got := roomVectors{Comment: "Rooms protocol vectors: see docs/PROTOCOL.md, Rooms protocol §2, §3, §5, §9. " +
		"Hex is lowercase; keys 0x00..0x1f and nonces are fixed for the vectors only."}
	for _, in := range []string{"lobby", "Lobby", "go-dev_2.0", "ΣΑΣ", "σας", "İstanbul", "Straße", "ＬＯＢＢＹ",
		"ｶﾀｶﾅ", "Москва", "cafe\u0301", "x²", "Ꭰꭰ", "two words", "-dash", "a/b", "a:b", "ab\u200bc", "ab\u3164c",
		"parley-invite:x", "", "abcdefghijklmnopqrstuvwxyz0123456", "\u0378"} {
		v := roomNameVector{Input: in}
		if n, err := NormalizeName(in); err == nil {
			v.Canonical, v.Topic = n, PublicTopicPrefix+n
		} else if errors.Is(err, ErrInvalidName) {
			v.Invalid = true
		} else {
			t.Fatalf("NormalizeName(%q): %v", in, err)
		}
		got.Names = append(got.Names, v)
	}
	key := seq(KeySize, 0)
	for _, name := range []string{"room", "σασ", "i\u0307stanbul", "strasse"} {
		k, err := deriveKeys(key, name)
		if err != nil {
			t.Fatal(err)
		}
		got.PrivateRooms = append(got.PrivateRooms, privateRoomVector{hex.EncodeToString(key), name, k.topic, k.rendezvous, hex.EncodeToString(k.seal[:])})
		inv, err := EncodeInvite(name, key)
		if err != nil {
			t.Fatal(err)
		}
		got.Invites = append(got.Invites, inviteVector{hex.EncodeToString(key), name, inv})
		if n, kk, err := DecodeInvite(inv); err != nil || n != name || !bytes.Equal(kk, key) {
			t.Fatalf("DecodeInvite(EncodeInvite(%q)) = %q, %x, %v", name, n, kk, err)
		}
	}
	for _, pv := range []struct{ name, pass string }{{"room", "correct horse battery staple"}, {"σασ", "ΣΑΣ σας σασ passphrase"}} {
		k, err := passphraseKey(pv.name, pv.pass)
		if err != nil {
			t.Fatal(err)
		}
		got.Passphrases = append(got.Passphrases, passphraseVector{pv.name, pv.pass, hex.EncodeToString(k)})
	}
	good := got.Invites[0].Invite
	got.BadInvites = []string{
		good[:len(good)-1] + "n", // check damaged
		good + "=",               // padding
		" " + good,               // white space
		"Parley-invite:" + good[len(InvitePrefix):], // prefix case
		rawInvite(key, "\u03c3\u03b1\u03c2"),        // "σας": not canonical
	}
	for _, bad := range got.BadInvites {
		if _, _, err := DecodeInvite(bad); !errors.Is(err, ErrInvalidInvite) {
			t.Fatalf("DecodeInvite(%q) = %v, want ErrInvalidInvite", bad, err)
		}
	}
	sent := time.UnixMilli(1767225600000) // 2026-01-01T00:00:00Z
	for _, e := range []envelope{
		{kind: pb.Kind_KIND_TEXT, nick: "alice", text: "hello"},
		{kind: pb.Kind_KIND_TEXT, nick: "Ｓａｍ  Σας", text: "γειά σας 👋\nline two"},
		{kind: pb.Kind_KIND_PRESENCE, nick: "alice"},
		{kind: pb.Kind_KIND_PRESENCE, nick: "alice", leaving: true},
	} {
		copy(e.id[:], seq(idSize, 0xa0))
		e.sentAt = sent
		b, err := e.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if d, v := decodeEnvelope(b); v.reason != reasonOK || d.text != e.text || d.nick != e.nick || d.leaving != e.leaving {
			t.Fatalf("decodeEnvelope of %+v: %+v, %+v", e, d, v)
		}
		got.Envelopes = append(got.Envelopes, envelopeVector{int32(e.kind), hex.EncodeToString(e.id[:]), e.nick, sent.UnixMilli(), e.text, e.leaving, hex.EncodeToString(b)})
	}
	from := vectorAuthor(t)
	for _, name := range []string{"room", "σασ"} {
		k, err := deriveKeys(key, name)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := hex.DecodeString(got.Envelopes[1].Hex)
		if err != nil {
			t.Fatal(err)
		}
		nonce := seq(chacha20poly1305.NonceSizeX, 0x40)
		aead, err := chacha20poly1305.NewX(k.seal[:])
		if err != nil {
			t.Fatal(err)
		}
		ct := aead.Seal(nil, nonce, pt, sealAD(k.topic, from))
		if opened, err := open(&k, from, nonce, ct); err != nil || !bytes.Equal(opened, pt) {
			t.Fatalf("open of the vector: %v", err)
		}
		sealed, err := proto.Marshal(&pb.Sealed{Nonce: nonce, Ciphertext: ct})
		if err != nil {
			t.Fatal(err)
		}
		got.Seals = append(got.Seals, sealVector{hex.EncodeToString(key), name, k.topic, hex.EncodeToString([]byte(from)),
			hex.EncodeToString(nonce), hex.EncodeToString(pt), hex.EncodeToString(sealAD(k.topic, from)), hex.EncodeToString(ct), hex.EncodeToString(sealed)})
	}
	checkRoomVectors(t, got)
}

// rawInvite encodes an invite without checking the name.
func rawInvite(key []byte, name string) string {
	raw := append([]byte{inviteVersion}, key...)
	raw = append(raw, byte(len(name)))
	raw = append(raw, name...)
	raw = append(raw, inviteCheck(raw)...)
	return InvitePrefix + inviteEncoding.EncodeToString(raw)
}

func checkRoomVectors(t *testing.T, got roomVectors) {
	t.Helper()
	path := filepath.Join("..", "docs", "vectors", "rooms.json")
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
