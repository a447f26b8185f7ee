package rooms

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

// MembersProtocol is the stream protocol of the members exchange: two
// members of a private room prove they hold the room key, swap the
// membership log changes the other lacks, and seal to each other the
// epoch keys the other is entitled to (docs/PROTOCOL.md §14).
const MembersProtocol protocol.ID = "/parley/rooms/members/1.0.0"

// Members exchange limits, the same for every peer.
const (
	// MaxMembersHello bounds the first frame.
	MaxMembersHello = 4 << 10
	// MaxMembersFrame bounds the other two.
	MaxMembersFrame = 1 << 20
	// MembersTimeout bounds one exchange.
	MembersTimeout = 10 * time.Second
	// DefaultEpochKeyGrace is how long an epoch key is kept after the next
	// epoch started, for late messages and the history sync.
	DefaultEpochKeyGrace = 7 * 24 * time.Hour

	membersNonceSize   = 32
	membersServiceName = "parley.rooms.members"
	membersMemory      = MaxMembersFrame + 4<<10
	// membersQueue bounds the exchanges waiting to run; a full queue drops.
	membersQueue = 256
	// membersFanout is how many topic peers a member tells of changes it
	// learned.
	membersFanout = 3
)

// MAC labels of the members exchange.
const (
	macMembersResponder = "parley/rooms/members/1 responder\x00"
	macMembersInitiator = "parley/rooms/members/1 initiator\x00"
)

// Validation reasons of the membership rules.
const (
	reasonEpochKey  = "epoch-key"
	reasonNotMember = "not-member"
)

// errMembersRefused: the peer is not in the room or failed the key proof.
var errMembersRefused = errors.New("members exchange refused")

// memberJob is an exchange to run with p in r.
type memberJob struct {
	r *room
	p peer.ID
}

// memberSvc is the service's part of the membership protocol.
type memberSvc struct {
	slots syncSlots      // inbound exchanges
	jobs  chan memberJob // exchanges to run; owned by membersLoop
}

func newMemberSvc() memberSvc { return memberSvc{jobs: make(chan memberJob, membersQueue)} }

// now is the clock of the membership code (injected in tests).
func (s *Service) now() time.Time {
	if s.cfg.testClock != nil {
		return s.cfg.testClock()
	}
	return time.Now()
}

// attachMembers loads a private room's membership log and keys.
func (s *Service) attachMembers(r *room) error {
	m, err := newRoomMembers(r.topicName, r.key)
	if err != nil {
		return err
	}
	if err := ensureMemberBuckets(s.cfg.DB); err != nil {
		return err
	}
	if err := loadMembers(s.cfg.DB, m); err != nil {
		return err
	}
	r.membership = m
	return nil
}

// queueMembers asks membersLoop for an exchange with p in r.
func (s *Service) queueMembers(r *room, p peer.ID) {
	if !r.private || p == s.self {
		return
	}
	select {
	case s.mem.jobs <- memberJob{r: r, p: p}:
	default:
		s.log.Debug("members exchange queue full", "room", r.name, "peer", p)
	}
}

// membersLoop runs the queued exchanges, one at a time, and deletes epoch
// keys past their grace period.
func (s *Service) membersLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	s.pruneEpochKeys(s.now())
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.mem.jobs:
			if err := s.exchangeMembers(j.r, j.p); err != nil {
				s.log.Debug("members exchange", "room", j.r.name, "peer", j.p, "err", err)
			}
		case <-t.C:
			s.pruneEpochKeys(s.now())
		}
	}
}

// membersMAC proves knowledge of the room key over both nonces, both
// peers and the topic.
func membersMAC(key []byte, label string, nonceI, nonceR []byte, initiator, responder peer.ID, topic string) []byte {
	m := hmac.New(sha256.New, key)
	put := func(b []byte) {
		var l [binary.MaxVarintLen64]byte
		m.Write(l[:binary.PutUvarint(l[:], uint64(len(b)))])
		m.Write(b)
	}
	put([]byte(label))
	put(nonceI)
	put(nonceR)
	put([]byte(initiator))
	put([]byte(responder))
	put([]byte(topic))
	return m.Sum(nil)
}

func newNonce() ([]byte, error) {
	n := make([]byte, membersNonceSize)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("members nonce: %w", err)
	}
	return n, nil
}

