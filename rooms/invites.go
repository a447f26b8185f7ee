package rooms

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/rooms/pb"
)

// Limited invites (docs/PROTOCOL.md §14, "Limited invites").
//
// An open invite (version 1) is the room key and name: whoever holds it
// reads the room while it is in epoch 0, and an admin adds it to the log.
// A limited invite (version 2) also carries the seed of a fresh Ed25519
// key, the invite key. The admin that issues it signs an INVITE change
// naming the invite's public key (its ID), when it stops admitting
// (expiry) and how many peers it admits (uses). Issuing one in a room
// still in epoch 0 first rotates it, since epoch 0 is readable by every
// holder of the room key: from then on only an admin's ADD admits.
//
// The holder, not yet in the log, shows a ticket in the members exchange:
// the invite key's signature over the topic and the holder's own peer ID.
// An admin's node that sees a valid ticket from a peer that proved the
// room key and is not in the log checks the invite against the log (issued,
// not revoked, not expired by its clock, uses left) and signs ADD naming
// the invite; every member's replay of the log refuses an ADD that names
// an invite that is unknown, revoked, expired at the ADD's time or used
// up. An invite with a use limit is honoured only by the admin that issued
// it, whose changes are serialized, so that two admins cannot spend the
// last use at once on two forks.

// Limited invite limits and signing domain.
const (
	// MaxInviteUses bounds an invite's use count.
	MaxInviteUses = MaxLogChanges
	// inviteIDLen is the length of an invite ID as shown (hex of the
	// first 8 bytes of the invite's public key).
	inviteIDLen = 16

	ticketSignDomain = "parley/rooms/members/1 ticket\x00"
)

// Limited invite errors: why an admin does not admit a ticket's holder.
var (
	// ErrInviteUnknown: no INVITE in the log names the ticket's invite.
	ErrInviteUnknown = errors.New("unknown invite")
	// ErrInviteRevoked: an admin revoked the invite.
	ErrInviteRevoked = errors.New("invite revoked")
	// ErrInviteExpired: the invite's expiry has passed.
	ErrInviteExpired = errors.New("invite expired")
	// ErrInviteUsed: the invite admitted as many peers as it may.
	ErrInviteUsed = errors.New("invite used up")
	// ErrInviteNotIssuer: an invite with a use limit is honoured only by
	// the admin that issued it.
	ErrInviteNotIssuer = errors.New("invite issued by another admin")
	// errBadTicket: a ticket that does not verify.
	errBadTicket = errors.New("bad invite ticket")
)

// inviteID is an invite's Ed25519 public key.
type inviteID [ed25519.PublicKeySize]byte

// String is the short ID shown to people: 16 hex digits.
func (id inviteID) String() string { return hex.EncodeToString(id[:inviteIDLen/2]) }

// inviteState is one INVITE of the log and what followed it.
type inviteState struct {
	by      peer.ID
	at      time.Time
	expires time.Time // zero: never
	uses    uint32    // 0: unlimited
	used    uint32
	revoked bool
}

// checkInviteShape applies the invite field rules of one change.
func (c *change) checkInviteShape() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", errBadChange, what) }
	switch c.op {
	case pb.MemberOp_MEMBER_OP_INVITE:
		if len(c.invite) != ed25519.PublicKeySize || c.uses > MaxInviteUses {
			return bad("INVITE names a 32-byte key and at most MaxInviteUses uses")
		}
		return nil
	case pb.MemberOp_MEMBER_OP_REVOKE_INVITE:
		if len(c.invite) != ed25519.PublicKeySize {
			return bad("REVOKE_INVITE names a 32-byte key")
		}
	case pb.MemberOp_MEMBER_OP_ADD:
		if len(c.invite) != 0 && len(c.invite) != ed25519.PublicKeySize {
			return bad("ADD names no invite or a 32-byte key")
		}
	default:
		if len(c.invite) != 0 {
			return bad("invite on a change that names none")
		}
	}
	if !c.expires.IsZero() || c.uses != 0 {
		return bad("invite limits outside INVITE")
	}
	return nil
}

// applyInvite applies an INVITE or REVOKE_INVITE (shape checked).
func (st *logState) applyInvite(c change) error {
	id := inviteID(c.invite)
	inv := st.invites[id]
	if c.op == pb.MemberOp_MEMBER_OP_INVITE {
		if inv != nil {
			return errors.New("invite issued already")
		}
		st.invites[id] = &inviteState{by: c.signer, at: c.at, expires: c.expires, uses: c.uses}
		return nil
	}
	switch {
	case inv == nil:
		return ErrInviteUnknown
	case inv.revoked:
		return ErrInviteRevoked
	}
	nv := *inv
	nv.revoked = true
	st.invites[id] = &nv
	return nil
}

