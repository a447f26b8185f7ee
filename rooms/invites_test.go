package rooms

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/rooms/pb"
	"google.golang.org/protobuf/proto"
)

// inviteChange signs, as sg, a change extending st with the invite fields.
func (sg signer) inviteChange(t testing.TB, st *logState, op pb.MemberOp, subject peer.ID, at time.Time, mut func(*pb.MemberChange)) change {
	t.Helper()
	w := &pb.MemberChange{Topic: st.topic, Op: op, Subject: []byte(subject), AtMs: at.UnixMilli(), Epoch: st.epoch}
	w.Seq, w.Prev = st.head()
	w.Seq++
	if mut != nil {
		mut(w)
	}
	c, err := signChange(sg.key, sg.id, w)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestInviteLogRules: the log refuses an ADD that names an invite that is
// unknown, revoked, expired at the ADD's time or used up, and invite
// fields where they do not belong.
func TestInviteLogRules(t *testing.T) {
	admin, bob, carol := newSigner(t), newSigner(t), newSigner(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, ed25519.PublicKeySize) }
	once, expiring, revoked := key(1), key(2), key(3)
	st := newLogState(testTopic)
	mustApply(t, st, admin.next(t, st, pb.MemberOp_MEMBER_OP_CREATE, admin.id))
	issue := func(k []byte, uses uint32, expires time.Time) {
		mustApply(t, st, admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_INVITE, "", t0, func(w *pb.MemberChange) {
			w.Invite, w.InviteUses = k, uses
			if !expires.IsZero() {
				w.InviteExpiresMs = expires.UnixMilli()
			}
		}))
	}
	issue(once, 1, time.Time{})
	issue(expiring, 0, t0.Add(time.Hour))
	issue(revoked, 0, time.Time{})
	mustApply(t, st, admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_REVOKE_INVITE, "", t0, func(w *pb.MemberChange) { w.Invite = revoked }))
	mustApply(t, st, admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_ADD, bob.id, t0, func(w *pb.MemberChange) { w.Invite = once }))
	if inv := st.invites[inviteID(once)]; inv.used != 1 {
		t.Fatalf("used %d, want 1", inv.used)
	}
	withInvite := func(k []byte) func(*pb.MemberChange) { return func(w *pb.MemberChange) { w.Invite = k } }
	cases := []struct {
		name string
		c    change
		want error
	}{
		{"single use twice", admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_ADD, carol.id, t0, withInvite(once)), ErrInviteUsed},
		{"expired", admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_ADD, carol.id, t0.Add(time.Hour), withInvite(expiring)), ErrInviteExpired},
		{"revoked", admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_ADD, carol.id, t0, withInvite(revoked)), ErrInviteRevoked},
		{"unknown", admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_ADD, carol.id, t0, withInvite(key(9))), ErrInviteUnknown},
		{"revoked twice", admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_REVOKE_INVITE, "", t0, withInvite(revoked)), ErrInviteRevoked},
		{"revoke unknown", admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_REVOKE_INVITE, "", t0, withInvite(key(9))), ErrInviteUnknown},
		{"issued twice", admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_INVITE, "", t0, withInvite(once)), errBadChange},
		{"issued by a member", bob.inviteChange(t, st, pb.MemberOp_MEMBER_OP_INVITE, "", t0, withInvite(key(8))), errBadChange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := st.apply(tc.c); !errors.Is(err, tc.want) || !errors.Is(err, errBadChange) {
				t.Fatalf("apply: %v, want %v", err, tc.want)
			}
		})
	}
	// Before its expiry the expiring invite admits, more than once.
	mustApply(t, st, admin.inviteChange(t, st, pb.MemberOp_MEMBER_OP_ADD, carol.id, t0.Add(time.Hour-time.Millisecond), withInvite(expiring)))

	shapes := []struct {
		name string
		op   pb.MemberOp
		mut  func(*pb.MemberChange)
	}{
		{"invite without a key", pb.MemberOp_MEMBER_OP_INVITE, nil},
		{"invite with a short key", pb.MemberOp_MEMBER_OP_INVITE, withInvite(key(4)[:31])},
		{"too many uses", pb.MemberOp_MEMBER_OP_INVITE, func(w *pb.MemberChange) { w.Invite, w.InviteUses = key(4), MaxInviteUses+1 }},
		{"invite with a subject", pb.MemberOp_MEMBER_OP_INVITE, func(w *pb.MemberChange) { w.Invite, w.Subject = key(4), []byte(carol.id) }},
		{"limits on an add", pb.MemberOp_MEMBER_OP_ADD, func(w *pb.MemberChange) { w.Subject, w.InviteUses = []byte(carol.id), 1 }},
		{"invite on an add_admin", pb.MemberOp_MEMBER_OP_ADD_ADMIN, func(w *pb.MemberChange) { w.Subject, w.Invite = []byte(carol.id), once }},
		{"invite on a rotate", pb.MemberOp_MEMBER_OP_ROTATE, func(w *pb.MemberChange) {
			w.Invite, w.Epoch, w.KeyCommit = once, w.Epoch+1, bytes.Repeat([]byte{7}, commitSize)
		}},
	}
	for _, tc := range shapes {
		t.Run(tc.name, func(t *testing.T) {
			w := &pb.MemberChange{Topic: st.topic, Op: tc.op, AtMs: t0.UnixMilli(), Epoch: st.epoch}
			w.Seq, w.Prev = st.head()
			w.Seq++
			if tc.mut != nil {
				tc.mut(w)
			}
			if _, err := signChange(admin.key, admin.id, w); !errors.Is(err, errBadChange) {
				t.Fatalf("decode: %v, want errBadChange", err)
			}
		})
	}
}

