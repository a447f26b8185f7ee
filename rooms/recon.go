package rooms

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/parley-chat/parley/rooms/pb"
)

// Range reconciliation in the style of Negentropy
// (github.com/hoytech/negentropy): two members each hold a set of items,
// ordered by (sent time, item ID). The initiator sends a fingerprint of
// its whole set; the responder compares each range it receives with its
// own items in the range: equal fingerprints settle the range, unequal
// ones are split into reconBuckets sub-ranges with their fingerprints, or,
// for few items, answered by the list of IDs. The initiator learns from
// the ID lists which items it lacks (need) and which the other lacks
// (have). Each round narrows only the ranges that differ, so the bytes
// grow with the difference (about log(n) rounds of reconBuckets
// fingerprints per differing item), not with the set.

// Reconciliation limits.
const (
	// reconBuckets is how many sub-ranges an unequal range is split into.
	reconBuckets = 16
	// reconIDsBelow: a range of fewer items is answered with its IDs.
	reconIDsBelow = 2 * reconBuckets
	// MaxSyncRanges bounds the ranges of one round.
	MaxSyncRanges = 4096
	// MaxSyncIDs bounds the item IDs of one round (all ranges together).
	MaxSyncIDs = 20000
	// maxIDsReply: a responder with more items in a range the initiator
	// listed answers with fingerprints rather than its IDs.
	maxIDsReply = 1024
	// fingerprintSize is the size of a range fingerprint.
	fingerprintSize = 16
)

var (
	errBadRanges = errors.New("bad sync ranges")
)

// item is one element of a reconciled set.
type item struct {
	ts uint64 // sent time, Unix ms
	id [itemIDSize]byte
}

func compareItems(a, b item) int {
	return cmp.Or(cmp.Compare(a.ts, b.ts), bytes.Compare(a.id[:], b.id[:]))
}

// bound is an exclusive upper bound: items below it are (ts, id) less
// than (ts, prefix).
type bound struct {
	ts     uint64
	prefix []byte // at most itemIDSize bytes
}

var infinity = bound{ts: math.MaxUint64}

func (b bound) isInfinity() bool { return b.ts == math.MaxUint64 && len(b.prefix) == 0 }

// below reports whether it sorts before b.
func (b bound) below(it item) bool {
	if it.ts != b.ts {
		return it.ts < b.ts
	}
	return bytes.Compare(it.id[:], b.prefix) < 0
}

func compareBounds(a, b bound) int {
	return cmp.Or(cmp.Compare(a.ts, b.ts), bytes.Compare(a.prefix, b.prefix))
}

// boundBetween returns the shortest bound that has prev below it and not
// next: the bound just above prev in a split.
func boundBetween(prev, next item) bound {
	if prev.ts != next.ts {
		return bound{ts: next.ts}
	}
	n := 0
	for n < itemIDSize && prev.id[n] == next.id[n] {
		n++
	}
	return bound{ts: next.ts, prefix: bytes.Clone(next.id[:min(n+1, itemIDSize)])}
}

// reconRange is one range of a round, in domain form.
type reconRange struct {
	upper bound
	mode  pb.SyncMode
	fp    [fingerprintSize]byte
	ids   [][itemIDSize]byte
}

// fingerprint is a hash of the count and the sum, modulo 2^256, of the
// items' hashes: an incremental hash, cheap to compute over any range.
func fingerprint(items []item) [fingerprintSize]byte {
	var sum hashSum
	for _, it := range items {
		sum = sum.add(itemHash(it))
	}
	return sum.fingerprint(len(items))
}

// hashSum is a sum of item hashes modulo 2^256, little-endian words.
type hashSum [4]uint64

func (a hashSum) add(h [32]byte) hashSum {
	var c uint64
	for i := range a {
		a[i], c = bits.Add64(a[i], binary.LittleEndian.Uint64(h[8*i:]), c)
	}
	return a
}

// sub returns a-b modulo 2^256.
func (a hashSum) sub(b hashSum) hashSum {
	var c uint64
	for i := range a {
		a[i], c = bits.Sub64(a[i], b[i], c)
	}
	return a
}

