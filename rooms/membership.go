package rooms

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

// The membership log of a private room (docs/PROTOCOL.md §14).
//
// A room's log is a chain of changes, each signed by the libp2p identity
// key of an admin, each naming the hash of the one before. The first
// (CREATE) makes its signer the first admin; admins then add members and
// admins, remove members and rotate the room's key. REMOVE and ROTATE
// start a new epoch: a fresh random key, committed to in the change,
// delivered sealed to each remaining member (epoch.go). Every member
// replays the log itself and refuses a change that does not extend it, or
// whose signer is not an admin at that point. This file is pure: no I/O.

// Membership log limits.
const (
	// MaxLogChanges bounds a room's membership log.
	MaxLogChanges = 1024
	// maxChangeSize bounds one SignedMemberChange.
	maxChangeSize = 1 << 10
	// commitSize is the size of an epoch key commitment.
	commitSize = 32
)

// Signing domains.
const (
	changeSignDomain = "parley/rooms/members/1 change\x00"
	kemSignDomain    = "parley/rooms/members/1 kem\x00"
)

// Membership errors.
var (
	// ErrNotAdmin is returned when a membership change is asked of a node
	// that is not an admin of the room.
	ErrNotAdmin = errors.New("not an admin of the room")
	// ErrNotMember is returned when the node (or the peer named) is not a
	// member of the room's current epoch.
	ErrNotMember = errors.New("not a member of the room")
	// ErrNoEpochKey is returned by Send while the node knows that the room
	// moved to a new epoch but has not received its key yet.
	ErrNoEpochKey = errors.New("waiting for the room's new key")
	// errBadChange: a change that does not verify or does not apply.
	errBadChange = errors.New("bad membership change")
)

// Role is a peer's standing in a room's membership log.
type Role uint8

// Roles.
const (
	RoleNone    Role = iota // not in the log
	RoleMember              // added by an admin
	RoleAdmin               // may sign changes
	RoleRemoved             // removed by an admin
)

func (r Role) String() string {
	switch r {
	case RoleMember:
		return "member"
	case RoleAdmin:
		return "admin"
	case RoleRemoved:
		return "removed"
	}
	return "none"
}

// change is a verified, decoded membership change.
type change struct {
	signed  *pb.SignedMemberChange
	hash    [sha256.Size]byte // SHA-256 of signed.Change
	signer  peer.ID
	topic   string
	seq     uint64
	prev    []byte
	op      pb.MemberOp
	subject peer.ID
	epoch   uint64
	at      time.Time
	commit  []byte
	// invite, expires, uses: the limited-invite fields (invites.go).
	invite  []byte
	expires time.Time // zero: never
	uses    uint32
}

// decodeChange checks the size and shape of a signed change and its
// signature. It does not check that the change applies to a log.
func decodeChange(sc *pb.SignedMemberChange) (change, error) {
	if sc == nil || proto.Size(sc) > maxChangeSize {
		return change{}, fmt.Errorf("%w: missing or over %d bytes", errBadChange, maxChangeSize)
	}
	signer, err := peer.IDFromBytes(sc.Signer)
	if err != nil {
		return change{}, fmt.Errorf("%w: signer: %w", errBadChange, err)
	}
	if err := verifyByPeer(signer, changeSignDomain, sc.Change, sc.Signature); err != nil {
		return change{}, err
	}
	var w pb.MemberChange
	if err := proto.Unmarshal(sc.Change, &w); err != nil {
		return change{}, fmt.Errorf("%w: decode: %w", errBadChange, err)
	}
	c := change{
		signed: sc, hash: sha256.Sum256(sc.Change), signer: signer, topic: w.Topic, seq: w.Seq,
		prev: w.Prev, op: w.Op, epoch: w.Epoch, at: time.UnixMilli(w.AtMs), commit: w.KeyCommit,
		invite: w.Invite, uses: w.InviteUses,
	}
	if w.InviteExpiresMs != 0 {
		c.expires = time.UnixMilli(w.InviteExpiresMs)
	}
	if len(w.Subject) > 0 {
		if c.subject, err = peer.IDFromBytes(w.Subject); err != nil {
			return change{}, fmt.Errorf("%w: subject: %w", errBadChange, err)
		}
	}
	if err := c.checkShape(); err != nil {
		return change{}, err
	}
	return c, nil
}