// useInvite counts an ADD that names an invite, if it does; the ADD is
// refused when the invite does not admit at the ADD's time.
func (st *logState) useInvite(c change) error {
	if len(c.invite) == 0 {
		return nil
	}
	id := inviteID(c.invite)
	if err := st.inviteAdmits(id, c.at); err != nil {
		return err
	}
	nv := *st.invites[id]
	nv.used++
	st.invites[id] = &nv
	return nil
}

// inviteAdmits reports why invite id does not admit one more peer at t
// (nil when it does).
func (st *logState) inviteAdmits(id inviteID, t time.Time) error {
	inv := st.invites[id]
	switch {
	case inv == nil:
		return ErrInviteUnknown
	case inv.revoked:
		return ErrInviteRevoked
	case !inv.expires.IsZero() && !t.Before(inv.expires):
		return ErrInviteExpired
	case inv.uses != 0 && inv.used >= inv.uses:
		return ErrInviteUsed
	}
	return nil
}

// ticketMsg is what a ticket's signature covers, after its domain.
func ticketMsg(topic string, holder peer.ID) []byte {
	b := []byte(ticketSignDomain)
	b = binary.AppendUvarint(b, uint64(len(topic)))
	b = append(b, topic...)
	b = binary.AppendUvarint(b, uint64(len(holder)))
	return append(b, holder...)
}

// makeTicket signs holder's ticket for the invite whose key is seed.
func makeTicket(seed []byte, topic string, holder peer.ID) (*pb.InviteTicket, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed of %d bytes", errBadTicket, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub, _ := priv.Public().(ed25519.PublicKey)
	return &pb.InviteTicket{Invite: pub, Signature: ed25519.Sign(priv, ticketMsg(topic, holder))}, nil
}

// verifyTicket checks that t was signed by its invite's key for holder in
// topic and returns the invite's ID.
func verifyTicket(t *pb.InviteTicket, topic string, holder peer.ID) (inviteID, error) {
	if t == nil || len(t.Invite) != ed25519.PublicKeySize || len(t.Signature) != ed25519.SignatureSize {
		return inviteID{}, fmt.Errorf("%w: shape", errBadTicket)
	}
	if !ed25519.Verify(ed25519.PublicKey(t.Invite), ticketMsg(topic, holder), t.Signature) {
		return inviteID{}, fmt.Errorf("%w: signature", errBadTicket)
	}
	return inviteID(t.Invite), nil
}

// InviteLimits are the limits of a limited invite.
type InviteLimits struct {
	// Uses is how many peers it admits (1: single use); 0 is unlimited.
	Uses uint32
	// Expires, when positive, is how long it admits from now.
	Expires time.Duration
}

// InviteInfo is one limited invite of a room's log, for listing.
type InviteInfo struct {
	// ID is the invite's short ID (16 hex digits), for RevokeInvite.
	ID string
	// Code is the invite code; set only by CreateInvite.
	Code     string
	By       peer.ID
	IssuedAt time.Time
	// Expires is zero for an invite that does not expire.
	Expires time.Time
	// Uses is 0 for unlimited; Used counts the ADDs that named it.
	Uses, Used uint32
	Revoked    bool
}

func (inv *inviteState) info(id inviteID) InviteInfo {
	return InviteInfo{ID: id.String(), By: inv.by, IssuedAt: inv.at, Expires: inv.expires,
		Uses: inv.uses, Used: inv.used, Revoked: inv.revoked}
}

// CreateInvite issues a limited invite to the private room name and
// returns it with its code. This node must be an admin (in a room without
// a membership log it becomes the first). A room still in epoch 0 is
// rotated first: its open invite then admits only through an admin's add.
func (s *Service) CreateInvite(_ context.Context, name string, lim InviteLimits) (InviteInfo, error) {
	r, err := s.joined(name)
	if err != nil {
		return InviteInfo{}, err
	}
	if !r.private {
		return InviteInfo{}, fmt.Errorf("%w: anyone can /join %s", ErrPublicRoom, r.name)
	}
	if lim.Uses > MaxInviteUses || lim.Expires < 0 {
		return InviteInfo{}, fmt.Errorf("invite limits: %d uses (max %d), expiry %s", lim.Uses, MaxInviteUses, lim.Expires)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return InviteInfo{}, fmt.Errorf("invite key: %w", err)
	}
	pub, _ := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	w := &pb.MemberChange{Op: pb.MemberOp_MEMBER_OP_INVITE, Invite: pub, InviteUses: lim.Uses}
	if lim.Expires > 0 {
		w.InviteExpiresMs = s.now().Add(lim.Expires).UnixMilli()
	}
	if err := s.changeMembersWith(r, w); err != nil {
		return InviteInfo{}, err
	}
	id := inviteID(pub)
	m := r.membership
	m.mu.Lock()
	inv := m.log.invites[id]
	m.mu.Unlock()
	if inv == nil { // a fork won over the INVITE at once
		return InviteInfo{}, fmt.Errorf("%w: the invite was dropped by a concurrent change; try again", ErrInviteUnknown)
	}
	info := inv.info(id)
	info.Code = encodeInvite(r.name, r.key, seed)
	return info, nil
}

