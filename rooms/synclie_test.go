package rooms

import (
	"errors"
	"testing"
	"time"

	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

// TestSyncLiesRejected: items a lying member hands over in a session are
// each refused, and nothing is stored or shown.
func TestSyncLiesRejected(t *testing.T) {
	ctx := ctxT(t)
	n := newNode(t, "ann", nil)
	if _, err := n.svc.JoinInvite(ctx, mustInvite(t, "priv")); err != nil {
		t.Fatal(err)
	}
	if err := n.svc.Join(ctx, "pub"); err != nil {
		t.Fatal(err)
	}
	priv, _ := n.svc.joined("priv")
	pub, _ := n.svc.joined("pub")
	author := testnet.NewKey(t)
	aid := peerIDOf(t, author)
	other := testnet.NewKey(t)
	now := time.Now()
	text := func(r *room, sentAt time.Time, mut func(*envelope)) []byte {
		env, err := newEnvelope(pb.Kind_KIND_TEXT, "mallory", sentAt)
		if err != nil {
			t.Fatal(err)
		}
		env.text = "hello"
		if mut != nil {
			mut(&env)
		}
		plain, _ := env.marshal()
		if !r.private {
			return plain
		}
		nonce, ct, err := seal(&r.keys, aid, plain)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := proto.Marshal(&pb.Sealed{Nonce: nonce, Ciphertext: ct})
		return b
	}
	sign := func(r *room, data []byte) []byte {
		raw, err := signMessage(author, aid, r.topicName, data)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	otherKeys, _ := deriveKeys(testKey(0x11), "priv")
	for _, tc := range []struct {
		name string
		r    *room
		set  pb.SyncSet
		raw  func() []byte
	}{
		{"forged signature", pub, pb.SyncSet_SYNC_SET_HISTORY, func() []byte {
			raw, _ := signMessage(other, aid, pub.topicName, text(pub, now, nil))
			return raw
		}},
		{"altered after signing", pub, pb.SyncSet_SYNC_SET_HISTORY, func() []byte {
			var m pubsubpb.Message
			_ = proto.Unmarshal(sign(pub, text(pub, now, nil)), &m)
			m.Data = text(pub, now, func(e *envelope) { e.text = "changed" })
			b, _ := proto.Marshal(&m)
			return b
		}},
		{"another room", pub, pb.SyncSet_SYNC_SET_HISTORY, func() []byte { return sign(priv, text(pub, now, nil)) }},
		{"wrong room key", priv, pb.SyncSet_SYNC_SET_HISTORY, func() []byte {
			fake := &room{private: true, keys: otherKeys, topicName: priv.topicName}
			return sign(priv, text(fake, now, nil))
		}},
		{"bad nick", pub, pb.SyncSet_SYNC_SET_HISTORY, func() []byte { return sign(pub, text(pub, now, func(e *envelope) { e.nick = "" })) }},
		{"presence in history", pub, pb.SyncSet_SYNC_SET_HISTORY, func() []byte {
			return sign(pub, text(pub, now, func(e *envelope) { e.kind, e.text = pb.Kind_KIND_PRESENCE, "" }))
		}},
		{"garbage", pub, pb.SyncSet_SYNC_SET_HISTORY, func() []byte { return []byte{0xff, 0xff, 0x01} }},
		{"oversize", pub, pb.SyncSet_SYNC_SET_HISTORY, func() []byte { return make([]byte, maxSignedSize+1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := n.svc.acceptSynced(tc.r, tc.set, [][]byte{tc.raw()}, nil)
			if !errors.Is(err, errSyncLie) || got != 0 {
				t.Fatalf("accepted %d, err %v", got, err)
			}
		})
	}
	// Signed items out of the window by this node's clock are not taken
	// in, but they are not lies either (the clock may be this node's
	// error, or an honest peer's): skipped, the session goes on.
	for _, tc := range []struct {
		name   string
		sentAt time.Time
	}{{"future", now.Add(time.Hour)}, {"older than the window", now.Add(-DefaultSyncWindow - time.Hour)}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := n.svc.acceptSynced(pub, pb.SyncSet_SYNC_SET_HISTORY, [][]byte{sign(pub, text(pub, tc.sentAt, nil))}, nil)
			if err != nil || got != 0 {
				t.Fatalf("accepted %d, err %v; want 0 skipped", got, err)
			}
		})
	}
	// A good item, but not one that was asked for.
	good := sign(pub, text(pub, now, nil))
	if got, err := n.svc.acceptSynced(pub, pb.SyncSet_SYNC_SET_HISTORY, [][]byte{good}, map[[itemIDSize]byte]bool{}); !errors.Is(err, errSyncLie) || got != 0 {
		t.Fatalf("unasked item: %d, %v", got, err)
	}
	// The same, asked for: stored and shown once, even when sent twice.
	if got, err := n.svc.acceptSynced(pub, pb.SyncSet_SYNC_SET_HISTORY, [][]byte{good, good}, nil); err != nil || got != 1 {
		t.Fatalf("good item: %d, %v", got, err)
	}
	if msgs := n.roomMessages("pub", "hello"); len(msgs) != 1 || !msgs[0].CaughtUp || msgs[0].From != aid {
		t.Fatalf("shown %+v", msgs)
	}
	if msgs := n.roomMessages("priv", ""); len(msgs) != 0 {
		t.Fatalf("lies shown: %+v", msgs)
	}
	hist, _ := n.svc.History("pub", 100)
	if len(hist) != 1 {
		t.Fatalf("history holds %d", len(hist))
	}
}

// FuzzSyncItem feeds arbitrary bytes to the verification of a synced
// item: no panic, and nothing unsigned passes.
func FuzzSyncItem(f *testing.F) {
	key := testnet.NewKey(f)
	raw, err := signMessage(key, peerIDOf(f, key), "parley/room/1/public/x", []byte{1, 2, 3})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sm, err := verifySigned(data)
		if err != nil {
			return
		}
		if len(sm.raw) != len(data) || sm.author == "" {
			t.Fatal("verified without an author")
		}
	})
}

func peerIDOf(t testing.TB, k crypto.PrivKey) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
