package rooms

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/rooms/pb"
	bolt "go.etcd.io/bbolt"
)

// Timeouts of best-effort work at shutdown.
const (
	leaveAnnounceTimeout = time.Second
	pubsubValidateQueue  = 256
)

// Service runs the rooms of one node on one GossipSub instance.
type Service struct {
	cfg  Config
	log  *slog.Logger
	self peer.ID
	ps   *pubsub.PubSub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // service goroutines (not per-room ones)

	replay *replayGuard
	limits *limiters

	// gate keeps validators (readers) out of a closing service: Close
	// takes it exclusively to set closed.
	gate   sync.RWMutex
	closed bool // guarded by gate

	opMu  sync.Mutex       // serializes Join*, Leave and Close
	mu    sync.RWMutex     // guards rooms
	rooms map[string]*room // by canonical name; guarded by mu
}

// New starts the rooms service: it creates the GossipSub router (StrictSign,
// peer scoring, flood publishing) on cfg.Host and rejoins the rooms stored
// in cfg.DB, emitting a joined event for each. The service stops when Close
// is called (or ctx ends; Close must still be called to wait).
func New(ctx context.Context, cfg Config) (*Service, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ensureBuckets(c.DB); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:    c,
		log:    c.Logger.With("component", "rooms"),
		self:   c.Host.ID(),
		replay: newReplayGuard(c.ReplayLimit),
		limits: newLimiters(c.RateLimit, c.RateBurst),
		rooms:  make(map[string]*room),
	}
	if err := loadReplay(c.DB, s.replay, time.Now()); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	opts := []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithPeerScore(peerScoreParams(), peerScoreThresholds()),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithValidateQueueSize(pubsubValidateQueue),
		pubsub.WithLogger(c.Logger.With("component", "pubsub")),
	}
	s.ps, err = pubsub.NewGossipSub(s.ctx, c.Host, append(opts, c.PubSubOptions...)...)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("start gossipsub: %w", err)
	}
	if err := s.rejoin(); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.pruneLoop()
	return s, nil
}

// rejoin joins the rooms stored in the database.
func (s *Service) rejoin() error {
	recs, err := loadJoined(s.cfg.DB)
	if err != nil {
		return err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	for _, rec := range recs {
		if !isCanonicalName(rec.Name) {
			s.log.Warn("skipping stored room with invalid name", "room", rec.Name)
			continue
		}
		if _, err := s.startRoom(rec.Name, rec.Key); err != nil {
			s.log.Warn("cannot rejoin room", "room", rec.Name, "err", err)
			continue
		}
		s.cfg.Emitter.Emit(events.Joined{Room: rec.Name})
	}
	return nil
}

// Join joins the public room name (after NormalizeName). Joining a room
// already joined does nothing; a private room of that name is ErrNameTaken.
func (s *Service) Join(_ context.Context, name string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return err
	}
	return s.join(name, nil, false)
}

// Create creates a private room with a fresh random 256-bit key, joins it
// and returns its invite code. The name must not be in use.
func (s *Service) Create(_ context.Context, name string) (invite string, err error) {
	name, err = NormalizeName(name)
	if err != nil {
		return "", err
	}
	key, err := newRoomKey()
	if err != nil {
		return "", err
	}
	if err := s.join(name, key, true); err != nil {
		return "", err
	}
	return EncodeInvite(name, key)
}

// JoinInvite joins the private room of an invite code (surrounding white
// space is ignored) and returns its name.
func (s *Service) JoinInvite(_ context.Context, invite string) (name string, err error) {
	name, key, err := DecodeInvite(strings.TrimSpace(invite))
	if err != nil {
		return "", err
	}
	return name, s.join(name, key, false)
}

// JoinPassphrase joins the private room whose key is derived from the room
// name and passphrase with Argon2id (64 MiB, 3 passes; this takes a moment).
func (s *Service) JoinPassphrase(_ context.Context, name, passphrase string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return err
	}
	key, err := passphraseKey(name, passphrase)
	if err != nil {
		return err
	}
	return s.join(name, key, false)
}

