package present

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/node"
)

// Kicked answers /kick: "removed bob (ABCD) from #team; the others get a
// new key".
func Kicked(room, nick string, p peer.ID) string {
	return fmt.Sprintf("removed %s from #%s; the other members get a new key", Member(nick, p), safetext.Line(room))
}

// Rotated answers /rotate.
func Rotated(room string) string {
	return fmt.Sprintf("#%s has a new key; the members get it sealed to them", safetext.Line(room))
}

// Added answers /add and /promote.
func Added(room, nick string, p peer.ID, admin bool) string {
	what := "a member"
	if admin {
		what = "an admin"
	}
	return fmt.Sprintf("%s is now %s of #%s", Member(nick, p), what, safetext.Line(room))
}

// Roles answers /members: the room's epoch, then each peer of its
// membership log with its role.
func Roles(info node.RolesInfo) string {
	var b strings.Builder
	if len(info.Roles) == 0 {
		fmt.Fprintf(&b, "#%s has no membership log: everyone with the invite reads and writes (an admin's /kick or /rotate starts one)", safetext.Line(info.Room))
		return b.String()
	}
	fmt.Fprintf(&b, "membership of #%s (epoch %d):", safetext.Line(info.Room), info.Epoch)
	for _, r := range info.Roles {
		state := safetext.Line(r.Role)
		if r.Role == "removed" {
			state = fmt.Sprintf("removed (from epoch %d)", r.Until)
		}
		if r.Self {
			state += ", you"
		}
		fmt.Fprintf(&b, "\n  %s %s", Member(r.Nick, r.PeerID), state)
	}
	return b.String()
}

// Membership renders a membership change, without the room: "bob (ABCD)
// removed carol (EFGH), epoch 2".
func Membership(e events.Membership, namer Namer) string {
	by := MemberBy(namer, e.By)
	sub := MemberBy(namer, e.Subject)
	if e.Self {
		sub = "you"
	}
	switch e.Op {
	case "create":
		return by + " started the membership of this room (admin)"
	case "add":
		if e.Invite != "" {
			return fmt.Sprintf("%s added %s (invite %s)", by, sub, safetext.Line(e.Invite))
		}
		return fmt.Sprintf("%s added %s", by, sub)
	case "add_admin":
		return fmt.Sprintf("%s made %s an admin", by, sub)
	case "remove":
		return fmt.Sprintf("%s removed %s; new key, epoch %d", by, sub, e.Epoch)
	case "rotate":
		return fmt.Sprintf("%s gave the room a new key, epoch %d", by, e.Epoch)
	case "invite":
		return fmt.Sprintf("%s issued limited invite %s", by, safetext.Line(e.Invite))
	case "revoke_invite":
		return fmt.Sprintf("%s revoked invite %s", by, safetext.Line(e.Invite))
	}
	return fmt.Sprintf("%s changed the membership (%s)", by, safetext.Line(e.Op))
}
