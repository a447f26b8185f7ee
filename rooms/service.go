package rooms

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/rooms/pb"
)

const (
	// leaveAnnounceTimeout bounds the leaving announcements of Leave and
	// Close.
	leaveAnnounceTimeout = time.Second
	// pubsubValidateQueue is GossipSub's queue of messages awaiting
	// validation (default 32), larger to absorb bursts.
	pubsubValidateQueue = 256
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
	clock  clockWatch // peers' sent times against this node's clock (clock.go)
	limits *limiters
	subs   *subFilter
	shed   *shedder // load shedding before validation (shed.go)
	// lastSentMs is the sent_at (Unix ms) of this node's latest line
	// (nextSentAt).
	lastSentMs atomic.Int64
	sent       *sendTracker // follows leaving announcements out to the peers

	syncSlots syncSlots  // inbound sync sessions
	penalties penaltyBox // peers that lied in a sync session
	mem       memberSvc  // membership exchanges (members.go)

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
// in cfg.DB, emitting a joined event for each.
//
// Lifecycle (the same for every Parley service): ctx bounds construction
// only, and New fails if it has ended. The service, GossipSub and the
// rooms' goroutines run until Close, whatever happens to ctx afterwards,
// so that Close can still announce leaving after a signal ended the
// caller's context.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start rooms: %w", err)
	}
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
		limits: newLimiters(c.RateLimit, c.RateBurst, c.ReplayLimit),
		rooms:  make(map[string]*room),
		mem:    newMemberSvc(),
		shed:   newShedder(c.Known, c.Newcomer, newLimiters(frontRateFactor*c.RateLimit, frontRateFactor*c.RateBurst, c.ReplayLimit)),
	}
	if err := loadReplay(c.DB, s.replay, time.Now()); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.subs = newSubFilter(c.Host.Network())
	s.sent = newSendTracker(s.self)
	opts := []pubsub.Option{
		pubsub.WithRawTracer(s.sent),
		pubsub.WithRawTracer(overflowWatch{s.shed}),
		pubsub.WithSubscriptionFilter(s.subs),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithPeerScore(peerScoreParams(), peerScoreThresholds()),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithValidateQueueSize(pubsubValidateQueue),
		pubsub.WithAppSpecificRpcInspector(s.inspectRPC),
		pubsub.WithLogger(pubsubLogger(c.Logger)),
	}
	s.ps, err = pubsub.NewGossipSub(s.ctx, c.Host, append(opts, c.PubSubOptions...)...)
	if err != nil {
		s.cancel()
		s.subs.close()
		return nil, fmt.Errorf("start gossipsub: %w", err)
	}
	c.Host.SetStreamHandler(SyncProtocol, s.handleSync)
	c.Host.SetStreamHandler(MembersProtocol, s.handleMembers)
	if err := s.rejoin(); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.pruneLoop()
	go s.membersLoop()
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
	stored := make(map[string]bool, len(recs))
	for _, rec := range recs {
		stored[rec.Name] = true
	}
	for _, rec := range recs {
		if err := s.recanonicalize(rec, stored); err != nil {
			s.log.Warn("skipping stored room", "room", rec.Name, "err", err)
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

// recanonicalize moves a stored room whose name is no longer canonical
// (it was stored under the name rule before FoldName: for example
// "straße" is now "strasse") to its canonical name, so that it is rejoined
// on the topic every node now derives from that name, and Leave finds it.
// It refuses a name that is not valid at all, or whose canonical form is
// stored too (the names in stored).
func (s *Service) recanonicalize(rec *pb.JoinedRoom, stored map[string]bool) error {
	name, err := NormalizeName(rec.Name)
	if err != nil || name == rec.Name {
		return err
	}
	if stored[name] {
		return fmt.Errorf("%w: its new canonical name %q is joined too", ErrNameTaken, name)
	}
	stored[name] = true
	old := rec.Name
	rec.Name = name
	if err := putJoined(s.cfg.DB, rec); err != nil {
		return err
	}
	if err := deleteJoined(s.cfg.DB, old); err != nil {
		return err
	}
	s.log.Warn("room name has a new canonical form; rejoined under it (a new topic: members on older versions are on the old one)",
		"old", old, "room", name)
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
	if r := s.room(name); r != nil {
		if err := s.createLog(r); err != nil {
			return "", err
		}
	}
	return EncodeInvite(name, key)
}

// JoinInvite joins the private room of an invite code (surrounding white
// space is ignored) and returns its name.
func (s *Service) JoinInvite(_ context.Context, invite string) (name string, err error) {
	name, key, seed, err := DecodeAnyInvite(strings.TrimSpace(invite))
	if err != nil {
		return "", err
	}
	if err := s.join(name, key, false); err != nil || seed == nil {
		return name, err
	}
	r, err := s.joined(name)
	if err != nil {
		return name, err
	}
	return name, s.holdInvite(r, seed)
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
		if !mustBeNew && r.private == (len(key) > 0) && bytes.Equal(r.key, key) {
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
	r.nickPinned = s.cfg.NickPinned
	if len(key) > 0 {
		r.private, r.key = true, bytes.Clone(key)
		if r.keys, err = deriveKeys(key, name); err != nil {
			return nil, err
		}
		r.topicName = r.keys.topic
		r.rendezvous = r.keys.rendezvous
		if r.syncKey, err = deriveSyncKey(key); err != nil {
			return nil, err
		}
		if err = s.attachMembers(r); err != nil {
			return nil, err
		}
	} else {
		r.topicName = PublicTopicPrefix + name
		r.rendezvous = r.topicName
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
	// Inline: the validator is cheap (no I/O), and running it on pubsub's
	// worker instead of a goroutine per message reorders less.
	if err = s.ps.RegisterTopicValidator(r.topicName, s.validator(r), pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("validator of %q: %w", name, err)
	}
	if r.evh, err = r.topic.EventHandler(); err != nil {
		return nil, fmt.Errorf("topic events of %q: %w", name, err)
	}
	if r.sub, err = r.topic.Subscribe(pubsub.WithBufferSize(subBufferSize)); err != nil {
		return nil, fmt.Errorf("subscribe to %q: %w", name, err)
	}
	r.ctx, r.cancel = context.WithCancel(s.ctx)
	r.wg.Add(5)
	go s.readLoop(r)
	go s.storeLoop(r)
	go s.peerLoop(r)
	go s.presenceLoop(r)
	go s.syncLoop(r)
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

// Leave announces that this node leaves (best effort, waiting at most
// leaveAnnounceTimeout for the announcement to be written), unsubscribes and
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
	s.announceLeaving([]*room{r}, false)
	s.stopRoom(r)
	if err := deleteJoined(s.cfg.DB, name); err != nil {
		return err
	}
	if r.private {
		if err := deleteMembers(s.cfg.DB, r.topicName); err != nil {
			return err
		}
	}
	s.cfg.Emitter.Emit(events.Left{Room: name})
	return nil
}

// Close stops the service in two steps. First it drains, bounded by
// leaveAnnounceTimeout (a second): it announces leaving in every room and
// waits until GossipSub has written each announcement to every peer on
// the room's topic (docs/PROTOCOL.md §7), and then until those peers have
// read it (flushGossip: the host closes next, and closing it drops what
// its stream muxer has not sent yet), so that the others show this node
// gone at once. Then it stops: it stops the GossipSub router
// (without unsubscribing: see the comment inside) and every room, removes
// the stream handlers and waits for the service's goroutines. Joined rooms
// stay stored and are rejoined by the next New. Close does not close the
// host or the database; close the host after Close, as node.Close does.
// Calling Close again does nothing.
func (s *Service) Close() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.rooms == nil {
		return nil // closed already
	}
	s.mu.Lock()
	all := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		all = append(all, r)
	}
	s.rooms = nil
	s.mu.Unlock()
	s.announceLeaving(all, true)
	s.gate.Lock()
	s.closed = true
	s.gate.Unlock()
	// Stop GossipSub before tearing the rooms down, so that it does not
	// unsubscribe: unsubscribing PRUNEs every mesh peer with a backoff
	// (10 s, refreshed to 60 s when the node, restarted, GRAFTs during
	// it), which kept a restarted node out of its old peers' meshes for a
	// minute. Peers drop a node from their meshes, without backoff, when
	// its connections close. Leave still unsubscribes.
	s.cancel()
	for _, r := range all {
		s.teardown(r)
	}
	s.wg.Wait()
	s.cfg.Host.RemoveStreamHandler(SyncProtocol)
	s.cfg.Host.RemoveStreamHandler(MembersProtocol)
	for _, id := range pubsub.GossipSubDefaultProtocols {
		s.cfg.Host.RemoveStreamHandler(id)
	}
	s.subs.close()
	return nil
}

// roomByTopic returns the joined room of topic, or nil.
func (s *Service) roomByTopic(topic string) *room {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.rooms {
		if r.topicName == topic {
			return r
		}
	}
	return nil
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
		out = append(out, RoomInfo{Name: r.name, Private: r.private, Members: r.onlineCount(), Rendezvous: r.rendezvous})
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b RoomInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SyncState returns the state of a joined room's history sync as last
// reported by a room_sync event (State empty before the first).
func (s *Service) SyncState(name string) (events.RoomSync, error) {
	r, err := s.joined(name)
	if err != nil {
		return events.RoomSync{}, err
	}
	return r.syncStateNow(), nil
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

// SharesRoom reports whether p is online in a room this node has joined:
// it announced its presence or wrote a message there (signed with its
// key, checked by the validator) and has not left or gone silent past
// PresenceTimeout. It takes no allocation, so that a policy may ask it on
// every request (node's relay service does).
func (s *Service) SharesRoom(p peer.ID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.rooms {
		if r.isOnline(p) {
			return true
		}
	}
	return false
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
	recs, skipped, err := readHistory(s.cfg.DB, s.log, r.topicName, n)
	if err != nil {
		return nil, err
	}
	if skipped > 0 {
		s.log.Warn("skipped unreadable history records", "room", r.name, "count", skipped)
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
		ev := s.messageEvent(r, from, &env, rec.NickShared)
		ev.CaughtUp = rec.CaughtUp
		out = append(out, ev)
	}
	return out, nil
}

func (s *Service) messageEvent(r *room, from peer.ID, env *envelope, nickShared bool) events.Message {
	return events.Message{
		Room:        r.name,
		ID:          hex.EncodeToString(env.id[:]),
		From:        from,
		Nick:        env.nick,
		Text:        env.text,
		SentAt:      env.sentAt,
		Private:     r.private,
		Fingerprint: identity.ShortFingerprint(from),
		NickShared:  nickShared,
	}
}