// TestInviteTicket: a ticket verifies only for its holder and topic.
func TestInviteTicket(t *testing.T) {
	holder, other := newSigner(t), newSigner(t)
	seed := bytes.Repeat([]byte{5}, ed25519.SeedSize)
	tk, err := makeTicket(seed, testTopic, holder.id)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := verifyTicket(tk, testTopic, holder.id); err != nil || !bytes.Equal(id[:], tk.Invite) {
		t.Fatalf("verify: %v", err)
	}
	for name, f := range map[string]func() error{
		"another holder": func() error { _, err := verifyTicket(tk, testTopic, other.id); return err },
		"another room":   func() error { _, err := verifyTicket(tk, testTopic+"0", holder.id); return err },
		"nil":            func() error { _, err := verifyTicket(nil, testTopic, holder.id); return err },
		"short key": func() error {
			_, err := verifyTicket(&pb.InviteTicket{Invite: tk.Invite[:31], Signature: tk.Signature}, testTopic, holder.id)
			return err
		},
	} {
		if err := f(); !errors.Is(err, errBadTicket) {
			t.Errorf("%s: %v, want errBadTicket", name, err)
		}
	}
}

// FuzzInviteTicket: any bytes as a ticket verify or fail, never panic.
func FuzzInviteTicket(f *testing.F) {
	tk, _ := makeTicket(bytes.Repeat([]byte{5}, ed25519.SeedSize), testTopic, "holder")
	good, _ := proto.Marshal(tk)
	f.Add(good, "holder")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, b []byte, holder string) {
		var w pb.InviteTicket
		if proto.Unmarshal(b, &w) != nil {
			return
		}
		if _, err := verifyTicket(&w, testTopic, peer.ID(holder)); err == nil && holder != "holder" {
			t.Fatalf("ticket verified for %q", holder)
		}
	})
}

// FuzzDecodeAnyInvite: a code that decodes encodes back to itself.
func FuzzDecodeAnyInvite(f *testing.F) {
	f.Add(encodeInvite("room", testKey(3), bytes.Repeat([]byte{1}, ed25519.SeedSize)))
	open, _ := EncodeInvite("room", testKey(3))
	f.Add(open)
	f.Fuzz(func(t *testing.T, code string) {
		name, key, seed, err := DecodeAnyInvite(code)
		if err != nil {
			if !errors.Is(err, ErrInvalidInvite) {
				t.Fatalf("error %v does not wrap ErrInvalidInvite", err)
			}
			return
		}
		if again := encodeInvite(name, key, seed); again != code {
			t.Fatalf("round trip: %q -> %q", code, again)
		}
	})
}

// admissionNode is a test node that records the invite checks it makes
// as an admin, on an injected clock.
type admissionNode struct {
	*epochNode
	checks *broadcastLog[admission]
	mu     sync.Mutex
	now    time.Time
}

type admission struct {
	p   peer.ID
	err error
}

func newAdmissionNode(t *testing.T, nick string) *admissionNode {
	t.Helper()
	a := &admissionNode{checks: newLog[admission](), now: time.Now()}
	keys := newLog[uint64]()
	n := newNode(t, nick, func(c *Config) {
		c.testHookEpochKey = func(_ string, e uint64) { keys.add(e) }
		c.testHookAdmission = func(_ string, p peer.ID, err error) { a.checks.add(admission{p, err}) }
		c.testClock = func() time.Time { a.mu.Lock(); defer a.mu.Unlock(); return a.now }
	})
	a.epochNode = &epochNode{tnode: n, keys: keys}
	return a
}

func (a *admissionNode) advance(d time.Duration) { a.mu.Lock(); a.now = a.now.Add(d); a.mu.Unlock() }