// join joins a public (key nil) or private room and persists it.
func (s *Service) join(name string, key []byte, mustBeNew bool) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	if r := s.room(name); r != nil {
		if !mustBeNew && r.private == (key != nil) && bytes.Equal(r.key, key) {
			return nil
		}
		return fmt.Errorf("%w: %q is already joined as a %s room", ErrNameTaken, name, kindName(r.private))
	}
	r, err := s.startRoom(name, key)
	if err != nil {
		return err
	}
	if err := putJoined(s.cfg.DB, &pb.JoinedRoom{Name: name, Key: key, JoinedAtMs: r.joinedAt.UnixMilli()}); err != nil {
		s.stopRoom(r)
		return err
	}
	s.cfg.Emitter.Emit(events.Joined{Room: name})
	return nil
}

func kindName(private bool) string {
	if private {
		return "private"
	}
	return "public"
}

// startRoom subscribes to the room's topic and starts its goroutines. The
// caller holds opMu.
func (s *Service) startRoom(name string, key []byte) (_ *room, err error) {
	r := newRoom(name)
	if key != nil {
		r.private, r.key = true, bytes.Clone(key)
		if r.keys, err = deriveKeys(key, name); err != nil {
			return nil, err
		}
		r.topicName = r.keys.topic
	} else {
		r.topicName = PublicTopicPrefix + name
	}
	if r.topic, err = s.ps.Join(r.topicName); err != nil {
		return nil, fmt.Errorf("join topic of %q: %w", name, err)
	}
	defer func() {
		if err != nil {
			s.teardown(r)
		}
	}()
	if err = r.topic.SetScoreParams(topicScoreParams()); err != nil {
		return nil, fmt.Errorf("score params of %q: %w", name, err)
	}
	if err = s.ps.RegisterTopicValidator(r.topicName, s.validator(r)); err != nil {
		return nil, fmt.Errorf("validator of %q: %w", name, err)
	}
	if r.evh, err = r.topic.EventHandler(); err != nil {
		return nil, fmt.Errorf("topic events of %q: %w", name, err)
	}
	if r.sub, err = r.topic.Subscribe(pubsub.WithBufferSize(subBufferSize)); err != nil {
		return nil, fmt.Errorf("subscribe to %q: %w", name, err)
	}
	r.ctx, r.cancel = context.WithCancel(s.ctx)
	r.wg.Add(3)
	go s.readLoop(r)
	go s.peerLoop(r)
	go s.presenceLoop(r)
	s.mu.Lock()
	s.rooms[name] = r
	s.mu.Unlock()
	return r, nil
}

// stopRoom removes r from the joined set and tears it down. The caller
// holds opMu.
func (s *Service) stopRoom(r *room) {
	s.mu.Lock()
	delete(s.rooms, r.name)
	s.mu.Unlock()
	s.teardown(r)
}

// teardown stops r's goroutines, then cancels the subscription and event
// handler, then removes the validator and closes the topic (the order
// pubsub requires).
func (s *Service) teardown(r *room) {
	if r.cancel != nil {
		r.cancel()
	}
	if r.sub != nil {
		r.sub.Cancel()
	}
	if r.evh != nil {
		r.evh.Cancel()
	}
	r.wg.Wait()
	if err := s.ps.UnregisterTopicValidator(r.topicName); err != nil && s.ctx.Err() == nil {
		s.log.Debug("unregister validator", "room", r.name, "err", err)
	}
	if err := r.topic.Close(); err != nil && s.ctx.Err() == nil {
		s.log.Warn("close room topic", "room", r.name, "err", err)
	}
}

// Leave announces that this node leaves (best effort), unsubscribes and
// forgets the room (a private room's key is deleted from the store; the
// history is kept). It emits a left event.
func (s *Service) Leave(name string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	r := s.room(name)
	if r == nil {
		return fmt.Errorf("%w: %q", ErrNotJoined, name)
	}
	s.announceLeaving([]*room{r})
	s.stopRoom(r)
	if err := deleteJoined(s.cfg.DB, name); err != nil {
		return err
	}
	s.cfg.Emitter.Emit(events.Left{Room: name})
	return nil
}