// checkShape applies the rules that depend only on the change itself.
func (c *change) checkShape() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", errBadChange, what) }
	if c.seq == 0 || c.seq > MaxLogChanges {
		return bad("seq out of range")
	}
	if (c.seq == 1) != (c.op == pb.MemberOp_MEMBER_OP_CREATE) {
		return bad("CREATE is the first change and only that")
	}
	if (c.seq == 1) != (len(c.prev) == 0) || len(c.prev) != 0 && len(c.prev) != sha256.Size {
		return bad("prev hash")
	}
	newEpoch := c.op == pb.MemberOp_MEMBER_OP_REMOVE || c.op == pb.MemberOp_MEMBER_OP_ROTATE
	if newEpoch != (len(c.commit) == commitSize) || !newEpoch && len(c.commit) != 0 {
		return bad("key commitment")
	}
	switch c.op {
	case pb.MemberOp_MEMBER_OP_CREATE:
		if c.subject != c.signer || c.epoch != 0 {
			return bad("CREATE names its signer, epoch 0")
		}
	case pb.MemberOp_MEMBER_OP_ADD, pb.MemberOp_MEMBER_OP_ADD_ADMIN, pb.MemberOp_MEMBER_OP_REMOVE:
		if c.subject == "" {
			return bad("no subject")
		}
	case pb.MemberOp_MEMBER_OP_ROTATE:
		if c.subject != "" {
			return bad("ROTATE has no subject")
		}
	case pb.MemberOp_MEMBER_OP_INVITE, pb.MemberOp_MEMBER_OP_REVOKE_INVITE:
		if c.subject != "" {
			return bad("an invite change has no subject")
		}
	default:
		return bad("unknown op")
	}
	return c.checkInviteShape()
}

// verifyByPeer checks sig over domain || msg with p's public key, which
// must be inlined in the peer ID (Ed25519).
func verifyByPeer(p peer.ID, domain string, msg, sig []byte) error {
	pub, err := p.ExtractPublicKey()
	if err != nil || pub == nil {
		return fmt.Errorf("%w: no inline key for %s", errBadChange, p)
	}
	ok, err := pub.Verify(append([]byte(domain), msg...), sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: bad signature", errBadChange)
	}
	return nil
}

// signChange encodes, signs and decodes w with key (the signer's).
func signChange(key crypto.PrivKey, signer peer.ID, w *pb.MemberChange) (change, error) {
	body, err := proto.Marshal(w)
	if err != nil {
		return change{}, fmt.Errorf("encode change: %w", err)
	}
	sig, err := key.Sign(append([]byte(changeSignDomain), body...))
	if err != nil {
		return change{}, fmt.Errorf("sign change: %w", err)
	}
	return decodeChange(&pb.SignedMemberChange{Change: body, Signer: []byte(signer), Signature: sig})
}

// standing is a peer's place in the log.
type standing struct {
	role Role
	// since is the epoch in which the peer was last added; until, when
	// removed, the first epoch it is not a member of.
	since, until uint64
}

// logState is a room's membership log replayed.
type logState struct {
	topic   string
	changes []change
	peers   map[peer.ID]*standing
	admins  int
	epoch   uint64
	// started[e] is when epoch e (>= 1) started (its change's at);
	// commits[e] the commitment to its key.
	started map[uint64]time.Time
	commits map[uint64][]byte
	// invites are the limited invites issued in the log, by ID (invites.go).
	invites map[inviteID]*inviteState
}

func newLogState(topic string) *logState {
	return &logState{
		topic: topic, peers: make(map[peer.ID]*standing),
		started: make(map[uint64]time.Time), commits: make(map[uint64][]byte),
		invites: make(map[inviteID]*inviteState),
	}
}

// empty reports whether the log has no change (the room is open: epoch 0,
// everyone holding the room key reads and writes).
func (st *logState) empty() bool { return st == nil || len(st.changes) == 0 }

// head returns the log's length and the hash of its last change.
func (st *logState) head() (uint64, []byte) {
	if st.empty() {
		return 0, nil
	}
	c := st.changes[len(st.changes)-1]
	return c.seq, c.hash[:]
}

func (st *logState) role(p peer.ID) Role {
	if st == nil {
		return RoleNone
	}
	if s := st.peers[p]; s != nil {
		return s.role
	}
	return RoleNone
}

// isMember reports whether p is a member (or admin) now.
func (st *logState) isMember(p peer.ID) bool {
	r := st.role(p)
	return r == RoleMember || r == RoleAdmin
}

// memberDuring reports whether p was a member at some time in epoch e.
// Epoch 0 is the open phase: every key holder that was not removed in it.
func (st *logState) memberDuring(p peer.ID, e uint64) bool {
	if e == 0 {
		return true // REMOVE starts epoch 1 at the earliest
	}
	s := st.peers[p]
	if s == nil || s.role == RoleNone {
		return false
	}
	return s.since <= e && (s.role != RoleRemoved || e < s.until)
}

