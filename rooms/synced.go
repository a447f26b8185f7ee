package rooms

import (
	"errors"
	"fmt"
	"slices"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
)

// syncedMsg is a verified item of a session.
type syncedMsg struct {
	author peer.ID
	env    envelope
	it     item
	raw    []byte
}

// checkSynced verifies one item (decoded by parseSigned) exactly as the validator verifies a live
// message: the author's signature (GossipSub's), the room's topic, size,
// seal, envelope rules; then the kind the set holds, and the sent time:
// not in the future (beyond MaxClockSkew) nor older than the set's window,
// by this node's clock, or by the room's (roomNow) when its members agree
// that this node's clock is off. An item out of the window is skipped
// (errSyncSkip), never a lie.
// It does not apply the rate limit (a session is bounded by its own
// limits) nor the replay check (the caller drops what it has).
func (s *Service) checkSynced(r *room, set pb.SyncSet, p parsedSigned, now time.Time) (syncedMsg, error) {
	if err := p.verify(); err != nil {
		return syncedMsg{}, fmt.Errorf("%w: %w", errSyncLie, err)
	}
	sm, raw := p.sm, p.sm.raw
	if sm.topic != r.topicName {
		return syncedMsg{}, fmt.Errorf("%w: message of another topic", errSyncLie)
	}
	env, v := s.decode(r, sm.author, sm.data)
	if v.reason == reasonEpochKey || v.reason == reasonNotMember {
		return syncedMsg{}, fmt.Errorf("%w: %s", errSyncSkip, v.reason) // depends on this node's membership log
	}
	if v.result != pubsub.ValidationAccept {
		return syncedMsg{}, fmt.Errorf("%w: %s", errSyncLie, v.reason)
	}
	wantKind := pb.Kind_KIND_TEXT
	window := s.cfg.SyncWindow
	switch set {
	case pb.SyncSet_SYNC_SET_MEMBERS:
		wantKind, window = pb.Kind_KIND_PRESENCE, s.memberWindow()+s.cfg.MaxClockSkew
	case pb.SyncSet_SYNC_SET_SHARES:
		wantKind = pb.Kind_KIND_FILE_SHARE
	}
	if env.kind != wantKind {
		return syncedMsg{}, fmt.Errorf("%w: kind %v in set %v", errSyncLie, env.kind, set)
	}
	if why := s.outsideWindow(env.sentAt, now, window); why != "" {
		// The window is judged by this node's clock, and a signed item
		// out of it is never held against the peer: this node cannot
		// tell its own clock's error (or the peer's, an honest member
		// that took the item in by its own clock) from a lie. A
		// future-dated item is evidence that this clock is behind its
		// author's: it counts toward the clock_skew warning as a live
		// line does. When the room's authors agree that this clock is
		// off, the item is judged by the corrected clock and taken in
		// when it is in the window then.
		if why == whyFuture {
			s.observeClock(sm.author, env.sentAt, now)
		}
		ref, skewed := s.roomNow(now)
		if !skewed || s.outsideWindow(env.sentAt, ref, window) != "" {
			return syncedMsg{}, fmt.Errorf("%w: %s", errSyncSkip, why)
		}
	}
	it := item{ts: uint64(max(env.sentAt.UnixMilli(), 0)), id: itemID(sm.author, env.id)} // #nosec G115 -- not negative
	return syncedMsg{author: sm.author, env: env, it: it, raw: raw}, nil
}

// Why an item is out of a set's window (outsideWindow).
const (
	whyFuture = "sent in the future"
	whyOld    = "older than the window"
)

// outsideWindow says why an item sent at sentAt is out of a set's window
// by the clock reading now ("" when it is in): sent in the future beyond
// MaxClockSkew, or older than window.
func (s *Service) outsideWindow(sentAt, now time.Time, window time.Duration) string {
	switch {
	case sentAt.After(now.Add(s.cfg.MaxClockSkew)):
		return whyFuture
	case sentAt.Before(now.Add(-window)):
		return whyOld
	}
	return ""
}