// headFrame fills f with this node's log head, epoch and a fresh KEM key.
func (s *Service) headFrame(r *room, f *pb.MembersFrame) (*kemKey, error) {
	key := s.cfg.Host.Peerstore().PrivKey(s.self)
	if key == nil {
		return nil, fmt.Errorf("no private key for %s", s.self)
	}
	kem, err := newKEMKey(key, s.self, r.topicName, s.now())
	if err != nil {
		return nil, err
	}
	m := r.membership
	m.mu.Lock()
	f.Head, f.HeadHash = m.log.head()
	m.mu.Unlock()
	f.HaveEpoch, f.Kem = m.haveEpoch(), kem.signed
	f.Ticket = m.ticketFor(s.self)
	return kem, nil
}

// exchangeMembers runs one exchange with p as the initiator, over an
// existing connection (it never dials).
func (s *Service) exchangeMembers(r *room, p peer.ID) error {
	ctx, cancel := context.WithTimeout(r.ctx, MembersTimeout)
	defer cancel()
	str, err := s.cfg.Host.NewStream(network.WithNoDial(network.WithAllowLimitedConn(ctx, "rooms members"), "rooms members"), p, MembersProtocol)
	if err != nil {
		return fmt.Errorf("open members stream: %w", err)
	}
	defer context.AfterFunc(ctx, func() { _ = str.Reset() })()
	_ = str.SetDeadline(time.Now().Add(MembersTimeout))
	if err := s.initiateMembers(r, str); err != nil {
		_ = str.Reset()
		return err
	}
	_ = str.Close()
	return nil
}

func (s *Service) initiateMembers(r *room, str network.Stream) error {
	p := str.Conn().RemotePeer()
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	hello := &pb.MembersFrame{Topic: r.topicName, Nonce: nonce}
	kem, err := s.headFrame(r, hello)
	if err != nil {
		return err
	}
	if err := pbframe.Write(str, hello); err != nil {
		return fmt.Errorf("write members hello: %w", err)
	}
	br := bufio.NewReader(str)
	var reply pb.MembersFrame
	if err := pbframe.Read(br, MaxMembersFrame, &reply); err != nil {
		return fmt.Errorf("read members reply: %w", err)
	}
	if len(reply.Nonce) != membersNonceSize ||
		!hmac.Equal(reply.Mac, membersMAC(r.membership.macKey, macMembersResponder, nonce, reply.Nonce, s.self, p, r.topicName)) {
		return fmt.Errorf("%w: responder's key proof", errMembersRefused)
	}
	res := s.takeMembers(r, p, &reply, kem)
	final := &pb.MembersFrame{Mac: membersMAC(r.membership.macKey, macMembersInitiator, nonce, reply.Nonce, s.self, p, r.topicName)}
	s.offerMembers(r, p, &reply, final, true)
	if err := pbframe.Write(str, final); err != nil {
		return fmt.Errorf("write members final: %w", err)
	}
	res.ticket = reply.Ticket
	s.afterExchange(r, p, res)
	return nil
}

