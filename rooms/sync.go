package rooms

import (
	"bufio"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/rooms/pb"
)

// SyncProtocol is the stream protocol of the room sync.
const SyncProtocol protocol.ID = "/parley/rooms/sync/1.0.0"

// Room sync limits, the same for every peer (docs/PROTOCOL.md).
const (
	// MaxSyncHello bounds the SyncHello and SyncChallenge frames.
	MaxSyncHello = 1 << 10
	// MaxSyncFrame bounds every other frame.
	MaxSyncFrame = 1 << 20
	// MaxSyncRounds bounds the reconciliation rounds of a session.
	MaxSyncRounds = 24
	// syncItemsPerFrame: items are sent in frames of at most this many
	// bytes (one item more at most).
	syncItemsPerFrame = 256 << 10
	// syncNonceSize is the size of each side's nonce.
	syncNonceSize = 32
	// maxSyncStreams and maxSyncStreamsPerPeer bound inbound sessions.
	maxSyncStreams        = 32
	maxSyncStreamsPerPeer = 2
	// syncServiceName names the service in the resource manager.
	syncServiceName = "parley.rooms.sync"
	// syncPenalty is how long a peer that lied is neither asked nor
	// answered; penaltyMax bounds the peers remembered.
	syncPenalty = 10 * time.Minute
	penaltyMax  = 4096
	// syncMemory is what a session reserves from the resource manager.
	syncMemory = MaxSyncFrame + 4<<10
)

// syncKeyInfo is the HKDF info of a private room's sync key.
const syncKeyInfo = "parley/room/1 sync"

// MAC labels of the two proofs.
const (
	macResponder = "parley/rooms/sync/1 responder\x00"
	macInitiator = "parley/rooms/sync/1 initiator\x00"
)

func deriveSyncKey(key []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, key, []byte(hkdfSalt), syncKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive sync key: %w", err)
	}
	return k, nil
}

// syncMAC proves knowledge of the room key over both fresh nonces, both
// peers, the topic and the set.
func syncMAC(key []byte, label string, h *pb.SyncHello, nonceR []byte, initiator, responder peer.ID) []byte {
	m := hmac.New(sha256.New, key)
	put := func(b []byte) {
		var l [binary.MaxVarintLen64]byte
		m.Write(l[:binary.PutUvarint(l[:], uint64(len(b)))])
		m.Write(b)
	}
	put([]byte(label))
	put(h.Nonce)
	put(nonceR)
	put([]byte(initiator))
	put([]byte(responder))
	put([]byte(h.Topic))
	put(binary.BigEndian.AppendUint64(nil, uint64(h.Set))) // #nosec G115 -- an enum
	return m.Sum(nil)
}

// syncStats counts a session's items and, for the initiator, says what
// it could not fetch.
type syncStats struct {
	got, sent int
	// since is the start of the window reconciled, Unix ms.
	since int64
	// fetched are the items wanted and handed over (new or not); missing
	// the items wanted and not handed over, with the span they were
	// listed in.
	fetched [][itemIDSize]byte
	missing map[[itemIDSize]byte]span
}

// set is the reconciled set of a session on one side: the items and how
// to fetch their signed bytes.
type syncSet struct {
	items  []item // sorted by the reconciler
	signed func([]item) ([][]byte, error)
}