// heldSynced reports whether p (parseSigned's) names an item this node holds already:
// in the members set a presence of this node, or one no newer than the
// presence it holds of the author; in the history set a line its replay
// records know (delivered or stored). It reads what raw claims without
// checking the signature: a held item is dropped unchecked, which takes
// nothing in (a forged one costs its sender nothing but saves this node
// the check), while an item that is not held is verified in full by
// checkSynced. In a busy room, many items of a session are held already
// (an older presence the peer still had, a copy that another session or
// GossipSub brought first), and the signature checks were most of the
// sync's cost.
func (s *Service) heldSynced(r *room, set pb.SyncSet, p parsedSigned) ([itemIDSize]byte, bool) {
	if p.sm.topic != r.topicName {
		return [itemIDSize]byte{}, false
	}
	author := p.sm.author
	env, v := s.decode(r, author, p.sm.data)
	if v.result != pubsub.ValidationAccept {
		return [itemIDSize]byte{}, false
	}
	it := item{ts: uint64(max(env.sentAt.UnixMilli(), 0)), id: itemID(author, env.id)} // #nosec G115 -- not negative
	switch {
	case set == pb.SyncSet_SYNC_SET_MEMBERS && env.kind == pb.Kind_KIND_PRESENCE:
		return it.id, author == s.self || r.holdsBeacon(author, it)
	case set == pb.SyncSet_SYNC_SET_HISTORY && env.kind == pb.Kind_KIND_TEXT:
		return it.id, s.replay.has(replayKey{author: author, id: env.id})
	case set == pb.SyncSet_SYNC_SET_SHARES && env.kind == pb.Kind_KIND_FILE_SHARE:
		held := s.replay.has(replayKey{author: author, id: env.id})
		if !held {
			_ = s.cfg.DB.View(func(tx *bolt.Tx) error { held = hasShare(tx, r.topicName, it); return nil })
		}
		return it.id, held
	}
	return it.id, false
}

// acceptSynced verifies the items of a frame and takes them in. With want
// set, each item must be one of want (it is removed, so that a second
// copy counts as unasked). It stops at the first bad item, after taking in
// the good ones before it.
func (s *Service) acceptSynced(r *room, set pb.SyncSet, raws [][]byte, want map[[itemIDSize]byte]bool) (int, error) {
	now, clock := time.Now(), s.wallNow() // the same but in tests
	var good []syncedMsg
	var bad error
	var claimed [][itemIDSize]byte
	defer func() { r.releaseChecks(claimed) }()
	for _, raw := range raws {
		p, err := parseSigned(raw)
		if err != nil {
			bad = fmt.Errorf("%w: %w", errSyncLie, err)
			break
		}
		id, ok := s.heldSynced(r, set, p)
		if !ok && set == pb.SyncSet_SYNC_SET_MEMBERS && id != ([itemIDSize]byte{}) {
			// Another session checks this very presence now (concurrent
			// sessions bring the same news): as if held; should that copy
			// fail, a later session brings this one again.
			if ok = !r.claimCheck(id); !ok {
				claimed = append(claimed, id)
			}
		}
		if ok {
			// Held already (a presence as new or newer, a line this node
			// has): nothing to take, so no signature to check.
			if want != nil {
				if !want[id] {
					bad = fmt.Errorf("%w: item not asked for", errSyncLie)
					break
				}
				delete(want, id)
			}
			continue
		}
		m, err := s.checkSynced(r, set, p, clock)
		if errors.Is(err, errSyncSkip) {
			continue
		}
		if err == nil && want != nil {
			if !want[m.it.id] {
				err = fmt.Errorf("%w: item not asked for", errSyncLie)
			}
			delete(want, m.it.id)
		}
		if err != nil {
			bad = err
			break
		}
		good = append(good, m)
	}
	n := 0
	if set == pb.SyncSet_SYNC_SET_MEMBERS {
		for _, m := range good {
			if s.takeBeacon(r, m, now) {
				n++
			}
		}
	} else if set == pb.SyncSet_SYNC_SET_SHARES {
		n = s.storeShares(r, good, now)
	} else {
		n = s.storeSynced(r, good, now)
	}
	return n, bad
}