// handleMembers serves one inbound exchange as the responder.
func (s *Service) handleMembers(str network.Stream) {
	p := str.Conn().RemotePeer()
	if !s.mem.slots.acquire(p) {
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer s.mem.slots.release(p)
	if err := str.Scope().SetService(membersServiceName); err != nil {
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	if err := str.Scope().ReserveMemory(membersMemory, network.ReservationPriorityAlways); err != nil {
		_ = str.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer str.Scope().ReleaseMemory(membersMemory)
	defer context.AfterFunc(s.ctx, func() { _ = str.Reset() })()
	_ = str.SetDeadline(time.Now().Add(MembersTimeout))
	if err := s.respondMembers(str); err != nil {
		s.log.Debug("members exchange", "peer", p, "err", err)
		_ = str.Reset()
		return
	}
	_ = str.Close()
}

func (s *Service) respondMembers(str network.Stream) error {
	p := str.Conn().RemotePeer()
	br := bufio.NewReader(str)
	var hello pb.MembersFrame
	if err := pbframe.Read(br, MaxMembersHello, &hello); err != nil {
		return fmt.Errorf("read members hello: %w", err)
	}
	r := s.roomByTopic(hello.Topic)
	if r == nil || !r.private || len(hello.Nonce) != membersNonceSize {
		return fmt.Errorf("%w: no such private room", errMembersRefused)
	}
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	reply := &pb.MembersFrame{Nonce: nonce, Mac: membersMAC(r.membership.macKey, macMembersResponder, hello.Nonce, nonce, p, s.self, r.topicName)}
	kem, err := s.headFrame(r, reply)
	if err != nil {
		return err
	}
	// The initiator has not proved the room key yet: only peers in the
	// log get its changes (and keys, sealed to them) now.
	s.offerMembers(r, p, &hello, reply, false)
	if err := pbframe.Write(str, reply); err != nil {
		return fmt.Errorf("write members reply: %w", err)
	}
	var final pb.MembersFrame
	if err := pbframe.Read(br, MaxMembersFrame, &final); err != nil {
		return fmt.Errorf("read members final: %w", err)
	}
	if !hmac.Equal(final.Mac, membersMAC(r.membership.macKey, macMembersInitiator, hello.Nonce, nonce, p, s.self, r.topicName)) {
		return fmt.Errorf("%w: initiator's key proof", errMembersRefused)
	}
	res := s.takeMembers(r, p, &final, kem)
	res.ticket = hello.Ticket
	s.afterExchange(r, p, res)
	return nil
}

// offerMembers fills out with what peer p (whose head, epoch and KEM key
// are in theirs) lacks: log changes, to peers in the log or (proved) any
// holder of the room key; and the epoch keys p is entitled to (it was a
// member in the epoch), sealed to its KEM key.
func (s *Service) offerMembers(r *room, p peer.ID, theirs, out *pb.MembersFrame, proved bool) {
	m := r.membership
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.log
	if st.empty() || !proved && st.role(p) == RoleNone {
		return
	}
	if n, h := st.head(); theirs.Head != n || !hmac.Equal(theirs.HeadHash, h) {
		out.Changes = st.since(theirs.Head, theirs.HeadHash)
	}
	if theirs.Kem == nil {
		return
	}
	pub, err := verifyMemberKey(theirs.Kem, r.topicName, p)
	if err != nil {
		s.log.Debug("members exchange: bad KEM key", "room", r.name, "peer", p, "err", err)
		return
	}
	for e := theirs.HaveEpoch + 1; e <= st.epoch; e++ {
		k := m.keys[e]
		if k == nil || !st.memberDuring(p, e) {
			continue
		}
		w, err := sealEpochKey(pub, r.topicName, p, e, k.key)
		if err != nil {
			s.log.Warn("seal epoch key", "room", r.name, "err", err)
			return
		}
		out.Keys = append(out.Keys, w)
	}
}

// exchangeResult says what an exchange brought.
type exchangeResult struct {
	changed bool // the log changed
	keys    bool // new epoch keys
	// ticket is the limited invite's ticket p showed, if any.
	ticket *pb.InviteTicket
}

// takeMembers merges the changes of in into r's log, then opens the
// epoch keys sealed to kem, and stores both.
func (s *Service) takeMembers(r *room, p peer.ID, in *pb.MembersFrame, kem *kemKey) exchangeResult {
	if h := s.cfg.testHookTakeMembers; h != nil {
		h()
	}
	var res exchangeResult
	var decoded []change
	for _, sc := range in.Changes {
		c, err := decodeChange(sc)
		if err != nil {
			s.log.Debug("members exchange: bad change", "room", r.name, "peer", p, "err", err)
			decoded = nil
			break
		}
		decoded = append(decoded, c)
	}
	m := r.membership
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	old, prev := m.log, m.keys
	keys := maps.Clone(m.keys)
	m.mu.Unlock()
	next, changed, err := old.merge(decoded)
	if err != nil {
		s.log.Debug("members exchange: changes refused", "room", r.name, "peer", p, "err", err)
	}
	var from uint64
	var drop []uint64
	if changed {
		res.changed = true
		from = decoded[0].seq
		for e, k := range keys {
			if !hmac.Equal(mustCommit(k.key), next.commits[e]) {
				delete(keys, e) // another branch's key
				drop = append(drop, e)
			}
		}
	}
	for _, w := range in.Keys {
		if w.Epoch == 0 || w.Epoch > next.epoch || keys[w.Epoch] != nil || !next.memberDuring(s.self, w.Epoch) {
			continue
		}
		key, err := openEpochKey(kem.priv, r.topicName, s.self, w, next.commits[w.Epoch])
		if err != nil {
			s.log.Debug("members exchange: epoch key refused", "room", r.name, "peer", p, "err", err)
			continue
		}
		if keys[w.Epoch], err = newEpochKey(key); err != nil {
			continue
		}
		res.keys = true
	}
	if !res.changed && !res.keys {
		return res
	}
	endEpochs(next, keys, s.now())
	if err := s.saveMembers(r, next, from, keys, drop); err != nil {
		s.log.Error("cannot store membership", "room", r.name, "err", err)
		return exchangeResult{}
	}
	m.mu.Lock()
	m.log, m.keys = next, keys
	m.mu.Unlock()
	if changed {
		s.emitChanges(r, old, next)
	}
	s.keysInstalled(r, prev, keys)
	return res
}

func (s *Service) saveMembers(r *room, st *logState, from uint64, keys map[uint64]*epochKey, drop []uint64) error {
	if from == 0 {
		return storeEpochKeys(s.cfg.DB, r.topicName, keys, drop)
	}
	return saveMembers(s.cfg.DB, r.topicName, st, from, keys, drop)
}

// mustCommit is epochCommit for a key known to be well formed.
func mustCommit(key []byte) []byte {
	c, _ := epochCommit(key)
	return c
}

// endEpochs marks the keys of epochs before st's current one as ended, at
// the start of the epoch that followed (the admin's clock), no later than
// now. Keys already marked keep their time.
func endEpochs(st *logState, keys map[uint64]*epochKey, now time.Time) {
	for e, k := range keys {
		if e >= st.epoch || !k.ended.IsZero() {
			continue
		}
		end := now
		if t, ok := st.started[e+1]; ok && t.Before(now) {
			end = t
		}
		nk := *k
		nk.ended = end
		keys[e] = &nk
	}
}

// afterExchange spreads what an exchange brought: changes to a few topic
// peers; new keys trigger a history sync with p (items of those epochs
// were skipped). An admin adds a peer that proved the room key and is
// not in the log, when it shows a limited invite or the room is still in
// epoch 0 (admitPeer).
func (s *Service) afterExchange(r *room, p peer.ID, res exchangeResult) {
	if res.changed {
		peers := r.topic.ListPeers()
		mrand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] }) // #nosec G404 -- peer choice, not a secret
		n := 0
		for _, q := range peers {
			if q != p && n < membersFanout {
				s.queueMembers(r, q)
				n++
			}
		}
	}
	if res.changed || res.keys {
		s.release(r) // lines that came before their key or their author's ADD
	}
	if res.keys {
		r.peerJoined("") // sync history again: items of the new epochs were skipped
		r.peerJoined(p)
	}
	s.admitPeer(r, p, res.ticket)
}

