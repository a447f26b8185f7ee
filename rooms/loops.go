package rooms

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
)

// readLoop moves r's accepted messages from the subscription to r.inbox,
// at once: the subscription's buffer must never fill (pubsub drops what
// a full subscription cannot take, silently), so the store writes happen
// on storeLoop, in batches. Strangers' messages are shed before
// validation while the inbox is behind (shed.go), so what fills it past
// that mark are known authors' messages, few by their rate limits.
func (s *Service) readLoop(r *room) {
	defer r.wg.Done()
	for {
		m, err := r.sub.Next(r.ctx)
		if err != nil {
			return
		}
		if !s.toInbox(r, m) {
			return
		}
	}
}

// toInbox hands an accepted message to storeLoop, waiting while the inbox
// is full. It reports false when r stopped.
func (s *Service) toInbox(r *room, m *pubsub.Message) bool {
	in, ok := m.ValidatorData.(*incoming)
	if !ok {
		s.log.Error("room message delivered without validation", "room", r.name)
		return true
	}
	if k := in.env.kind; k == pb.Kind_KIND_TEXT || k == pb.Kind_KIND_PRESENCE || k == pb.Kind_KIND_FILE_SHARE {
		if b, err := marshalSigned(m.Message); err == nil && len(b) <= maxSignedSize {
			in.signed = b
		}
	}
	select {
	case r.inbox <- in:
		return true
	default:
	}
	s.log.Warn("room delivery behind: inbox full, waiting for the store", "room", r.name, "inbox", cap(r.inbox))
	select {
	case r.inbox <- in:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// storeLoop persists and shows r's accepted messages, up to storeBatch
// in one store transaction. When r stops it still delivers what the inbox
// holds: those messages were accepted (and maybe forwarded).
func (s *Service) storeLoop(r *room) {
	defer r.wg.Done()
	batch := make([]*incoming, 0, storeBatch)
	for {
		select {
		case in := <-r.inbox:
			batch = append(batch[:0], in)
		case <-r.ctx.Done():
			for {
				batch = drainInbox(r.inbox, batch[:0])
				if len(batch) == 0 {
					return
				}
				s.deliver(r, batch, time.Now())
			}
		}
		batch = drainInbox(r.inbox, batch)
		s.deliver(r, batch, time.Now())
	}
}

// drainInbox appends to batch what inbox holds now, up to storeBatch.
func drainInbox(inbox <-chan *incoming, batch []*incoming) []*incoming {
	for len(batch) < storeBatch {
		select {
		case in := <-inbox:
			batch = append(batch, in)
		default:
			return batch
		}
	}
	return batch
}

// delivery is one accepted message on its way to the store and the user.
type delivery struct {
	in     *incoming
	rec    *pb.StoredMessage // chat lines: the history record
	msg    events.Message    // chat lines: the event
	stored bool              // the history did not hold it yet
}

// deliver updates the member list, persists the messages (history and
// replay records, all in one transaction) and emits their events.
func (s *Service) deliver(r *room, ins []*incoming, now time.Time) {
	ds := make([]delivery, len(ins))
	for i, in := range ins {
		ds[i] = s.observeAuthor(r, in, now)
	}
	err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		for i := range ds {
			d := &ds[i]
			env := &d.in.env
			if err := putReplay(tx, replayKey{author: d.in.author, id: env.id}, r.topicName, s.replayExpiry(*env)); err != nil {
				return err
			}
			if d.rec != nil {
				var err error
				if d.stored, err = insertHistory(tx, r.topicName, d.rec, s.cfg.HistoryLimit); err != nil {
					return err
				}
			}
			if env.kind == pb.Kind_KIND_FILE_SHARE && d.in.signed != nil {
				// Kept for the shares set of the sync.
				if _, err := putShare(tx, r.topicName, d.in.item(), d.in.signed); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		// Show what was accepted even so: the user loses no line.
		s.log.Error("cannot store room messages", "room", r.name, "messages", len(ds), "err", err)
		for i := range ds {
			ds[i].stored = true
		}
	}
	for i := range ds {
		s.emitDelivered(r, &ds[i])
	}
}

// observeAuthor updates the member list with an accepted message and
// prepares its history record and event.
func (s *Service) observeAuthor(r *room, in *incoming, now time.Time) delivery {
	env := &in.env
	if in.author != s.self {
		if in.rec != nil {
			s.learnAddrs(r, in.author, in.recEnv, in.rec)
		}
		var ev *events.Presence
		if env.kind == pb.Kind_KIND_PRESENCE && in.signed != nil {
			// A live presence (a leaving one, from this version) becomes
			// the member's signed presence, for the sync to pass on.
			var newer bool
			ev, newer = r.offerBeacon(in.author, env, beacon{it: in.item(), raw: in.signed}, now, s.cfg.PresenceTimeout)
			if newer {
				r.markNews()
			}
		} else {
			ev, _ = r.observe(in.author, env.nick, env.kind == pb.Kind_KIND_PRESENCE && env.leaving, now)
		}
		if ev != nil {
			s.cfg.Emitter.Emit(*ev)
		}
	}
	d := delivery{in: in, stored: true}
	if env.kind == pb.Kind_KIND_TEXT {
		shared := r.nickShared(in.author, s.self, env.nick, s.cfg.Nick())
		d.msg = s.messageEvent(r, in.author, env, shared)
		d.rec = &pb.StoredMessage{
			Id: env.id[:], From: []byte(in.author), Nick: env.nick, Text: env.text,
			SentAtMs: env.sentAt.UnixMilli(), ReceivedAtMs: now.UnixMilli(), NickShared: shared,
			Signed: in.signed,
		}
	}
	return d
}

// emitDelivered emits the event of a stored message.
func (s *Service) emitDelivered(r *room, d *delivery) {
	switch d.in.env.kind {
	case pb.Kind_KIND_TEXT:
		if d.stored { // else the sync brought it first
			s.cfg.Emitter.Emit(d.msg)
		}
	case pb.Kind_KIND_FILE_SHARE:
		if d.in.author != s.self {
			s.cfg.Emitter.Emit(FileShared{Room: r.name, From: d.in.author, Share: d.in.env.file})
		}
	}
}

// peerLoop wakes waiting publishers when a peer joins r's topic, and
// hands new topic peers to the sync loop.
func (s *Service) peerLoop(r *room) {
	defer r.wg.Done()
	for {
		ev, err := r.evh.NextPeerEvent(r.ctx)
		if err != nil {
			return
		}
		switch ev.Type {
		case pubsub.PeerJoin:
			r.signalPeers()
			r.peerJoined(ev.Peer)
			s.queueMembers(r, ev.Peer)
		case pubsub.PeerLeave:
			if len(r.topic.ListPeers()) == 0 {
				r.peerJoined("") // cut off: sync history again on reconnection
			}
		}
	}
}

// presenceLoop keeps this node's signed presence in r fresh (the sync
// spreads it, see syncLoop) and marks silent members offline. Presence
// is not published on the topic, except when leaving (announceLeaving):
// no member answers a newcomer, and joining costs the room no broadcast.
func (s *Service) presenceLoop(r *room) {
	defer r.wg.Done()
	s.refreshOwn(r)
	tick := time.NewTimer(jitter(s.cfg.PresenceInterval))
	defer tick.Stop()
	sweep := time.NewTicker(max(s.cfg.PresenceTimeout/4, 10*time.Millisecond))
	defer sweep.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
			s.refreshOwn(r)
			tick.Reset(jitter(s.cfg.PresenceInterval))
		case now := <-sweep.C:
			for _, ev := range r.sweep(now, s.cfg.PresenceTimeout) {
				s.cfg.Emitter.Emit(ev)
			}
		}
	}
}

// refreshOwn signs a new presence of this node in r and asks the sync
// loop to spread it.
func (s *Service) refreshOwn(r *room) {
	nick := s.cfg.Nick()
	b, err := s.ownBeacon(r, nick)
	if err != nil {
		s.log.Warn("cannot sign presence", "room", r.name, "err", err)
		return
	}
	r.setOwn(b, nick)
	r.markDirty()
}

// ownCurrent signs a new presence of this node in r if the nick changed
// since the last one.
func (s *Service) ownCurrent(r *room) {
	if !r.ownIsFor(s.cfg.Nick()) {
		s.refreshOwn(r)
	}
}

// ownBeacon builds and signs a presence of this node in r, as nick.
func (s *Service) ownBeacon(r *room, nick string) (beacon, error) {
	env, err := newEnvelope(pb.Kind_KIND_PRESENCE, nick, time.Now())
	if err != nil {
		return beacon{}, err
	}
	if env.record, err = s.ownPeerRecord(r); err != nil {
		s.log.Debug("presence without addresses", "room", r.name, "err", err)
	}
	data, err := s.encode(r, &env)
	if err != nil {
		return beacon{}, err
	}
	key := s.cfg.Host.Peerstore().PrivKey(s.self)
	if key == nil {
		return beacon{}, fmt.Errorf("no private key for %s", s.self)
	}
	raw, err := signMessage(key, s.self, r.topicName, data)
	if err != nil {
		return beacon{}, err
	}
	return beacon{it: item{ts: uint64(max(env.sentAt.UnixMilli(), 0)), id: itemID(s.self, env.id)}, raw: raw}, nil // #nosec G115 -- not negative
}

// Spreading the member set.
const (
	// gossipDelay gathers the changes of the member set before a round.
	gossipDelay = 300 * time.Millisecond
	// gossipFanout is how many topic peers a round syncs the member set
	// with after this node's presence changed.
	gossipFanout = 3
	// forwardEvery is the least time between two rounds that pass on
	// other members' news, each with one random topic peer: every member
	// refreshes its presence each PresenceInterval, so in a room of N
	// news comes in N/PresenceInterval times a second, and a round per
	// piece of news (with gossipFanout peers) made the sessions grow
	// with N per member.
	forwardEvery = 2 * time.Second
	// newPeersQueue bounds the topic peers waiting for a first sync.
	newPeersQueue = 64
	// shedQuiet is how long a room's shedding must have stopped before
	// the history is synced again to take in what was shed, and
	// recoverEvery the least time between two such recoveries (a node
	// shedding for minutes recovers once per recoverEvery at most).
	shedQuiet    = time.Second
	recoverEvery = 10 * time.Second
)

// syncLoop runs r's sync sessions, one at a time: with each new topic
// peer, the member set, and the history with the first SyncPeers of them
// after joining or after a reconnection (the room had no peer); when this
// node's presence changed, a round with gossipFanout random topic peers;
// and when other members' newer presences came in, a round with one
// random topic peer, at most every forwardEvery. Sessions exchange the
// differences both ways, so news spreads through the room in a few
// rounds (push-pull epidemic), and each member runs about one session per
// forwardEvery however large the room.
// It reports the history sync's state (events.RoomSync) and retries,
// with another topic peer, a history sync that left gaps.
func (s *Service) syncLoop(r *room) {
	defer r.wg.Done()
	tr := newSyncTracker(r.name, s.cfg.SyncWindow)
	s.reportSync(r, tr)
	gossip := time.NewTimer(time.Hour)
	gossip.Stop()
	defer gossip.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	forward := time.NewTimer(time.Hour)
	forward.Stop()
	defer forward.Stop()
	recoverT := time.NewTimer(time.Hour)
	recoverT.Stop()
	defer recoverT.Stop()
	pending, retrying, forwarding := false, false, false
	var lastForward, lastRecover time.Time
	armRetry := func() {
		if !retrying && tr.needsRetry() {
			retrying = true
			retry.Reset(jitter(tr.retryDelay()))
		}
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case p := <-r.newPeers:
			if p == "" {
				tr.cutOff(r.caughtTotal.Load())
				retrying = false
				retry.Stop()
				s.reportSync(r, tr)
				continue
			}
			s.session(r, p, pb.SyncSet_SYNC_SET_MEMBERS)
			if tr.peers < s.cfg.SyncPeers {
				s.historySession(r, tr, p)
				s.session(r, p, pb.SyncSet_SYNC_SET_SHARES)
				armRetry()
			}
		case <-r.caught:
			s.reportSync(r, tr)
		case <-retry.C:
			retrying = false
			tr.retries++
			if p, ok := s.retryPeer(r); ok {
				s.historySession(r, tr, p)
			}
			armRetry()
		case <-r.dirty:
			if !pending {
				pending = true
				gossip.Reset(jitter(gossipDelay))
			}
		case <-gossip.C:
			pending = false
			s.memberRound(r, gossipFanout)
		case <-r.news:
			if !forwarding {
				forwarding = true
				forward.Reset(max(jitter(gossipDelay), time.Until(lastForward.Add(forwardEvery))))
			}
		case <-forward.C:
			forwarding = false
			lastForward = time.Now()
			s.memberRound(r, 1)
		case <-r.shedWake:
			recoverT.Reset(shedQuiet)
		case now := <-recoverT.C:
			if wait := s.recoverShed(r, tr, now, lastRecover); wait > 0 {
				recoverT.Reset(wait)
			} else {
				lastRecover = now
			}
		}
	}
}