// Close announces leaving in every room (best effort, at most a second),
// stops every room and the GossipSub router, removes its stream handlers
// and waits for the service's goroutines. Joined rooms stay stored and are
// rejoined by the next New. Close does not close the host or the database.
func (s *Service) Close() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.ctx.Err() != nil && s.rooms == nil {
		return nil
	}
	s.mu.Lock()
	all := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		all = append(all, r)
	}
	s.rooms = nil
	s.mu.Unlock()
	if s.ctx.Err() == nil {
		s.announceLeaving(all)
	}
	for _, r := range all {
		s.teardown(r)
	}
	s.gate.Lock()
	s.closed = true
	s.gate.Unlock()
	s.cancel()
	s.wg.Wait()
	for _, id := range pubsub.GossipSubDefaultProtocols {
		s.cfg.Host.RemoveStreamHandler(id)
	}
	return nil
}

// announceLeaving publishes a leaving presence in each room, in parallel,
// waiting at most leaveAnnounceTimeout.
func (s *Service) announceLeaving(rs []*room) {
	ctx, cancel := context.WithTimeout(s.ctx, leaveAnnounceTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			if err := s.announce(ctx, r, true); err != nil {
				s.log.Debug("leaving announcement", "room", r.name, "err", err)
			}
		})
	}
	wg.Wait()
}

func (s *Service) room(name string) *room {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rooms[name]
}

// joined returns the joined room called name (any case).
func (s *Service) joined(name string) (*room, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return nil, err
	}
	r := s.room(n)
	if r == nil {
		if s.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: %q", ErrNotJoined, n)
	}
	return r, nil
}

// Invite returns the invite code of a joined private room.
func (s *Service) Invite(name string) (string, error) {
	r, err := s.joined(name)
	if err != nil {
		return "", err
	}
	if !r.private {
		return "", fmt.Errorf("%w: anyone can /join %s", ErrPublicRoom, r.name)
	}
	return EncodeInvite(r.name, r.key)
}

// Rooms lists the joined rooms by name.
func (s *Service) Rooms() []RoomInfo {
	s.mu.RLock()
	out := make([]RoomInfo, 0, len(s.rooms))
	for _, r := range s.rooms {
		out = append(out, RoomInfo{Name: r.name, Private: r.private, Members: r.onlineCount()})
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b RoomInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Who lists the members of a joined room: this node first, then members
// heard from in the last hour, online ones first.
func (s *Service) Who(name string) ([]Member, error) {
	r, err := s.joined(name)
	if err != nil {
		return nil, err
	}
	return r.who(s.self, s.cfg.Nick()), nil
}

// Send publishes a chat line in a joined room and returns it as it will be
// delivered. The node's own subscription delivers it too, which emits the
// same message event (and stores it in the history). Publishing right
// after joining waits up to MeshWait for a peer on the room's topic.
func (s *Service) Send(ctx context.Context, name, text string) (events.Message, error) {
	r, err := s.joined(name)
	if err != nil {
		return events.Message{}, err
	}
	if err := checkText(text); err != nil {
		return events.Message{}, err
	}
	nick := s.cfg.Nick()
	env, err := newEnvelope(pb.Kind_KIND_TEXT, nick, time.Now())
	if err != nil {
		return events.Message{}, err
	}
	env.text = text
	if err := s.publish(ctx, r, &env); err != nil {
		return events.Message{}, err
	}
	return s.messageEvent(r, s.self, &env, r.nickShared(s.self, s.self, nick, nick)), nil
}

// ShareFile announces a file in a joined room. Other members' services
// call their Config.OnFileShare.
func (s *Service) ShareFile(ctx context.Context, name string, share FileShare) error {
	r, err := s.joined(name)
	if err != nil {
		return err
	}
	if err := share.Validate(); err != nil {
		return err
	}
	env, err := newEnvelope(pb.Kind_KIND_FILE_SHARE, s.cfg.Nick(), time.Now())
	if err != nil {
		return err
	}
	env.file = share
	return s.publish(ctx, r, &env)
}

// History returns up to n messages of a joined room from the store, oldest
// first; n <= 0 means DefaultHistoryN. It includes messages from before a
// restart.
func (s *Service) History(name string, n int) ([]events.Message, error) {
	r, err := s.joined(name)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		n = DefaultHistoryN
	}
	n = min(n, s.cfg.HistoryLimit)
	recs, err := readHistory(s.cfg.DB, r.topicName, n)
	if err != nil {
		return nil, err
	}
	out := make([]events.Message, 0, len(recs))
	for _, rec := range recs {
		from, err := peer.IDFromBytes(rec.From)
		if err != nil {
			s.log.Warn("skipping history record with bad author", "room", r.name, "err", err)
			continue
		}
		env := envelope{nick: rec.Nick, text: rec.Text, sentAt: time.UnixMilli(rec.SentAtMs)}
		copy(env.id[:], rec.Id)
		out = append(out, s.messageEvent(r, from, &env, rec.NickShared))
	}
	return out, nil
}

func (s *Service) messageEvent(r *room, from peer.ID, env *envelope, nickShared bool) events.Message {
	return events.Message{
		Room:        r.name,
		ID:          hex.EncodeToString(env.id[:]),
		From:        from.String(),
		Nick:        env.nick,
		Text:        env.text,
		SentAt:      env.sentAt.UTC().Format(time.RFC3339Nano),
		Private:     r.private,
		Fingerprint: identity.ShortFingerprint(from),
		NickShared:  nickShared,
	}
}

// publish waits (bounded) for a peer on the topic, encodes env and
// publishes it. The local validator runs synchronously inside Publish.
func (s *Service) publish(ctx context.Context, r *room, env *envelope) error {
	if err := identity.ValidateNick(env.nick); err != nil {
		return fmt.Errorf("own nick: %w", err)
	}
	if err := s.waitPeers(ctx, r); err != nil {
		return err
	}
	data, err := s.encode(r, env)
	if err != nil {
		return err
	}
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: message of %d bytes over the %d limit", ErrInvalidText, len(data), MaxMessageSize)
	}
	out := &outgoing{env: *env}
	err = r.topic.Publish(ctx, data, pubsub.WithValidatorData(out))
	switch {
	case err == nil:
		return nil
	case out.v.reason == reasonRate:
		return fmt.Errorf("%w in %s: at most %d messages at once, then %v per second", ErrRateLimited, r.name, s.cfg.RateBurst, float64(s.cfg.RateLimit))
	case errors.Is(err, pubsub.ErrTopicClosed):
		return fmt.Errorf("%w: %q", ErrNotJoined, r.name)
	case out.v.reason != "" && out.v.reason != reasonOK:
		return fmt.Errorf("%w in %s: refused by own validator (%s)", ErrPublish, r.name, out.v.reason)
	default:
		return fmt.Errorf("%w in %s: %w", ErrPublish, r.name, err)
	}
}