// changeMembers signs and applies a change of r's log as this node (an
// admin) and tells every connected peer in the log. In a room without a
// log it first creates one (this node its first admin) and, for REMOVE
// and ROTATE, adds the members online now: they held the room key and
// would otherwise not get the new epoch's key.
func (s *Service) changeMembers(r *room, op pb.MemberOp, subject peer.ID) error {
	return s.changeMembersWith(r, &pb.MemberChange{Op: op, Subject: []byte(subject)})
}

// changeMembersWith is changeMembers for the change tmpl (its op, subject
// and invite fields; the rest is filled in). An INVITE in a room in epoch
// 0 is preceded by a ROTATE (and the adds of the members online), since
// every holder of the room key reads epoch 0.
func (s *Service) changeMembersWith(r *room, tmpl *pb.MemberChange) error {
	op, subject := tmpl.Op, peer.ID(tmpl.Subject)
	if !r.private {
		return fmt.Errorf("%w: %s has no membership", ErrPublicRoom, r.name)
	}
	key := s.cfg.Host.Peerstore().PrivKey(s.self)
	if key == nil {
		return fmt.Errorf("no private key for %s", s.self)
	}
	m := r.membership
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	old, prev := m.log, m.keys
	keys := maps.Clone(m.keys)
	m.mu.Unlock()
	now := s.now()
	newEpoch := op == pb.MemberOp_MEMBER_OP_REMOVE || op == pb.MemberOp_MEMBER_OP_ROTATE
	closes := newEpoch || op == pb.MemberOp_MEMBER_OP_INVITE
	var plan []*pb.MemberChange
	if old.empty() {
		plan = append(plan, &pb.MemberChange{Op: pb.MemberOp_MEMBER_OP_CREATE, Subject: []byte(s.self)})
	} else if old.role(s.self) != RoleAdmin {
		return fmt.Errorf("%w %s", ErrNotAdmin, r.name)
	}
	if closes && old.epoch == 0 {
		for _, mb := range r.who(s.self, "-") {
			if !mb.Self && mb.Online && mb.PeerID != subject && old.role(mb.PeerID) == RoleNone {
				plan = append(plan, &pb.MemberChange{Op: pb.MemberOp_MEMBER_OP_ADD, Subject: []byte(mb.PeerID)})
			}
		}
		if !newEpoch {
			plan = append(plan, &pb.MemberChange{Op: pb.MemberOp_MEMBER_OP_ROTATE})
		}
	}
	if op != pb.MemberOp_MEMBER_OP_CREATE || !old.empty() {
		plan = append(plan, proto.Clone(tmpl).(*pb.MemberChange))
	}
	if op == pb.MemberOp_MEMBER_OP_ROTATE {
		plan[len(plan)-1].Subject = nil
	}
	st, err := replayLog(r.topicName, old.changes)
	if err != nil {
		return err
	}
	var fresh *epochKey
	for _, w := range plan {
		w.Topic, w.AtMs = r.topicName, now.UnixMilli()
		w.Seq, w.Prev = st.head()
		w.Seq++
		w.Epoch = st.epoch
		if w.Op == pb.MemberOp_MEMBER_OP_REMOVE || w.Op == pb.MemberOp_MEMBER_OP_ROTATE {
			w.Epoch++
			k := make([]byte, epochKeySize)
			if _, err := rand.Read(k); err != nil {
				return fmt.Errorf("epoch key: %w", err)
			}
			if fresh, err = newEpochKey(k); err != nil {
				return err
			}
			if w.KeyCommit, err = epochCommit(k); err != nil {
				return err
			}
		}
		c, err := signChange(key, s.self, w)
		if err != nil {
			return err
		}
		if err := st.apply(c); err != nil {
			return fmt.Errorf("%s: %w", w.Op, err)
		}
	}
	if fresh != nil {
		keys[st.epoch] = fresh
	}
	endEpochs(st, keys, now)
	from := uint64(len(old.changes)) + 1
	if err := saveMembers(s.cfg.DB, r.topicName, st, from, keys, nil); err != nil {
		return err
	}
	m.mu.Lock()
	m.log, m.keys = st, keys
	m.mu.Unlock()
	s.emitChanges(r, old, st)
	s.keysInstalled(r, prev, keys)
	for p := range st.peers {
		if p != s.self && s.cfg.Host.Network().Connectedness(p) == network.Connected {
			s.queueMembers(r, p)
		}
	}
	return nil
}

