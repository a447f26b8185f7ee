package rooms

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

const testTopic = PrivateTopicPrefix + "00112233445566778899aabbccddeeff"

type signer struct {
	key crypto.PrivKey
	id  peer.ID
}

func newSigner(t testing.TB) signer {
	t.Helper()
	k := testnet.NewKey(t)
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return signer{k, id}
}

// next signs a change that extends st (seq, prev, epoch filled in).
func (sg signer) next(t testing.TB, st *logState, op pb.MemberOp, subject peer.ID) change {
	t.Helper()
	w := &pb.MemberChange{Topic: st.topic, Op: op, Subject: []byte(subject), AtMs: time.Now().UnixMilli()}
	w.Seq, w.Prev = st.head()
	w.Seq++
	w.Epoch = st.epoch
	if op == pb.MemberOp_MEMBER_OP_REMOVE || op == pb.MemberOp_MEMBER_OP_ROTATE {
		w.Epoch++
		w.KeyCommit = bytes.Repeat([]byte{7}, commitSize)
	}
	c, err := signChange(sg.key, sg.id, w)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustApply(t testing.TB, st *logState, c change) {
	t.Helper()
	if err := st.apply(c); err != nil {
		t.Fatal(err)
	}
}

// TestForgedChangesRefused: changes not signed by a current admin,
// replayed, from an old epoch, for another room or altered are refused.
func TestForgedChangesRefused(t *testing.T) {
	admin, bob, carol, dave := newSigner(t), newSigner(t), newSigner(t), newSigner(t)
	st := newLogState(testTopic)
	mustApply(t, st, admin.next(t, st, pb.MemberOp_MEMBER_OP_CREATE, admin.id))
	mustApply(t, st, admin.next(t, st, pb.MemberOp_MEMBER_OP_ADD, bob.id))
	mustApply(t, st, admin.next(t, st, pb.MemberOp_MEMBER_OP_ADD, carol.id))
	oldAdd := st.changes[1]
	mustApply(t, st, admin.next(t, st, pb.MemberOp_MEMBER_OP_ROTATE, ""))
	removeCarol := admin.next(t, st, pb.MemberOp_MEMBER_OP_REMOVE, carol.id)
	mustApply(t, st, removeCarol)

	other := newLogState(PrivateTopicPrefix + "ffeeddccbbaa99887766554433221100")
	mustApply(t, other, admin.next(t, other, pb.MemberOp_MEMBER_OP_CREATE, admin.id))

	resign := func(sg signer, c change, mut func(*pb.MemberChange)) change {
		var w pb.MemberChange
		if err := proto.Unmarshal(c.signed.Change, &w); err != nil {
			t.Fatal(err)
		}
		mut(&w)
		out, err := signChange(sg.key, sg.id, &w)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := []struct {
		name string
		c    func() (change, error)
	}{
		{"signed by a member", func() (change, error) {
			return bob.next(t, st, pb.MemberOp_MEMBER_OP_ADD, dave.id), nil
		}},
		{"signed by the removed member (an admin of nothing)", func() (change, error) {
			return carol.next(t, st, pb.MemberOp_MEMBER_OP_ROTATE, ""), nil
		}},
		{"signed by a stranger", func() (change, error) {
			return dave.next(t, st, pb.MemberOp_MEMBER_OP_ADD_ADMIN, dave.id), nil
		}},
		{"replayed", func() (change, error) { return oldAdd, nil }},
		{"replayed removal", func() (change, error) { return removeCarol, nil }},
		{"old epoch", func() (change, error) {
			return resign(admin, admin.next(t, st, pb.MemberOp_MEMBER_OP_ROTATE, ""), func(w *pb.MemberChange) { w.Epoch = 2 }), nil
		}},
		{"skips an epoch", func() (change, error) {
			return resign(admin, admin.next(t, st, pb.MemberOp_MEMBER_OP_ROTATE, ""), func(w *pb.MemberChange) { w.Epoch = 5 }), nil
		}},
		{"wrong prev", func() (change, error) {
			return resign(admin, admin.next(t, st, pb.MemberOp_MEMBER_OP_ADD, dave.id), func(w *pb.MemberChange) { w.Prev = bytes.Repeat([]byte{1}, 32) }), nil
		}},
		{"another room", func() (change, error) {
			return resign(admin, admin.next(t, st, pb.MemberOp_MEMBER_OP_ADD, dave.id), func(w *pb.MemberChange) { w.Topic = other.topic }), nil
		}},
		{"remove the last admin", func() (change, error) {
			return admin.next(t, st, pb.MemberOp_MEMBER_OP_REMOVE, admin.id), nil
		}},
		{"remove twice", func() (change, error) {
			return admin.next(t, st, pb.MemberOp_MEMBER_OP_REMOVE, carol.id), nil
		}},
		{"add a member twice", func() (change, error) {
			return admin.next(t, st, pb.MemberOp_MEMBER_OP_ADD, bob.id), nil
		}},
		{"altered after signing", func() (change, error) {
			c := admin.next(t, st, pb.MemberOp_MEMBER_OP_ADD, dave.id)
			sc := proto.CloneOf(c.signed)
			sc.Change = bytes.Replace(sc.Change, []byte(dave.id), []byte(bob.id), 1)
			return decodeChange(sc)
		}},
		{"signer field swapped", func() (change, error) {
			c := bob.next(t, st, pb.MemberOp_MEMBER_OP_ADD, dave.id)
			sc := proto.CloneOf(c.signed)
			sc.Signer = []byte(admin.id)
			return decodeChange(sc)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.c()
			if err == nil {
				err = st.apply(c)
			}
			if !errors.Is(err, errBadChange) {
				t.Fatalf("got %v, want errBadChange", err)
			}
			if n, _ := st.head(); n != 5 || st.epoch != 2 {
				t.Fatalf("log changed: %d changes, epoch %d", n, st.epoch)
			}
		})
	}
	// Offered as a run through merge, a forged change is refused too.
	if _, changed, err := st.merge([]change{bob.next(t, st, pb.MemberOp_MEMBER_OP_ADD, dave.id)}); changed || err == nil {
		t.Fatalf("merge of a member's change: changed %v, err %v", changed, err)
	}
	// A key holder never added can be removed (recorded as removed).
	fork, err := replayLog(testTopic, st.changes)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, fork, admin.next(t, fork, pb.MemberOp_MEMBER_OP_REMOVE, dave.id))
	if fork.role(dave.id) != RoleRemoved || fork.memberDuring(dave.id, 3) {
		t.Fatal("removal of a key holder never added")
	}
	// Roles after all that.
	if st.role(admin.id) != RoleAdmin || st.role(bob.id) != RoleMember || st.role(carol.id) != RoleRemoved || st.role(dave.id) != RoleNone {
		t.Fatal("roles")
	}
	if !st.memberDuring(carol.id, 1) || st.memberDuring(carol.id, 2) || !st.memberDuring(bob.id, 2) {
		t.Fatal("epochs of membership")
	}
}

// TestForkResolution: two admins change the log at once; every member
// ends on the same log whichever branch it saw first, and a second CREATE
// never replaces the first.
func TestForkResolution(t *testing.T) {
	a, b, c := newSigner(t), newSigner(t), newSigner(t)
	base := newLogState(testTopic)
	mustApply(t, base, a.next(t, base, pb.MemberOp_MEMBER_OP_CREATE, a.id))
	mustApply(t, base, a.next(t, base, pb.MemberOp_MEMBER_OP_ADD_ADMIN, b.id))
	mustApply(t, base, a.next(t, base, pb.MemberOp_MEMBER_OP_ADD, c.id))
	fromA := a.next(t, base, pb.MemberOp_MEMBER_OP_ROTATE, "")
	fromB := b.next(t, base, pb.MemberOp_MEMBER_OP_REMOVE, c.id)
	sideA, err := replayLog(testTopic, append(slices.Clone(base.changes), fromA))
	if err != nil {
		t.Fatal(err)
	}
	sideB, err := replayLog(testTopic, append(slices.Clone(base.changes), fromB))
	if err != nil {
		t.Fatal(err)
	}
	gotA, _, errA := sideA.merge([]change{fromB})
	gotB, _, errB := sideB.merge([]change{fromA})
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	ha, _ := gotA.head()
	_, hashA := gotA.head()
	_, hashB := gotB.head()
	if ha != 4 || !bytes.Equal(hashA, hashB) {
		t.Fatal("the two sides did not converge")
	}
	intruder := newLogState(testTopic)
	mustApply(t, intruder, c.next(t, intruder, pb.MemberOp_MEMBER_OP_CREATE, c.id))
	if _, changed, err := base.merge(intruder.changes); changed || err == nil {
		t.Fatalf("second CREATE: changed %v, err %v", changed, err)
	}
}

// TestEpochKeysDeletedAfterGrace: old epoch keys leave memory and the
// store EpochKeyGrace after the next epoch started (injected clock); the
// current one stays.
func TestEpochKeysDeletedAfterGrace(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	a := newNode(t, "alice", func(c *Config) {
		c.testClock = clock
		c.EpochKeyGrace = 48 * time.Hour
		c.PruneInterval = time.Hour // pruned by hand below
	})
	ctx := context.Background()
	if _, err := a.svc.Create(ctx, "vault"); err != nil {
		t.Fatal(err)
	}
	topic := a.topicOf("vault")
	for range 3 {
		if err := a.svc.Rotate(ctx, "vault"); err != nil {
			t.Fatal(err)
		}
		advance(24 * time.Hour)
	}
	// Epochs 1, 2 ended 48 h and 24 h ago; 3 is current.
	stored := func() []uint64 {
		t.Helper()
		got, err := storedEpochs(a.db, topic)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	if got := stored(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("stored epochs %v", got)
	}
	a.svc.pruneEpochKeys(clock())
	if got := stored(); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("after 48 h: stored epochs %v, want [2 3]", got)
	}
	advance(24 * time.Hour)
	a.svc.pruneEpochKeys(clock())
	if got := stored(); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("after 72 h: stored epochs %v, want [3]", got)
	}
	advance(365 * 24 * time.Hour)
	a.svc.pruneEpochKeys(clock())
	if got := stored(); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("the current key must stay: %v", got)
	}
	r, _ := a.svc.joined("vault")
	r.membership.mu.Lock()
	held := len(r.membership.keys)
	r.membership.mu.Unlock()
	if held != 1 {
		t.Fatalf("%d keys in memory, want 1", held)
	}
	// After a restart the store is what counts.
	a.restart()
	r, _ = a.svc.joined("vault")
	if e, k := r.membership.current(); e != 3 || k == nil {
		t.Fatalf("after restart: epoch %d, key %v", e, k != nil)
	}
}

// storedEpochs lists the epochs whose key the store holds for topic.
func storedEpochs(db *bolt.DB, topic string) ([]uint64, error) {
	var out []uint64
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEpochs).Bucket([]byte(topic))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, binary.BigEndian.Uint64(k))
			return nil
		})
	})
	return out, err
}