// storeFresh takes in the items of a session that are new here, in
// sent-time order, in one transaction: put stores one (and reports
// whether it was new to the store) and its replay record goes with it;
// the replay records are loaded once the transaction committed. It
// returns the new items.
func (s *Service) storeFresh(r *room, ms []syncedMsg, now time.Time, put func(tx *bolt.Tx, m syncedMsg) (bool, error)) ([]syncedMsg, error) {
	slices.SortFunc(ms, func(a, b syncedMsg) int { return compareItems(a.it, b.it) })
	var fresh []syncedMsg
	err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		fresh = fresh[:0]
		for _, m := range ms {
			k := replayKey{author: m.author, id: m.env.id}
			if s.replay.has(k) {
				continue
			}
			ok, err := put(tx, m)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if exp := s.replayExpiry(m.env); exp.After(now) {
				if err := putReplay(tx, k, r.topicName, exp); err != nil {
					return err
				}
			}
			fresh = append(fresh, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, m := range fresh {
		if exp := s.replayExpiry(m.env); exp.After(now) {
			s.replay.load(replayKey{author: m.author, id: m.env.id}, r.topicName, exp.UnixMilli())
		}
	}
	return fresh, nil
}

// storeShares keeps the file shares of a session that are new here and
// emits them (FileShared) in sent-time order, as the live path does.
func (s *Service) storeShares(r *room, ms []syncedMsg, now time.Time) int {
	fresh, err := s.storeFresh(r, ms, now, func(tx *bolt.Tx, m syncedMsg) (bool, error) {
		return putShare(tx, r.topicName, m.it, m.raw)
	})
	if err != nil {
		s.log.Error("cannot store synced shares", "room", r.name, "err", err)
		return 0
	}
	for _, m := range fresh {
		if m.author != s.self {
			s.cfg.Emitter.Emit(FileShared{Room: r.name, From: m.author, Share: m.env.file})
		}
	}
	return len(fresh)
}

// storeSynced stores the chat lines of a session that are new here, with
// their replay records, and emits them in sent-time order, marked caught
// up.
func (s *Service) storeSynced(r *room, ms []syncedMsg, now time.Time) int {
	var recs []*pb.StoredMessage
	fresh, err := s.storeFresh(r, ms, now, func(tx *bolt.Tx, m syncedMsg) (bool, error) {
		if hasHistory(tx, r.topicName, m.it) {
			return false, nil
		}
		shared := r.nickShared(m.author, s.self, m.env.nick, s.cfg.Nick())
		rec := &pb.StoredMessage{
			Id: m.env.id[:], From: []byte(m.author), Nick: m.env.nick, Text: m.env.text,
			SentAtMs: m.env.sentAt.UnixMilli(), ReceivedAtMs: now.UnixMilli(), NickShared: shared,
			Signed: m.raw, CaughtUp: true,
		}
		ok, err := insertHistory(tx, r.topicName, rec, s.cfg.HistoryLimit)
		if ok {
			recs = append(recs, rec)
		}
		return ok, err
	})
	if err != nil {
		s.log.Error("cannot store synced messages", "room", r.name, "err", err)
		return 0
	}
	if len(fresh) > 0 {
		r.caughtUp(len(fresh))
	}
	for i, m := range fresh {
		ev := s.messageEvent(r, m.author, &m.env, recs[i].NickShared)
		ev.CaughtUp = true
		s.cfg.Emitter.Emit(ev)
	}
	return len(fresh)
}

// takeBeacon takes in a member's signed presence from a session. It
// reports whether it was newer than the one known.
func (s *Service) takeBeacon(r *room, m syncedMsg, now time.Time) bool {
	if m.author == s.self {
		return false
	}
	ev, newer := r.offerBeacon(m.author, &m.env, beacon{it: m.it, raw: m.raw}, now, s.cfg.PresenceTimeout)
	if !newer {
		return false
	}
	if len(m.env.record) > 0 && !r.recordKnown(m.author, m.env.record, now) {
		if recEnv, rec, err := verifyPeerRecord(m.env.record, m.author); err == nil {
			s.learnAddrs(r, m.author, recEnv, rec)
			r.recordLearned(m.author, m.env.record, now)
		}
	}
	if ev != nil {
		s.cfg.Emitter.Emit(*ev)
	}
	r.markNews()
	return true
}
