package rooms

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

func randItems(rng *rand.Rand, n int, ts func(int) uint64) []item {
	out := make([]item, n)
	for i := range out {
		out[i].ts = ts(i)
		for j := range out[i].id {
			out[i].id[j] = byte(rng.IntN(256))
		}
	}
	return out
}

// reconcile runs a whole reconciliation in memory, through the wire
// form, and returns the initiator's have and need and the rounds.
func reconcile(t testing.TB, a, b []item) (have, need map[[itemIDSize]byte]bool, rounds int) {
	t.Helper()
	ini, resp := newReconciler(a, true), newReconciler(b, false)
	msg := ini.initial()
	for rounds = 1; ; rounds++ {
		if rounds > MaxSyncRounds {
			t.Fatalf("over %d rounds", MaxSyncRounds)
		}
		in, err := rangesFromWire(rangesToWire(msg))
		if err != nil {
			t.Fatal(err)
		}
		reply, _, err := resp.process(in)
		if err != nil {
			t.Fatal(err)
		}
		in, err = rangesFromWire(rangesToWire(reply))
		if err != nil {
			t.Fatal(err)
		}
		out, settled, err := ini.process(in)
		if err != nil {
			t.Fatal(err)
		}
		if settled {
			break
		}
		msg = out
	}
	have, need = map[[itemIDSize]byte]bool{}, map[[itemIDSize]byte]bool{}
	for _, id := range ini.have {
		have[id] = true
	}
	for _, id := range ini.need {
		need[id] = true
	}
	return have, need, rounds
}

func TestReconcileFindsExactDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name                 string
		common, onlyA, onlyB int
		sameTime             bool
	}{
		{"both empty", 0, 0, 0, false},
		{"equal", 5000, 0, 0, false},
		{"a empty", 0, 0, 3000, false},
		{"b empty", 0, 3000, 0, false},
		{"small", 10, 3, 4, false},
		{"1000 missed of 10000", 9000, 0, 1000, false},
		{"scattered both ways", 8000, 300, 500, false},
		{"one millisecond", 2000, 50, 60, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := func(i int) uint64 { return 1_700_000_000_000 + uint64(rng.IntN(1_000_000)) }
			if tc.sameTime {
				ts = func(int) uint64 { return 42 }
			}
			common := randItems(rng, tc.common, ts)
			onlyA, onlyB := randItems(rng, tc.onlyA, ts), randItems(rng, tc.onlyB, ts)
			a := append(append([]item{}, common...), onlyA...)
			b := append(append([]item{}, common...), onlyB...)
			have, need, rounds := reconcile(t, a, b)
			if len(have) != len(onlyA) || len(need) != len(onlyB) {
				t.Fatalf("have %d need %d, want %d %d", len(have), len(need), len(onlyA), len(onlyB))
			}
			for _, it := range onlyA {
				if !have[it.id] {
					t.Fatal("missing have")
				}
			}
			for _, it := range onlyB {
				if !need[it.id] {
					t.Fatal("missing need")
				}
			}
			t.Logf("%d rounds", rounds)
		})
	}
}

func TestRangesRefused(t *testing.T) {
	fp := make([]byte, fingerprintSize)
	for _, tc := range []struct {
		name string
		in   []*pb.SyncRange
	}{
		{"none", nil},
		{"not covering", []*pb.SyncRange{{UpperMs: 5}}},
		{"descending", []*pb.SyncRange{{UpperMs: 5}, {UpperMs: 4}, {UpperMs: ^uint64(0)}}},
		{"short fingerprint", []*pb.SyncRange{{UpperMs: ^uint64(0), Mode: pb.SyncMode_SYNC_MODE_FINGERPRINT, Fingerprint: fp[:3]}}},
		{"bad id", []*pb.SyncRange{{UpperMs: ^uint64(0), Mode: pb.SyncMode_SYNC_MODE_IDS, Ids: [][]byte{{1}}}}},
		{"long bound", []*pb.SyncRange{{UpperMs: ^uint64(0), UpperId: make([]byte, 17)}}},
		{"unknown mode", []*pb.SyncRange{{UpperMs: ^uint64(0), Mode: 9}}},
		{"endless", func() []*pb.SyncRange {
			out := make([]*pb.SyncRange, MaxSyncRanges+1)
			for i := range out {
				out[i] = &pb.SyncRange{UpperMs: uint64(i)}
			}
			out[len(out)-1].UpperMs = ^uint64(0)
			return out
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := rangesFromWire(tc.in); !errors.Is(err, errBadRanges) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// FuzzSyncFrame decodes a SyncFrame and runs its ranges through both
// roles of a reconciler: no panic, and accepted rounds answer with a
// valid round.
func FuzzSyncFrame(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	items := randItems(rng, 100, func(i int) uint64 { return uint64(i * 7) })
	for _, seed := range [][]reconRange{
		newReconciler(items, true).initial(),
		newReconciler(items[:10], true).initial(),
		{{upper: bound{ts: 300, prefix: []byte{1}}, mode: pb.SyncMode_SYNC_MODE_IDS}, {upper: infinity}},
	} {
		b, _ := proto.Marshal(&pb.SyncFrame{Ranges: rangesToWire(seed)})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr pb.SyncFrame
		if proto.Unmarshal(data, &fr) != nil {
			return
		}
		rs, err := rangesFromWire(fr.Ranges)
		if err != nil {
			return
		}
		for _, ini := range []bool{true, false} {
			out, _, err := newReconciler(items, ini).process(rs)
			if err != nil {
				continue
			}
			if _, err := rangesFromWire(rangesToWire(out)); err != nil && len(out) <= MaxSyncRanges {
				t.Fatalf("answer is not a valid round: %v", err)
			}
		}
	})
}

// The fingerprint of a range from the reconciler's prefix sums is the
// fingerprint of its items (the wire format: syncvectors_test.go).
func TestReconcilerFingerprintOfRanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7)) // #nosec G404 -- test data
	r := newReconciler(randItems(rng, 300, func(int) uint64 { return rng.Uint64N(1 << 40) }), false)
	for range 500 {
		lo := rng.IntN(len(r.items) + 1)
		hi := lo + rng.IntN(len(r.items)-lo+1)
		if got, want := r.fingerprint(lo, hi), fingerprint(r.items[lo:hi]); got != want {
			t.Fatalf("items[%d:%d]: fingerprint %x from the sums, %x from the items", lo, hi, got, want)
		}
	}
}

// A member-set session in a room of 500: both sides hold every member's
// presence, 8 of them in a newer version on each side (the reconciler
// and the wire form only; no stream, no signature).
func BenchmarkReconcileMembers(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4)) // #nosec G404 -- test data
	const n, newer = 500, 8
	base := randItems(rng, n, func(int) uint64 { return 1e12 + rng.Uint64N(30000) })
	a, bs := slices.Clone(base), slices.Clone(base)
	for i := range newer {
		a[i] = randItems(rng, 1, func(int) uint64 { return 1e12 + 40000 })[0]
		bs[n-1-i] = randItems(rng, 1, func(int) uint64 { return 1e12 + 40000 })[0]
	}
	b.ReportAllocs()
	for b.Loop() {
		have, need, _ := reconcile(b, slices.Clone(a), slices.Clone(bs))
		if len(have) != newer*2 || len(need) != newer*2 {
			b.Fatalf("have %d, need %d, want %d each", len(have), len(need), newer*2)
		}
	}
}