// keysInstalled tells the test hook of the keys not in prev.
func (s *Service) keysInstalled(r *room, prev, keys map[uint64]*epochKey) {
	if h := s.cfg.testHookEpochKey; h != nil {
		for e := range keys {
			if prev[e] == nil {
				h(r.topicName, e)
			}
		}
	}
}

// emitChanges emits a membership event for each change of next after the
// prefix it shares with old.
func (s *Service) emitChanges(r *room, old, next *logState) {
	i := 0
	for i < len(old.changes) && i < len(next.changes) && old.changes[i].hash == next.changes[i].hash {
		i++
	}
	for _, c := range next.changes[i:] {
		ev := events.Membership{
			Room: r.name, Op: opName(c.op), By: c.signer, Subject: c.subject, Epoch: c.epoch, Seq: c.seq,
			Self: c.subject == s.self,
		}
		if len(c.invite) == len(inviteID{}) {
			ev.Invite = inviteID(c.invite).String()
		}
		s.cfg.Emitter.Emit(ev)
	}
}

func opName(op pb.MemberOp) string {
	switch op {
	case pb.MemberOp_MEMBER_OP_CREATE:
		return "create"
	case pb.MemberOp_MEMBER_OP_ADD:
		return "add"
	case pb.MemberOp_MEMBER_OP_ADD_ADMIN:
		return "add_admin"
	case pb.MemberOp_MEMBER_OP_REMOVE:
		return "remove"
	case pb.MemberOp_MEMBER_OP_ROTATE:
		return "rotate"
	case pb.MemberOp_MEMBER_OP_INVITE:
		return "invite"
	case pb.MemberOp_MEMBER_OP_REVOKE_INVITE:
		return "revoke_invite"
	}
	return "unknown"
}

