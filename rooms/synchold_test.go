package rooms

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
)

// TestSyncHeldItemsUnchecked: an item this node holds already (an older
// or the same presence of its author, a line it has) is dropped without
// its signature checked, and takes nothing in even when forged; an item
// it does not hold is verified in full, and a forged one is a lie.
func TestSyncHeldItemsUnchecked(t *testing.T) {
	ctx := ctxT(t)
	n := newNode(t, "ann", nil)
	if err := n.svc.Join(ctx, "pub"); err != nil {
		t.Fatal(err)
	}
	pub, _ := n.svc.joined("pub")
	author := testnet.NewKey(t)
	aid := peerIDOf(t, author)
	forger := testnet.NewKey(t)
	now := time.Now()
	signed := func(key crypto.PrivKey, kind pb.Kind, sentAt time.Time, text string, id *[idSize]byte) []byte {
		t.Helper()
		env, err := newEnvelope(kind, "mallory", sentAt)
		if err != nil {
			t.Fatal(err)
		}
		env.text = text
		if id != nil {
			env.id = *id
		}
		data, err := env.marshal()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := signMessage(key, aid, pub.topicName, data)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	members := pb.SyncSet_SYNC_SET_MEMBERS
	if got, err := n.svc.acceptSynced(pub, members, [][]byte{signed(author, pb.Kind_KIND_PRESENCE, now.Add(-10*time.Second), "", nil)}, nil); err != nil || got != 1 {
		t.Fatalf("presence: %d, %v", got, err)
	}
	older := signed(forger, pb.Kind_KIND_PRESENCE, now.Add(-20*time.Second), "", nil)
	if got, err := n.svc.acceptSynced(pub, members, [][]byte{older}, nil); err != nil || got != 0 {
		t.Fatalf("older presence, forged: %d, %v (want dropped unchecked)", got, err)
	}
	if _, err := n.svc.acceptSynced(pub, members, [][]byte{older}, map[[itemIDSize]byte]bool{}); !errors.Is(err, errSyncLie) {
		t.Fatalf("older presence, not asked for: %v", err)
	}
	if got, err := n.svc.acceptSynced(pub, members, [][]byte{signed(forger, pb.Kind_KIND_PRESENCE, now.Add(-5*time.Second), "", nil)}, nil); !errors.Is(err, errSyncLie) || got != 0 {
		t.Fatalf("newer presence, forged: %d, %v", got, err)
	}

	history := pb.SyncSet_SYNC_SET_HISTORY
	var id [idSize]byte
	id[0] = 7
	if got, err := n.svc.acceptSynced(pub, history, [][]byte{signed(author, pb.Kind_KIND_TEXT, now, "hello", &id)}, nil); err != nil || got != 1 {
		t.Fatalf("line: %d, %v", got, err)
	}
	if got, err := n.svc.acceptSynced(pub, history, [][]byte{signed(forger, pb.Kind_KIND_TEXT, now, "changed", &id)}, nil); err != nil || got != 0 {
		t.Fatalf("held line, forged: %d, %v (want dropped unchecked)", got, err)
	}
	hist, err := n.svc.History("pub", 10)
	if err != nil || len(hist) != 1 || hist[0].Text != "hello" {
		t.Fatalf("history %+v, %v", hist, err)
	}
}

// TestPeerRecordReused: a node signs its peer record once per set of
// addresses, and a member checks a record it verified already only again
// after PeerRecordTTL/2.
func TestPeerRecordReused(t *testing.T) {
	ctx := ctxT(t)
	var own atomic.Pointer[[]ma.Multiaddr]
	first := addrs(t, "/ip4/127.0.0.1/tcp/4001")
	own.Store(&first)
	n := newNode(t, "ann", func(c *Config) { c.testHookOwnAddrs = func() []ma.Multiaddr { return *own.Load() } })
	if err := n.svc.Join(ctx, "pub"); err != nil {
		t.Fatal(err)
	}
	r, _ := n.svc.joined("pub")
	a, err := n.svc.ownPeerRecord(r)
	if err != nil || a == nil {
		t.Fatalf("record %x, %v", a, err)
	}
	b, _ := n.svc.ownPeerRecord(r)
	if !bytes.Equal(a, b) {
		t.Fatal("a new record for the same addresses")
	}
	second := addrs(t, "/ip4/127.0.0.1/tcp/4002")
	own.Store(&second)
	c, _ := n.svc.ownPeerRecord(r)
	if bytes.Equal(a, c) {
		t.Fatal("the old record after the addresses changed")
	}
	if _, pr, err := verifyPeerRecord(c, n.svc.self); err != nil || !pr.Addrs[0].Equal(second[0]) {
		t.Fatalf("new record: %v", err)
	}

	p := peer.ID("someone")
	now := time.Now()
	r.mu.Lock()
	r.member(p)
	r.mu.Unlock()
	if r.recordKnown(p, a, now) {
		t.Fatal("known before it was learned")
	}
	r.recordLearned(p, a, now)
	for _, tc := range []struct {
		rec  []byte
		at   time.Time
		want bool
	}{
		{a, now.Add(time.Minute), true},
		{c, now.Add(time.Minute), false},
		{a, now.Add(PeerRecordTTL / 2), false},
	} {
		if got := r.recordKnown(p, tc.rec, tc.at); got != tc.want {
			t.Errorf("recordKnown(%x…, +%v) = %v", tc.rec[:4], tc.at.Sub(now), got)
		}
	}
}