// recoverShed syncs r's history with up to SyncPeers topic peers, to
// take in the strangers' lines this node shed under load (shed.go):
// GossipSub will not hand them again. It runs once the shedding has been
// over for shedQuiet, at most every recoverEvery; otherwise it returns
// how long to wait.
func (s *Service) recoverShed(r *room, tr *syncTracker, now, last time.Time) time.Duration {
	ns := r.shedAt.Load()
	if ns == 0 {
		return 0
	}
	if d := time.Unix(0, ns).Add(shedQuiet).Sub(now); d > 0 {
		return d
	}
	if d := last.Add(recoverEvery).Sub(now); d > 0 {
		return d
	}
	if !r.shedAt.CompareAndSwap(ns, 0) { // a shed from now on wakes the loop again
		return shedQuiet
	}
	peers := r.topic.ListPeers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] }) // #nosec G404 -- peer choice, not a secret
	n := 0
	for _, p := range peers {
		if n >= s.cfg.SyncPeers {
			break
		}
		if s.penalised(p) {
			continue
		}
		s.log.Debug("sync after shedding", "room", r.name, "peer", p)
		s.historySession(r, tr, p)
		s.session(r, p, pb.SyncSet_SYNC_SET_SHARES)
		n++
	}
	return 0
}

// memberRound syncs the member set with n random topic peers.
func (s *Service) memberRound(r *room, n int) {
	peers := r.topic.ListPeers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] }) // #nosec G404 -- peer choice, not a secret
	for _, p := range peers[:min(len(peers), n)] {
		s.session(r, p, pb.SyncSet_SYNC_SET_MEMBERS)
	}
}

