package rooms

import (
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
)

// readLoop delivers r's accepted messages.
func (s *Service) readLoop(r *room) {
	defer r.wg.Done()
	for {
		m, err := r.sub.Next(r.ctx)
		if err != nil {
			return
		}
		in, ok := m.ValidatorData.(*incoming)
		if !ok {
			s.log.Error("room message delivered without validation", "room", r.name)
			continue
		}
		s.deliver(r, in, time.Now())
	}
}

// deliver updates the member list, persists the message (history and
// replay record in one transaction) and emits its events.
func (s *Service) deliver(r *room, in *incoming, now time.Time) {
	env := &in.env
	if in.author != s.self {
		if in.rec != nil {
			s.learnAddrs(r, in.author, in.recEnv, in.rec)
		}
		ev, newcomer := r.observe(in.author, env.nick, env.kind == pb.Kind_KIND_PRESENCE && env.leaving, now)
		if ev != nil {
			s.cfg.Emitter.Emit(*ev)
		}
		if newcomer {
			r.requestReply()
		}
	}
	var rec *pb.StoredMessage
	var msg events.Message
	if env.kind == pb.Kind_KIND_TEXT {
		shared := r.nickShared(in.author, s.self, env.nick, s.cfg.Nick())
		msg = s.messageEvent(r, in.author, env, shared)
		rec = &pb.StoredMessage{
			Id: env.id[:], From: []byte(in.author), Nick: env.nick, Text: env.text,
			SentAtMs: env.sentAt.UnixMilli(), ReceivedAtMs: now.UnixMilli(), NickShared: shared,
		}
	}
	err := s.cfg.DB.Update(func(tx *bolt.Tx) error {
		if err := putReplay(tx, replayKey{author: in.author, id: env.id}, r.topicName, s.replayExpiry(*env)); err != nil {
			return err
		}
		if rec != nil {
			return appendHistory(tx, r.topicName, rec, s.cfg.HistoryLimit)
		}
		return nil
	})
	if err != nil {
		s.log.Error("cannot store room message", "room", r.name, "err", err)
	}
	switch env.kind {
	case pb.Kind_KIND_TEXT:
		s.cfg.Emitter.Emit(msg)
	case pb.Kind_KIND_FILE_SHARE:
		if in.author != s.self {
			s.cfg.Emitter.Emit(FileShared{Room: r.name, From: in.author, Share: env.file})
		}
	}
}

// peerLoop wakes waiting publishers when a peer joins r's topic.
func (s *Service) peerLoop(r *room) {
	defer r.wg.Done()
	for {
		ev, err := r.evh.NextPeerEvent(r.ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			r.signalPeers()
		}
	}
}

// presenceLoop announces this node in r at PresenceInterval, and soon
// after a newcomer appears (at most once per replyGap, so a burst of
// newcomers costs one announcement), and marks silent members offline.
func (s *Service) presenceLoop(r *room) {
	defer r.wg.Done()
	replyGap := min(s.cfg.PresenceInterval/4, time.Second)
	last := time.Now()
	announce := func(wait bool) {
		last = time.Now()
		if err := s.announce(r.ctx, r, wait); err != nil {
			s.log.Debug("presence", "room", r.name, "err", err)
		}
	}
	announce(true)
	tick := time.NewTimer(jitter(s.cfg.PresenceInterval))
	defer tick.Stop()
	sweep := time.NewTicker(max(s.cfg.PresenceTimeout/4, 10*time.Millisecond))
	defer sweep.Stop()
	reply := time.NewTimer(time.Hour)
	reply.Stop()
	defer reply.Stop()
	replyPending := false
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
			announce(false)
			tick.Reset(jitter(s.cfg.PresenceInterval))
			reply.Stop()
			replyPending = false
		case <-r.replyCh:
			if !replyPending {
				replyPending = true
				reply.Reset(max(rand.N(replyGap/2+1), time.Until(last.Add(replyGap)))) // #nosec G404 -- timer jitter, not a secret
			}
		case <-reply.C:
			replyPending = false
			announce(false)
		case now := <-sweep.C:
			for _, ev := range r.sweep(now, s.cfg.PresenceTimeout) {
				s.cfg.Emitter.Emit(ev)
			}
		}
	}
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