// waitPeers waits until the room's topic has a peer, at most until MeshWait
// after joining. Flood publishing then sends to every peer on the topic.
func (s *Service) waitPeers(ctx context.Context, r *room) error {
	deadline := r.joinedAt.Add(s.cfg.MeshWait)
	for {
		wake := r.peerWait()
		if len(r.topic.ListPeers()) > 0 {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-wake:
			t.Stop()
		case <-t.C:
			return nil
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for peers in %s: %w", r.name, ctx.Err())
		}
	}
}

// announce publishes a presence envelope.
func (s *Service) announce(ctx context.Context, r *room, leaving bool) error {
	env, err := newEnvelope(pb.Kind_KIND_PRESENCE, s.cfg.Nick(), time.Now())
	if err != nil {
		return err
	}
	env.leaving = leaving
	return s.publish(ctx, r, &env)
}

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
		if err := putReplay(tx, replayKey{author: in.author, id: env.id}, s.replayExpiry(*env)); err != nil {
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
		if in.author != s.self && s.cfg.OnFileShare != nil {
			s.cfg.OnFileShare(r.name, in.author, env.file)
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
	replyGap := min(s.cfg.PresenceInterval/4, 2*time.Second)
	last := time.Now()
	announce := func() {
		last = time.Now()
		if err := s.announce(r.ctx, r, false); err != nil {
			s.log.Debug("presence", "room", r.name, "err", err)
		}
	}
	announce()
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
			announce()
			tick.Reset(jitter(s.cfg.PresenceInterval))
			reply.Stop()
			replyPending = false
		case <-r.replyCh:
			if !replyPending {
				replyPending = true
				reply.Reset(max(rand.N(replyGap/2+1), time.Until(last.Add(replyGap))))
			}
		case <-reply.C:
			replyPending = false
			announce()
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