// waitCheck waits for the admin's check of p's ticket with the outcome want.
func (a *admissionNode) waitCheck(p peer.ID, want error) {
	a.t.Helper()
	a.checks.wait(a.t, "invite check", func(c admission) bool {
		return c.p == p && (want == nil && c.err == nil || want != nil && errors.Is(c.err, want))
	})
}

// TestLimitedInvites, real hosts: a single-use invite admits one peer
// only; an expired invite (injected clock) and a revoked one admit none.
// A peer not admitted holds no key of the room's epoch and does not read
// what members say.
func TestLimitedInvites(t *testing.T) {
	ctx := context.Background()
	a := newAdmissionNode(t, "alice")
	b, c, d, e := newEpochNode(t, "bob"), newEpochNode(t, "carol"), newEpochNode(t, "dave"), newEpochNode(t, "erin")
	connect(t, a.tnode, b.tnode, c.tnode, d.tnode, e.tnode)
	if _, err := a.svc.Create(ctx, "club"); err != nil {
		t.Fatal(err)
	}
	once, err := a.svc.CreateInvite(ctx, "club", InviteLimits{Uses: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The room was in epoch 0, which every holder of the room key reads:
	// the invite closed it.
	if ep, k := mustRoom(t, a.tnode, "club").membership.current(); ep != 1 || k == nil {
		t.Fatalf("after a limited invite: epoch %d, key %v", ep, k != nil)
	}
	if !strings.HasPrefix(once.Code, InvitePrefix) || once.Uses != 1 || len(once.ID) != inviteIDLen {
		t.Fatalf("invite %+v", once)
	}
	if _, _, err := DecodeInvite(once.Code); !errors.Is(err, ErrInvalidInvite) {
		t.Fatalf("DecodeInvite of a limited invite: %v", err)
	}

	// B uses the single-use invite and is added, naming it.
	if _, err := b.svc.JoinInvite(ctx, once.Code); err != nil {
		t.Fatal(err)
	}
	a.waitCheck(b.id(), nil)
	if ev := b.waitChange("add", b.id()); ev.Invite != once.ID || ev.By != a.id() {
		t.Fatalf("add event %+v", ev)
	}
	b.waitKey(1)

	// C uses it too: refused.
	if _, err := c.svc.JoinInvite(ctx, once.Code); err != nil {
		t.Fatal(err)
	}
	a.waitCheck(c.id(), ErrInviteUsed)

	// An invite that expires in an hour, two hours later.
	expiring, err := a.svc.CreateInvite(ctx, "club", InviteLimits{Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a.advance(2 * time.Hour)
	if _, err := d.svc.JoinInvite(ctx, expiring.Code); err != nil {
		t.Fatal(err)
	}
	a.waitCheck(d.id(), ErrInviteExpired)

	// An invite revoked before it is used.
	revoked, err := a.svc.CreateInvite(ctx, "club", InviteLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.svc.RevokeInvite(ctx, "club", revoked.ID); !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("revoke by a member: %v, want ErrNotAdmin", err)
	}
	if err := a.svc.RevokeInvite(ctx, "club", revoked.ID[:8]); err != nil {
		t.Fatal(err)
	}
	b.events.wait(t, "revoke event", func(ev events.Event) bool {
		m, ok := ev.(events.Membership)
		return ok && m.Op == "revoke_invite" && m.Invite == revoked.ID
	})
	if _, err := e.svc.JoinInvite(ctx, revoked.Code); err != nil {
		t.Fatal(err)
	}
	a.waitCheck(e.id(), ErrInviteRevoked)

	list, err := a.svc.Invites("club")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != once.ID || list[0].Used != 1 || !list[2].Revoked {
		t.Fatalf("invites %+v", list)
	}

	// What a member says now reaches B, not C, D or E: they hold the room
	// key (epoch 0) and no key of epoch 1.
	if _, err := b.svc.Send(ctx, "club", "members only"); err != nil {
		t.Fatal(err)
	}
	a.waitMessage("members only")
	for _, n := range []*epochNode{c, d, e} {
		n.waitVerdict("unreadable", func(v verdictEntry) bool { return v.from == b.id() && v.v.reason == reasonEpochKey })
		if n.keys.count(func(uint64) bool { return true }) != 0 {
			t.Fatalf("%s got an epoch key", *n.nick.Load())
		}
		roles, _, err := a.svc.Roles("club")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range roles {
			if r.PeerID == n.id() {
				t.Fatalf("%s is in the log as %s", *n.nick.Load(), r.Role)
			}
		}
	}
}

func mustRoom(t testing.TB, n *tnode, name string) *room {
	t.Helper()
	r, err := n.svc.joined(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