// historySession runs a history session with p and reports the state
// before and after it.
func (s *Service) historySession(r *room, tr *syncTracker, p peer.ID) {
	tr.start()
	s.reportSync(r, tr)
	st, err := s.sessionStats(r, p, pb.SyncSet_SYNC_SET_HISTORY)
	tr.done(st, err)
	s.reportSync(r, tr)
}

// retryPeer picks a random topic peer that is not penalised.
func (s *Service) retryPeer(r *room) (peer.ID, bool) {
	peers := r.topic.ListPeers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] }) // #nosec G404 -- peer choice, not a secret
	for _, p := range peers {
		if !s.penalised(p) {
			return p, true
		}
	}
	return "", false
}

// session runs one sync session and reports whether it succeeded.
func (s *Service) session(r *room, p peer.ID, set pb.SyncSet) bool {
	_, err := s.sessionStats(r, p, set)
	return err == nil
}

func (s *Service) sessionStats(r *room, p peer.ID, set pb.SyncSet) (syncStats, error) {
	st, err := s.syncWith(r.ctx, r, p, set)
	if err != nil {
		s.log.Debug("sync", "room", r.name, "peer", p, "set", set, "err", err)
		return st, err
	}
	if st.got > 0 || st.sent > 0 || len(st.missing) > 0 {
		s.log.Debug("synced", "room", r.name, "peer", p, "set", set, "got", st.got, "sent", st.sent, "missing", len(st.missing))
	}
	return st, nil
}

// pruneLoop drops expired replay records and idle rate limiters.
func (s *Service) pruneLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.replay.prune(now)
			s.limits.prune(now)
			if err := pruneReplayStore(s.cfg.DB, now); err != nil {
				s.log.Warn("prune replay records", "err", err)
			}
		}
	}
}