// apply checks that c extends the log and applies it.
func (st *logState) apply(c change) error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: seq %d: "+f, append([]any{errBadChange, c.seq}, a...)...)
	}
	if c.topic != st.topic {
		return bad("another room's change")
	}
	seq, prev := st.head()
	if c.seq != seq+1 {
		return bad("does not follow %d", seq)
	}
	if !bytes.Equal(c.prev, prev) {
		return bad("prev hash does not match")
	}
	if c.seq > 1 && st.role(c.signer) != RoleAdmin {
		return bad("signer %s is not an admin", c.signer)
	}
	next := st.epoch
	if c.op == pb.MemberOp_MEMBER_OP_REMOVE || c.op == pb.MemberOp_MEMBER_OP_ROTATE {
		next++
	}
	if c.epoch != next {
		return bad("epoch %d, want %d", c.epoch, next)
	}
	sub := st.peers[c.subject]
	switch c.op {
	case pb.MemberOp_MEMBER_OP_CREATE:
		st.peers[c.signer] = &standing{role: RoleAdmin}
		st.admins = 1
	case pb.MemberOp_MEMBER_OP_ADD:
		if st.isMember(c.subject) {
			return bad("%s is a member already", c.subject)
		}
		if err := st.useInvite(c); err != nil {
			return bad("%w", err)
		}
		st.peers[c.subject] = &standing{role: RoleMember, since: next}
	case pb.MemberOp_MEMBER_OP_ADD_ADMIN:
		if st.role(c.subject) == RoleAdmin {
			return bad("%s is an admin already", c.subject)
		}
		if st.isMember(c.subject) {
			sub.role = RoleAdmin
		} else {
			st.peers[c.subject] = &standing{role: RoleAdmin, since: next}
		}
		st.admins++
	case pb.MemberOp_MEMBER_OP_REMOVE:
		// A key holder never added (it joined while no admin was there
		// to add it) can be removed too: the change records it.
		if st.role(c.subject) == RoleRemoved {
			return bad("%s is removed already", c.subject)
		}
		if sub == nil {
			sub = &standing{}
			st.peers[c.subject] = sub
		}
		if sub.role == RoleAdmin {
			if st.admins == 1 {
				return bad("cannot remove the last admin")
			}
			st.admins--
		}
		sub.role, sub.until = RoleRemoved, next
	case pb.MemberOp_MEMBER_OP_INVITE, pb.MemberOp_MEMBER_OP_REVOKE_INVITE:
		if err := st.applyInvite(c); err != nil {
			return bad("%w", err)
		}
	}
	if next != st.epoch {
		st.epoch = next
		st.started[next] = c.at
		st.commits[next] = c.commit
	}
	st.changes = append(st.changes, c)
	return nil
}

// replayLog builds the state of topic's log from changes.
func replayLog(topic string, changes []change) (*logState, error) {
	st := newLogState(topic)
	for _, c := range changes {
		if err := st.apply(c); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// merge returns the log that results from offering incoming (a run of
// consecutive changes, decoded) to st: st itself when it stays, or a new
// state. A run that extends st is appended; a run that forks it replaces
// st's tail when the fork is better (preferLog), so that every member ends
// on the same log. The first change (CREATE) is never replaced: the first
// one a member accepts is pinned. It reports whether the log changed.
func (st *logState) merge(incoming []change) (*logState, bool, error) {
	if len(incoming) == 0 {
		return st, false, nil
	}
	from := incoming[0].seq
	if from == 0 || from > uint64(len(st.changes))+1 {
		return st, false, fmt.Errorf("%w: a run from %d does not meet a log of %d", errBadChange, from, len(st.changes))
	}
	if from == 1 && len(st.changes) > 0 && incoming[0].hash != st.changes[0].hash {
		return st, false, fmt.Errorf("%w: another CREATE for this room (first one kept)", errBadChange)
	}
	keep := st.changes[:from-1] // from <= len(st.changes)+1, checked above
	cand := make([]change, 0, len(keep)+len(incoming))
	cand = append(cand, keep...)
	cand = append(cand, incoming...)
	if !preferLog(cand, st.changes) {
		return st, false, nil
	}
	next, err := replayLog(st.topic, cand)
	if err != nil {
		return st, false, err
	}
	return next, true, nil
}

// preferLog reports whether log a wins over log b: at the first change
// where they differ, the one with the smaller hash; when one is a prefix
// of the other, the longer.
func preferLog(a, b []change) bool {
	for i := range min(len(a), len(b)) {
		if a[i].hash != b[i].hash {
			return bytes.Compare(a[i].hash[:], b[i].hash[:]) < 0
		}
	}
	return len(a) > len(b)
}

// since returns the changes after seq n, when the log's change at n has
// hash h (the asker's head); otherwise (a fork or an unknown head) the
// whole log.
func (st *logState) since(n uint64, h []byte) []*pb.SignedMemberChange {
	if st.empty() {
		return nil
	}
	start := 0
	if n > 0 && n <= uint64(len(st.changes)) && bytes.Equal(st.changes[n-1].hash[:], h) {
		start = int(n) // #nosec G115 -- at most MaxLogChanges
	}
	out := make([]*pb.SignedMemberChange, 0, len(st.changes)-start)
	for _, c := range st.changes[start:] {
		out = append(out, c.signed)
	}
	return out
}

// MemberRole is one peer's role in a room's membership log, for /members.
type MemberRole struct {
	PeerID peer.ID
	Role   Role
	// Since is the epoch in which it was added; Until, for a removed
	// member, the first epoch it was not in.
	Since, Until uint64
}
