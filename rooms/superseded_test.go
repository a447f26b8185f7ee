package rooms

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/testnet"
)

// A member's presence replaced by a newer one is not fetched again from
// a peer that still lists it; every other item is.
func TestWantMembersSkipsSuperseded(t *testing.T) {
	author, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	r := newRoom("lobby")
	now := time.Now()
	offer := func(ts time.Time, b byte) item {
		t.Helper()
		it := item{ts: uint64(ts.UnixMilli()), id: [itemIDSize]byte{b}} // #nosec G115 -- a test time
		env := &envelope{nick: "alice", sentAt: ts}
		if _, newer := r.offerBeacon(author, env, beacon{it: it, raw: []byte{b}}, now, time.Minute); !newer {
			t.Fatalf("presence %d not taken", b)
		}
		return it
	}
	old := offer(now.Add(-20*time.Second), 1)
	cur := offer(now.Add(-10*time.Second), 2)
	other := [itemIDSize]byte{3}
	need := [][itemIDSize]byte{old.id, other, cur.id}
	spans := []span{{1, 2}, {3, 4}, {5, 6}}
	ids, sps := r.wantMembers(need, spans)
	if len(ids) != 2 || ids[0] != other || ids[1] != cur.id || sps[0] != spans[1] || sps[1] != spans[2] {
		t.Fatalf("want %x %v, got %x %v", [][itemIDSize]byte{other, cur.id}, spans[1:], ids, sps)
	}
	// Pruned once older than the window sessions list.
	r.sweep(now.Add(3*time.Minute), time.Minute)
	if ids, _ := r.wantMembers(need, spans); len(ids) != 3 {
		t.Fatalf("after the sweep: want all 3, got %d", len(ids))
	}
}

// One session at a time checks a given presence; the others take it as
// held until that check is over.
func TestClaimCheck(t *testing.T) {
	r := newRoom("lobby")
	a, b := [itemIDSize]byte{1}, [itemIDSize]byte{2}
	if !r.claimCheck(a) || !r.claimCheck(b) {
		t.Fatal("first claims refused")
	}
	if r.claimCheck(a) {
		t.Fatal("a claimed twice")
	}
	r.releaseChecks([][itemIDSize]byte{a})
	if !r.claimCheck(a) {
		t.Fatal("a not claimable after release")
	}
	if r.claimCheck(b) {
		t.Fatal("b claimed twice")
	}
}
