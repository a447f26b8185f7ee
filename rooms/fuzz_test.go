package rooms

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/rooms/pb"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"
)

// fuzzRooms returns a service with just enough state to validate, and a
// public and a private room on it.
func fuzzRooms(tb testing.TB) (*Service, *room, *room) {
	tb.Helper()
	s := &Service{
		cfg:    Config{MaxClockSkew: DefaultMaxClockSkew},
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		self:   "self",
		replay: newReplayGuard(1 << 16),
		limits: newLimiters(rate.Inf, 1, 1<<16),
	}
	pub := newRoom("pub")
	pub.topicName = PublicTopicPrefix + "pub"
	priv := newRoom("priv")
	keys, err := deriveKeys(fixedKey, "priv")
	if err != nil {
		tb.Fatal(err)
	}
	priv.private, priv.key, priv.keys, priv.topicName = true, fixedKey, keys, keys.topic
	return s, pub, priv
}

const fuzzAuthor = peer.ID("\x00\x24\x08\x01\x12\x20fuzz-author-key-bytes-----------")

// FuzzValidate runs the whole topic validator (open, decode, checks, clock,
// replay, rate) on arbitrary data, for a public and a private room.
func FuzzValidate(f *testing.F) {
	_, _, priv := fuzzRooms(f)
	env := wireEnvelope(f, nil)
	f.Add(env, false)
	nonce, ct, err := seal(&priv.keys, fuzzAuthor, env)
	if err != nil {
		f.Fatal(err)
	}
	sealed, _ := proto.Marshal(&pb.Sealed{Nonce: nonce, Ciphertext: ct})
	f.Add(sealed, true)
	f.Add([]byte{}, true)
	f.Add([]byte{0x0a, 0x18}, true)
	// A presence with a peer record (the record cannot be the fuzz author's:
	// its key is not real, so the record check must refuse it).
	f.Add(wireEnvelope(f, func(e *envelope) {
		k, id := keyID(f)
		e.kind, e.text = pb.Kind_KIND_PRESENCE, ""
		e.record = sealRecord(f, k, id, nil)
	}), false)
	f.Fuzz(func(t *testing.T, data []byte, private bool) {
		s, pub, priv := fuzzRooms(t)
		r := pub
		if private {
			r = priv
		}
		validate := s.validator(r)
		msg := func() *pubsub.Message {
			return &pubsub.Message{
				Message:      &pubsubpb.Message{From: []byte(fuzzAuthor), Data: data, Signature: []byte{1}, Topic: &r.topicName},
				ReceivedFrom: "relay",
			}
		}
		m := msg()
		res := validate(context.Background(), "relay", m)
		if res != pubsub.ValidationAccept {
			if m.ValidatorData != nil {
				t.Fatal("refused message carries validator data")
			}
			return
		}
		in, ok := m.ValidatorData.(*incoming)
		if !ok || in.author != fuzzAuthor {
			t.Fatalf("accepted without incoming data: %#v", m.ValidatorData)
		}
		checkAccepted(t, in.env)
		if len(data) > MaxMessageSize {
			t.Fatal("accepted oversize data")
		}
		if again := validate(context.Background(), "relay", msg()); again != pubsub.ValidationIgnore {
			t.Fatalf("replay got %v", again)
		}
	})
}