// fingerprint is the fingerprint of n items whose hashes sum to a.
func (a hashSum) fingerprint(n int) [fingerprintSize]byte {
	var buf [32 + binary.MaxVarintLen64]byte
	b := buf[:0]
	for _, w := range a {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	b = binary.AppendUvarint(b, uint64(n)) // #nosec G115 -- an item count, not negative
	full := sha256.Sum256(b)
	var fp [fingerprintSize]byte
	copy(fp[:], full[:])
	return fp
}

func itemHash(it item) [32]byte {
	var b [8 + itemIDSize]byte
	binary.BigEndian.PutUint64(b[:8], it.ts)
	copy(b[8:], it.id[:])
	return sha256.Sum256(b[:])
}

// reconciler is one side of a reconciliation over a sorted set of items.
type reconciler struct {
	items []item // sorted, unique
	// sums[i] is the sum of the hashes of items[:i]: the fingerprint of
	// any range costs one subtraction and one SHA-256, and each item is
	// hashed once per session rather than once per round.
	sums      []hashSum
	initiator bool
	// have and need are what the initiator learnt: items only it holds,
	// and items only the other side holds.
	have, need [][itemIDSize]byte
	// needSpan[i] is the sent-time span of the range need[i] was listed
	// in (lower bound inclusive, upper exclusive; math.MaxUint64 for the
	// last range): where a gap is when it cannot be fetched.
	needSpan []span
}

// span is a span of sent time, Unix ms.
type span struct{ from, to uint64 }

func newReconciler(items []item, initiator bool) *reconciler {
	slices.SortFunc(items, compareItems)
	items = slices.CompactFunc(items, func(a, b item) bool { return compareItems(a, b) == 0 })
	sums := make([]hashSum, len(items)+1)
	for i, it := range items {
		sums[i+1] = sums[i].add(itemHash(it))
	}
	return &reconciler{items: items, sums: sums, initiator: initiator}
}

// fingerprint is the fingerprint of items[lo:hi].
func (r *reconciler) fingerprint(lo, hi int) [fingerprintSize]byte {
	return r.sums[hi].sub(r.sums[lo]).fingerprint(hi - lo)
}

// initial is the initiator's first round: the whole set, as IDs when it is
// small, else as one fingerprint.
func (r *reconciler) initial() []reconRange {
	if len(r.items) < reconIDsBelow {
		return []reconRange{{upper: infinity, mode: pb.SyncMode_SYNC_MODE_IDS, ids: ids(r.items)}}
	}
	return []reconRange{{upper: infinity, mode: pb.SyncMode_SYNC_MODE_FINGERPRINT, fp: r.fingerprint(0, len(r.items))}}
}

func ids(items []item) [][itemIDSize]byte {
	out := make([][itemIDSize]byte, len(items))
	for i, it := range items {
		out[i] = it.id
	}
	return out
}

// process answers a round. The ranges must cover everything in ascending
// order (the last bound is infinity). For the initiator, a reply of only
// skipped ranges (settled reports true) ends the reconciliation.
func (r *reconciler) process(in []reconRange) (out []reconRange, settled bool, err error) {
	if err := checkRanges(in); err != nil {
		return nil, false, err
	}
	lo := 0          // index of the first item at or above the current lower bound
	var lower uint64 // the current lower bound's time
	settled = true
	emit := func(rr reconRange) {
		if rr.mode != pb.SyncMode_SYNC_MODE_SKIP {
			settled = false
		} else if n := len(out); n > 0 && out[n-1].mode == pb.SyncMode_SYNC_MODE_SKIP {
			out[n-1].upper = rr.upper // merge adjacent skips
			return
		}
		out = append(out, rr)
	}
	for _, rg := range in {
		hi := lo + sortSearch(r.items[lo:], rg.upper)
		mine := r.items[lo:hi]
		switch rg.mode {
		case pb.SyncMode_SYNC_MODE_SKIP:
			emit(reconRange{upper: rg.upper})
		case pb.SyncMode_SYNC_MODE_FINGERPRINT:
			if r.fingerprint(lo, hi) == rg.fp {
				emit(reconRange{upper: rg.upper})
			} else {
				r.split(lo, hi, rg.upper, emit)
			}
		case pb.SyncMode_SYNC_MODE_IDS:
			switch {
			case r.initiator:
				r.diff(mine, rg.ids, span{lower, rg.upper.ts})
				emit(reconRange{upper: rg.upper})
			case len(mine) > maxIDsReply:
				r.split(lo, hi, rg.upper, emit) // narrow down first: keeps rounds small
			default:
				emit(reconRange{upper: rg.upper, mode: pb.SyncMode_SYNC_MODE_IDS, ids: ids(mine)})
			}
		default:
			return nil, false, fmt.Errorf("%w: mode %d", errBadRanges, rg.mode)
		}
		lo, lower = hi, rg.upper.ts
	}
	return out, settled, nil
}

func sortSearch(items []item, b bound) int {
	i, _ := slices.BinarySearchFunc(items, b, func(it item, b bound) int {
		if b.below(it) {
			return -1
		}
		return 1
	})
	return i
}

// split answers an unequal range, items[lo:hi]: its IDs when few, else
// reconBuckets fingerprints of about equal item counts.
func (r *reconciler) split(lo, hi int, upper bound, emit func(reconRange)) {
	mine := r.items[lo:hi]
	if len(mine) < reconIDsBelow {
		emit(reconRange{upper: upper, mode: pb.SyncMode_SYNC_MODE_IDS, ids: ids(mine)})
		return
	}
	per := len(mine) / reconBuckets
	extra := len(mine) % reconBuckets
	start := 0
	for i := range reconBuckets {
		end := start + per
		if i < extra {
			end++
		}
		ub := upper
		if i < reconBuckets-1 {
			ub = boundBetween(mine[end-1], mine[end])
		}
		emit(reconRange{upper: ub, mode: pb.SyncMode_SYNC_MODE_FINGERPRINT, fp: r.fingerprint(lo+start, lo+end)})
		start = end
	}
}

// diff records, for the initiator, the differences between its items in
// a range and the other side's IDs there.
func (r *reconciler) diff(mine []item, theirs [][itemIDSize]byte, where span) {
	got := make(map[[itemIDSize]byte]bool, len(theirs))
	for _, id := range theirs {
		got[id] = true
	}
	for _, it := range mine {
		if got[it.id] {
			delete(got, it.id)
		} else {
			r.have = append(r.have, it.id)
		}
	}
	for _, id := range theirs {
		if got[id] {
			r.need = append(r.need, id)
			r.needSpan = append(r.needSpan, where)
			delete(got, id)
		}
	}
}

// checkRanges checks that a round covers everything in ascending order
// within the limits.
func checkRanges(in []reconRange) error {
	if len(in) == 0 || len(in) > MaxSyncRanges {
		return fmt.Errorf("%w: %d ranges", errBadRanges, len(in))
	}
	n := 0
	for i, rg := range in {
		if i > 0 && compareBounds(in[i-1].upper, rg.upper) >= 0 {
			return fmt.Errorf("%w: bounds not ascending", errBadRanges)
		}
		if n += len(rg.ids); n > MaxSyncIDs {
			return fmt.Errorf("%w: over %d ids", errBadRanges, MaxSyncIDs)
		}
	}
	if !in[len(in)-1].upper.isInfinity() {
		return fmt.Errorf("%w: does not cover everything", errBadRanges)
	}
	return nil
}

// rangesToWire and rangesFromWire convert rounds.
func rangesToWire(in []reconRange) []*pb.SyncRange {
	out := make([]*pb.SyncRange, len(in))
	for i, rg := range in {
		w := &pb.SyncRange{UpperMs: rg.upper.ts, UpperId: rg.upper.prefix, Mode: rg.mode}
		switch rg.mode {
		case pb.SyncMode_SYNC_MODE_FINGERPRINT:
			w.Fingerprint = rg.fp[:]
		case pb.SyncMode_SYNC_MODE_IDS:
			w.Ids = make([][]byte, len(rg.ids))
			for j := range rg.ids {
				w.Ids[j] = rg.ids[j][:]
			}
		}
		out[i] = w
	}
	return out
}

func rangesFromWire(in []*pb.SyncRange) ([]reconRange, error) {
	if len(in) > MaxSyncRanges {
		return nil, fmt.Errorf("%w: %d ranges", errBadRanges, len(in))
	}
	out := make([]reconRange, len(in))
	n := 0
	for i, w := range in {
		if len(w.UpperId) > itemIDSize {
			return nil, fmt.Errorf("%w: bound id of %d bytes", errBadRanges, len(w.UpperId))
		}
		rg := reconRange{upper: bound{ts: w.UpperMs, prefix: w.UpperId}, mode: w.Mode}
		switch w.Mode {
		case pb.SyncMode_SYNC_MODE_SKIP:
		case pb.SyncMode_SYNC_MODE_FINGERPRINT:
			if len(w.Fingerprint) != fingerprintSize {
				return nil, fmt.Errorf("%w: fingerprint of %d bytes", errBadRanges, len(w.Fingerprint))
			}
			copy(rg.fp[:], w.Fingerprint)
		case pb.SyncMode_SYNC_MODE_IDS:
			if n += len(w.Ids); n > MaxSyncIDs {
				return nil, fmt.Errorf("%w: over %d ids", errBadRanges, MaxSyncIDs)
			}
			rg.ids = make([][itemIDSize]byte, len(w.Ids))
			for j, id := range w.Ids {
				if len(id) != itemIDSize {
					return nil, fmt.Errorf("%w: id of %d bytes", errBadRanges, len(id))
				}
				copy(rg.ids[j][:], id)
			}
		default:
			return nil, fmt.Errorf("%w: mode %d", errBadRanges, w.Mode)
		}
		out[i] = rg
	}
	if err := checkRanges(out); err != nil {
		return nil, err
	}
	return out, nil
}