// pick returns the items of ss named by ids, once each, in ss's order.
func (ss *syncSet) pick(ids [][itemIDSize]byte) []item {
	if len(ids) == 0 {
		return nil
	}
	want := make(map[[itemIDSize]byte]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := make([]item, 0, len(ids))
	for _, it := range ss.items {
		if want[it.id] {
			out = append(out, it)
			delete(want, it.id)
		}
	}
	return out
}

// localSet returns this node's items of the set in r, sent at or after
// sinceMs.
func (s *Service) localSet(r *room, set pb.SyncSet, sinceMs int64, now time.Time) (*syncSet, error) {
	ss := &syncSet{}
	switch set {
	case pb.SyncSet_SYNC_SET_HISTORY:
		since := max(sinceMs, now.Add(-s.cfg.SyncWindow).UnixMilli(), 0)
		its, err := historyItems(s.cfg.DB, r.topicName, uint64(since), s.cfg.SyncMaxItems) // #nosec G115 -- not negative
		if err != nil {
			return nil, err
		}
		ss.items = its
		ss.signed = func(its []item) ([][]byte, error) { return historySigned(s.cfg.DB, r.topicName, its) }
	case pb.SyncSet_SYNC_SET_SHARES:
		since := max(sinceMs, now.Add(-s.cfg.SyncWindow).UnixMilli(), 0)
		its, err := shareItems(s.cfg.DB, r.topicName, uint64(since), s.cfg.SyncMaxItems) // #nosec G115 -- not negative
		if err != nil {
			return nil, err
		}
		ss.items = its
		ss.signed = func(its []item) ([][]byte, error) { return shareSigned(s.cfg.DB, r.topicName, its) }
	case pb.SyncSet_SYNC_SET_MEMBERS:
		s.ownCurrent(r)
		since := max(sinceMs, now.Add(-s.memberWindow()).UnixMilli(), 0)
		// Sorted here, so that the reconciler's sort finds them in order
		// and the signed bytes are found by binary search: a session
		// builds no map of the set.
		bs := r.beacons(since)
		slices.SortFunc(bs, func(a, b beacon) int { return compareItems(a.it, b.it) })
		ss.items = make([]item, len(bs))
		for i, b := range bs {
			ss.items[i] = b.it
		}
		ss.signed = func(its []item) ([][]byte, error) {
			out := make([][]byte, 0, len(its))
			for _, it := range its {
				i, ok := slices.BinarySearchFunc(bs, it, func(b beacon, it item) int { return compareItems(b.it, it) })
				if ok {
					out = append(out, bs[i].raw)
				}
			}
			return out, nil
		}
	default:
		return nil, fmt.Errorf("%w: set %d", errSyncRefused, set)
	}
	return ss, nil
}

// memberWindow is how old a presence may be and still be synced.
func (s *Service) memberWindow() time.Duration { return s.cfg.PresenceTimeout }

// syncSince is the lower bound of a session of set started now.
func (s *Service) syncSince(set pb.SyncSet, now time.Time) int64 {
	if set == pb.SyncSet_SYNC_SET_MEMBERS {
		return now.Add(-s.memberWindow()).UnixMilli()
	}
	return now.Add(-s.cfg.SyncWindow).UnixMilli()
}

// Sync runs one session of set in r with p, as the initiator: it learns
// what each side lacks, fetches what it lacks and hands p what p lacks.
func (s *Service) syncWith(ctx context.Context, r *room, p peer.ID, set pb.SyncSet) (st syncStats, err error) {
	if s.penalised(p) {
		return st, fmt.Errorf("%w: %s is penalised", errSyncRefused, p)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SyncTimeout)
	defer cancel()
	// Only over a connection that exists: the sync never dials (a member
	// that went away must not be called back by the rooms).
	str, err := s.cfg.Host.NewStream(network.WithNoDial(network.WithAllowLimitedConn(ctx, "rooms sync"), "rooms sync"), p, SyncProtocol)
	if err != nil {
		return st, fmt.Errorf("open sync stream: %w", err)
	}
	defer context.AfterFunc(ctx, func() { _ = str.Reset() })()
	if dl, ok := ctx.Deadline(); ok {
		_ = str.SetDeadline(dl)
	}
	st, err = s.initiate(r, str, set)
	if err != nil {
		_ = str.Reset()
		if errors.Is(err, errSyncLie) {
			s.penalise(p)
		}
		return st, err
	}
	_ = str.Close()
	return st, nil
}

func (s *Service) initiate(r *room, str network.Stream, set pb.SyncSet) (st syncStats, err error) {
	now := time.Now()
	p := str.Conn().RemotePeer()
	hello := &pb.SyncHello{Topic: r.topicName, Set: set, Nonce: make([]byte, syncNonceSize), SinceMs: s.syncSince(set, now)}
	if _, err := rand.Read(hello.Nonce); err != nil {
		return st, fmt.Errorf("sync nonce: %w", err)
	}
	if err := pbframe.Write(str, hello); err != nil {
		return st, fmt.Errorf("write sync hello: %w", err)
	}
	br := bufio.NewReader(str)
	var ch pb.SyncChallenge
	if err := pbframe.Read(br, MaxSyncHello, &ch); err != nil {
		return st, fmt.Errorf("read sync challenge: %w", err)
	}
	if len(ch.Nonce) != syncNonceSize {
		return st, fmt.Errorf("%w: challenge nonce of %d bytes", errSyncLie, len(ch.Nonce))
	}
	first := &pb.SyncFrame{}
	if r.private {
		want := syncMAC(r.syncKey, macResponder, hello, ch.Nonce, s.self, p)
		if !hmac.Equal(want, ch.Mac) {
			return st, fmt.Errorf("%w: responder's key proof", errSyncLie)
		}
		first.Mac = syncMAC(r.syncKey, macInitiator, hello, ch.Nonce, s.self, p)
	}
	local, err := s.localSet(r, set, hello.SinceMs, now)
	if err != nil {
		return st, err
	}
	rc := newReconciler(local.items, true)
	local.items = rc.items
	first.Ranges = rangesToWire(rc.initial())
	if err := pbframe.Write(str, first); err != nil {
		return st, fmt.Errorf("write sync ranges: %w", err)
	}
	for round := 0; ; round++ {
		if round >= MaxSyncRounds {
			return st, fmt.Errorf("%w: over %d rounds", errSyncLie, MaxSyncRounds)
		}
		var in pb.SyncFrame
		if err := pbframe.Read(br, MaxSyncFrame, &in); err != nil {
			return st, fmt.Errorf("read sync round %d: %w", round, err)
		}
		rs, err := rangesFromWire(in.Ranges)
		if err != nil {
			return st, fmt.Errorf("%w: round %d: %w", errSyncLie, round, err)
		}
		out, settled, err := rc.process(rs)
		if err != nil {
			return st, fmt.Errorf("%w: round %d: %w", errSyncLie, round, err)
		}
		if len(rc.need) > s.cfg.SyncMaxItems || len(rc.have) > MaxSyncIDs {
			return st, fmt.Errorf("%w: over %d differing items", errSyncLie, s.cfg.SyncMaxItems)
		}
		if !settled {
			if err := pbframe.Write(str, &pb.SyncFrame{Ranges: rangesToWire(out)}); err != nil {
				return st, fmt.Errorf("write sync round %d: %w", round, err)
			}
			continue
		}
		break
	}
	// Settled: ask for what is missing here, hand over what is missing
	// there.
	if set == pb.SyncSet_SYNC_SET_MEMBERS {
		rc.need, rc.needSpan = r.wantMembers(rc.need, rc.needSpan)
	}
	want := make(map[[itemIDSize]byte]bool, len(rc.need))
	last := &pb.SyncFrame{Done: true}
	for _, id := range rc.need {
		want[id] = true
		last.Want = append(last.Want, id[:])
	}
	if st.sent, err = s.sendItems(str, local, rc.have, last, true); err != nil {
		return st, err
	}
	if st.got, err = s.receiveItems(r, set, br, want); err != nil {
		return st, err
	}
	st.since = hello.SinceMs
	if len(rc.items) >= s.cfg.SyncMaxItems && len(rc.items) > 0 && set == pb.SyncSet_SYNC_SET_HISTORY {
		// Only the newest items were reconciled.
		st.since = max(st.since, int64(min(rc.items[0].ts, math.MaxInt64))) // #nosec G115 -- bounded
	}
	for i, id := range rc.need {
		if !want[id] {
			st.fetched = append(st.fetched, id)
			continue
		}
		if st.missing == nil {
			st.missing = make(map[[itemIDSize]byte]span)
		}
		st.missing[id] = rc.needSpan[i]
	}
	return st, nil
}

// sendItems writes the signed bytes of the items named by ids, in frames
// of about syncItemsPerFrame bytes, the first frame carrying head's
// fields and the last one marked done. With oneFrame, the items that do
// not fit in the first frame are left out.
func (s *Service) sendItems(str io.Writer, local *syncSet, ids [][itemIDSize]byte, head *pb.SyncFrame, oneFrame bool) (int, error) {
	raws, err := local.signed(local.pick(ids))
	if err != nil {
		return 0, err
	}
	f, size, sent := head, 0, 0
	for _, raw := range raws {
		if size > 0 && size+len(raw) > syncItemsPerFrame {
			if oneFrame {
				break
			}
			if err := pbframe.Write(str, f); err != nil {
				return sent, fmt.Errorf("write sync items: %w", err)
			}
			f, size = &pb.SyncFrame{}, 0
		}
		f.Items = append(f.Items, raw)
		size += len(raw) + 4
		sent++
	}
	f.Done = true
	if err := pbframe.Write(str, f); err != nil {
		return sent, fmt.Errorf("write sync items: %w", err)
	}
	return sent, nil
}

// receiveItems reads item frames until one is marked done, and accepts
// the items: each must be one of want (and is then removed from it).
func (s *Service) receiveItems(r *room, set pb.SyncSet, br *bufio.Reader, want map[[itemIDSize]byte]bool) (int, error) {
	got := 0
	for frames := 0; ; frames++ {
		if frames > len(want)+1 && frames > 1 {
			return got, fmt.Errorf("%w: too many item frames", errSyncLie)
		}
		var f pb.SyncFrame
		if err := pbframe.Read(br, MaxSyncFrame, &f); err != nil {
			return got, fmt.Errorf("read sync items: %w", err)
		}
		if len(f.Ranges) > 0 || len(f.Want) > 0 {
			return got, fmt.Errorf("%w: ranges among items", errSyncLie)
		}
		n, err := s.acceptSynced(r, set, f.Items, want)
		got += n
		if err != nil {
			return got, err
		}
		if f.Done {
			return got, nil
		}
	}
}

// handleSync serves one inbound session as the responder.
func (s *Service) handleSync(str network.Stream) {
	p := str.Conn().RemotePeer()
	if !s.syncSlots.acquire(p) {
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer s.syncSlots.release(p)
	if err := str.Scope().SetService(syncServiceName); err != nil {
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	if err := str.Scope().ReserveMemory(syncMemory, network.ReservationPriorityAlways); err != nil {
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer str.Scope().ReleaseMemory(syncMemory)
	defer context.AfterFunc(s.ctx, func() { _ = str.Reset() })()
	_ = str.SetDeadline(time.Now().Add(s.cfg.SyncTimeout))
	if err := s.respond(str); err != nil {
		s.log.Debug("sync session", "peer", p, "err", err)
		if errors.Is(err, errSyncLie) {
			s.penalise(p)
		}
		_ = str.Reset()
		return
	}
	_ = str.Close()
}

func (s *Service) respond(str network.Stream) error {
	p := str.Conn().RemotePeer()
	if s.penalised(p) {
		return fmt.Errorf("%w: %s is penalised", errSyncRefused, p)
	}
	br := bufio.NewReader(str)
	var hello pb.SyncHello
	if err := pbframe.Read(br, MaxSyncHello, &hello); err != nil {
		return fmt.Errorf("read sync hello: %w", err)
	}
	r := s.roomByTopic(hello.Topic)
	if r == nil || len(hello.Nonce) != syncNonceSize {
		return fmt.Errorf("%w: no such room", errSyncRefused)
	}
	now := time.Now()
	if hello.Set != pb.SyncSet_SYNC_SET_HISTORY && hello.Set != pb.SyncSet_SYNC_SET_MEMBERS && hello.Set != pb.SyncSet_SYNC_SET_SHARES {
		return fmt.Errorf("%w: set %d", errSyncRefused, hello.Set)
	}
	ch := &pb.SyncChallenge{Nonce: make([]byte, syncNonceSize)}
	if _, err := rand.Read(ch.Nonce); err != nil {
		return fmt.Errorf("sync nonce: %w", err)
	}
	if r.private {
		ch.Mac = syncMAC(r.syncKey, macResponder, &hello, ch.Nonce, p, s.self)
	}
	if err := pbframe.Write(str, ch); err != nil {
		return fmt.Errorf("write sync challenge: %w", err)
	}
	var in pb.SyncFrame
	if err := pbframe.Read(br, MaxSyncFrame, &in); err != nil {
		return fmt.Errorf("read sync ranges: %w", err)
	}
	if r.private && !hmac.Equal(in.Mac, syncMAC(r.syncKey, macInitiator, &hello, ch.Nonce, p, s.self)) {
		// Not a key holder: it learns nothing. Not penalised: a member
		// with a stale key may ask too.
		return fmt.Errorf("%w: initiator's key proof", errSyncRefused)
	}
	local, err := s.localSet(r, hello.Set, hello.SinceMs, now)
	if err != nil {
		return err
	}
	rc := newReconciler(local.items, false)
	local.items = rc.items
	for round := 0; ; round++ {
		if in.Done {
			break
		}
		if round >= MaxSyncRounds {
			return fmt.Errorf("%w: over %d rounds", errSyncLie, MaxSyncRounds)
		}
		rs, err := rangesFromWire(in.Ranges)
		if err != nil {
			return fmt.Errorf("%w: round %d: %w", errSyncLie, round, err)
		}
		out, _, err := rc.process(rs)
		if err != nil {
			return fmt.Errorf("%w: round %d: %w", errSyncLie, round, err)
		}
		if err := pbframe.Write(str, &pb.SyncFrame{Ranges: rangesToWire(out)}); err != nil {
			return fmt.Errorf("write sync round %d: %w", round, err)
		}
		in.Reset()
		if err := pbframe.Read(br, MaxSyncFrame, &in); err != nil {
			return fmt.Errorf("read sync round %d: %w", round, err)
		}
	}
	// The initiator's last frames: what it wants, and items for us.
	if len(in.Want) > s.cfg.SyncMaxItems {
		return fmt.Errorf("%w: %d items wanted", errSyncLie, len(in.Want))
	}
	wanted := make([][itemIDSize]byte, 0, len(in.Want))
	for _, w := range in.Want {
		if len(w) != itemIDSize {
			return fmt.Errorf("%w: want id of %d bytes", errSyncLie, len(w))
		}
		wanted = append(wanted, [itemIDSize]byte(w))
	}
	// Items handed to us: any we lack, verified one by one.
	if _, err := s.acceptSynced(r, hello.Set, in.Items, nil); err != nil {
		return err
	}
	_, err = s.sendItems(str, local, wanted, &pb.SyncFrame{}, false)
	return err
}

// syncSlots bounds inbound sessions, in all and per peer.
type syncSlots struct {
	mu     sync.Mutex
	total  int             // guarded by mu
	byPeer map[peer.ID]int // guarded by mu
}

func (l *syncSlots) acquire(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byPeer == nil {
		l.byPeer = make(map[peer.ID]int)
	}
	if l.total >= maxSyncStreams || l.byPeer[p] >= maxSyncStreamsPerPeer {
		return false
	}
	l.total++
	l.byPeer[p]++
	return true
}

func (l *syncSlots) release(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byPeer[p]--; l.byPeer[p] <= 0 {
		delete(l.byPeer, p)
	}
}

// penaltyBox remembers peers that lied in a sync session.
type penaltyBox struct {
	mu    sync.Mutex
	until map[peer.ID]time.Time // guarded by mu
}

func (s *Service) penalise(p peer.ID) {
	b := &s.penalties
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.until == nil {
		b.until = make(map[peer.ID]time.Time)
	}
	now := time.Now()
	if len(b.until) >= penaltyMax {
		for q, t := range b.until {
			if t.Before(now) {
				delete(b.until, q)
			}
		}
		if len(b.until) >= penaltyMax {
			return
		}
	}
	b.until[p] = now.Add(syncPenalty)
	s.log.Debug("sync peer penalised", "peer", p)
}

func (s *Service) penalised(p peer.ID) bool {
	b := &s.penalties
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.until[p]
	return ok && time.Now().Before(t)
}