// pruneEpochKeys deletes, in every room, the epoch keys whose epoch ended
// EpochKeyGrace or longer before now, from memory and from the store.
func (s *Service) pruneEpochKeys(now time.Time) {
	s.mu.RLock()
	rs := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		if r.private && r.membership != nil {
			rs = append(rs, r)
		}
	}
	s.mu.RUnlock()
	for _, r := range rs {
		if err := s.pruneRoomKeys(r, now); err != nil {
			s.log.Warn("prune epoch keys", "room", r.name, "err", err)
		}
	}
}

func (s *Service) pruneRoomKeys(r *room, now time.Time) error {
	m := r.membership
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	var drop []uint64
	for e, k := range m.keys {
		if !k.ended.IsZero() && now.Sub(k.ended) >= s.cfg.EpochKeyGrace {
			drop = append(drop, e)
		}
	}
	m.mu.Unlock()
	if len(drop) == 0 {
		return nil
	}
	if err := storeEpochKeys(s.cfg.DB, r.topicName, nil, drop); err != nil {
		return err
	}
	m.mu.Lock()
	for _, e := range drop {
		if k := m.keys[e]; k != nil {
			clear(k.key)
			clear(k.seal[:])
		}
		delete(m.keys, e)
	}
	m.mu.Unlock()
	s.log.Debug("epoch keys deleted", "room", r.name, "epochs", len(drop))
	return nil
}

// Kick removes p from the private room name and starts a new epoch whose
// key goes to the remaining members only. This node must be an admin (in
// a room without a membership log it becomes the first).
func (s *Service) Kick(_ context.Context, name string, p peer.ID) error {
	r, err := s.joined(name)
	if err != nil {
		return err
	}
	if p == s.self {
		return fmt.Errorf("%w: cannot remove yourself; /leave instead", ErrNotMember)
	}
	return s.changeMembers(r, pb.MemberOp_MEMBER_OP_REMOVE, p)
}

// Rotate starts a new epoch of the private room name with a fresh key for
// the current members. This node must be an admin.
func (s *Service) Rotate(_ context.Context, name string) error {
	r, err := s.joined(name)
	if err != nil {
		return err
	}
	return s.changeMembers(r, pb.MemberOp_MEMBER_OP_ROTATE, "")
}

// AddMember adds p to the private room name, as an admin when admin is
// set (an existing member is promoted). This node must be an admin.
func (s *Service) AddMember(_ context.Context, name string, p peer.ID, admin bool) error {
	r, err := s.joined(name)
	if err != nil {
		return err
	}
	op := pb.MemberOp_MEMBER_OP_ADD
	if admin {
		op = pb.MemberOp_MEMBER_OP_ADD_ADMIN
	}
	return s.changeMembers(r, op, p)
}

// Roles returns the membership log of the private room name as roles,
// admins first, and its current epoch. A room without a log has none.
func (s *Service) Roles(name string) ([]MemberRole, uint64, error) {
	r, err := s.joined(name)
	if err != nil {
		return nil, 0, err
	}
	if !r.private {
		return nil, 0, fmt.Errorf("%w: %s has no membership", ErrPublicRoom, r.name)
	}
	m := r.membership
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]MemberRole, 0, len(m.log.peers))
	for p, st := range m.log.peers {
		out = append(out, MemberRole{PeerID: p, Role: st.role, Since: st.since, Until: st.until})
	}
	rank := map[Role]int{RoleAdmin: 0, RoleMember: 1, RoleRemoved: 2}
	slices.SortFunc(out, func(a, b MemberRole) int {
		if a.Role != b.Role {
			return rank[a.Role] - rank[b.Role]
		}
		return strings.Compare(string(a.PeerID), string(b.PeerID))
	})
	return out, m.log.epoch, nil
}

// createLog starts the membership log of a room this node just created.
func (s *Service) createLog(r *room) error {
	return s.changeMembers(r, pb.MemberOp_MEMBER_OP_CREATE, s.self)
}