// RevokeInvite revokes the limited invite of the private room name whose
// ID starts with id (at least 8 hex digits, matching one invite). This
// node must be an admin.
func (s *Service) RevokeInvite(_ context.Context, name, id string) error {
	r, err := s.joined(name)
	if err != nil {
		return err
	}
	if !r.private {
		return fmt.Errorf("%w: %s has no invites to revoke", ErrPublicRoom, r.name)
	}
	id = strings.ToLower(id)
	if len(id) < inviteIDLen/2 {
		return fmt.Errorf("%w: an invite ID has at least %d hex digits", ErrInviteUnknown, inviteIDLen/2)
	}
	m := r.membership
	m.mu.Lock()
	admin := m.log.role(s.self) == RoleAdmin
	var found []inviteID
	for k := range m.log.invites {
		if strings.HasPrefix(hex.EncodeToString(k[:]), id) {
			found = append(found, k)
		}
	}
	m.mu.Unlock()
	switch {
	case !admin:
		return fmt.Errorf("%w %s", ErrNotAdmin, r.name)
	case len(found) == 0:
		return fmt.Errorf("%w: %q in %s", ErrInviteUnknown, id, r.name)
	case len(found) > 1:
		return fmt.Errorf("%w: %q names %d invites; give more digits", ErrInviteUnknown, id, len(found))
	}
	return s.changeMembersWith(r, &pb.MemberChange{Op: pb.MemberOp_MEMBER_OP_REVOKE_INVITE, Invite: found[0][:]})
}

// Invites lists the limited invites of the private room name in the
// order of the log.
func (s *Service) Invites(name string) ([]InviteInfo, error) {
	r, err := s.joined(name)
	if err != nil {
		return nil, err
	}
	if !r.private {
		return nil, fmt.Errorf("%w: %s has no invites", ErrPublicRoom, r.name)
	}
	m := r.membership
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]InviteInfo, 0, len(m.log.invites))
	for _, c := range m.log.changes {
		if c.op == pb.MemberOp_MEMBER_OP_INVITE {
			id := inviteID(c.invite)
			out = append(out, m.log.invites[id].info(id))
		}
	}
	return out, nil
}

// holdInvite keeps the ticket this node shows admins of r until it is
// in the log: the invite key's signature over r's topic and this node.
func (s *Service) holdInvite(r *room, seed []byte) error {
	t, err := makeTicket(seed, r.topicName, s.self)
	if err != nil {
		return err
	}
	m := r.membership
	m.mu.Lock()
	m.ticket = t
	m.mu.Unlock()
	// Exchanges that started before the ticket was set run again with it.
	for _, p := range r.topic.ListPeers() {
		s.queueMembers(r, p)
	}
	return nil
}

// ticketFor is the ticket to put in a members frame: while this node
// holds one and is not a member in its log.
func (m *roomMembers) ticketFor(self peer.ID) *pb.InviteTicket {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ticket == nil || m.log.isMember(self) {
		return nil
	}
	return m.ticket
}

// admitPeer is an admin's admission after an exchange with p, which
// proved the room key: a peer not in the log is added when it shows a
// ticket of an invite that admits it now (the ADD names the invite), or,
// while the room is in epoch 0, without one (the open invite).
func (s *Service) admitPeer(r *room, p peer.ID, ticket *pb.InviteTicket) {
	m := r.membership
	m.mu.Lock()
	st := m.log
	m.mu.Unlock()
	if st.empty() || st.role(s.self) != RoleAdmin || st.role(p) != RoleNone {
		return
	}
	w := &pb.MemberChange{Op: pb.MemberOp_MEMBER_OP_ADD, Subject: []byte(p)}
	if ticket != nil {
		err := s.checkTicket(st, r.topicName, p, ticket)
		if h := s.cfg.testHookAdmission; h != nil {
			h(r.topicName, p, err)
		}
		if err == nil {
			w.Invite = ticket.Invite
		} else {
			s.log.Debug("invite not honoured", "room", r.name, "peer", p, "err", err)
		}
	}
	if w.Invite == nil && st.epoch != 0 {
		return
	}
	if err := s.changeMembersWith(r, w); err != nil {
		s.log.Debug("admit member", "room", r.name, "peer", p, "err", err)
	}
}

// checkTicket reports why ticket does not admit p to st now (nil when it
// does).
func (s *Service) checkTicket(st *logState, topic string, p peer.ID, ticket *pb.InviteTicket) error {
	id, err := verifyTicket(ticket, topic, p)
	if err != nil {
		return err
	}
	if err := st.inviteAdmits(id, s.now()); err != nil {
		return err
	}
	if st.invites[id].uses != 0 && st.invites[id].by != s.self {
		return ErrInviteNotIssuer
	}
	return nil
}
