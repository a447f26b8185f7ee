package present

import (
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/node"
)

// LimitedInvite answers /invite --once / --expires.
func LimitedInvite(row node.InviteRow) string {
	return fmt.Sprintf("limited invite %s for #%s (%s; it holds the room key, and an admin's node admits its holder):\n  %s",
		row.InviteID, safetext.Line(row.Room), inviteLimits(row), row.Invite)
}

// InviteRevoked answers /invite --revoke.
func InviteRevoked(room, id string) string {
	return fmt.Sprintf("invite %s of #%s revoked: it admits nobody from now on", safetext.Line(id), safetext.Line(room))
}

// Invites answers /invites.
func Invites(room string, rows []node.InviteRow) string {
	if len(rows) == 0 {
		return fmt.Sprintf("#%s has no limited invites (/invite --once or --expires DUR makes one)", safetext.Line(room))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "limited invites of #%s:", safetext.Line(room))
	for _, r := range rows {
		state := fmt.Sprintf("used %d", r.Used)
		switch {
		case r.Revoked:
			state = "revoked, " + state
		case r.ExpiresAt != nil && !time.Now().Before(*r.ExpiresAt):
			state = "expired, " + state
		case r.Uses != 0 && r.Used >= r.Uses:
			state = "used up"
		}
		fmt.Fprintf(&b, "\n  %s %s (%s) by %s", r.InviteID, state, inviteLimits(r), Member("", r.By))
	}
	return b.String()
}

// inviteLimits says how far an invite admits.
func inviteLimits(r node.InviteRow) string {
	uses := "any number of peers"
	switch r.Uses {
	case 0:
	case 1:
		uses = "single use"
	default:
		uses = fmt.Sprintf("%d uses", r.Uses)
	}
	if r.ExpiresAt == nil {
		return uses + ", no expiry"
	}
	return uses + ", until " + stamp(*r.ExpiresAt)
}
