package command

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
)

func TestParseInviteArgs(t *testing.T) {
	for _, tc := range []struct {
		args string
		want inviteArgs
		err  bool
	}{
		{"", inviteArgs{}, false},
		{"vault", inviteArgs{room: "vault"}, false},
		{"--once --expires 24h", inviteArgs{limited: true, lim: node.InviteLimits{Uses: 1, Expires: 24 * time.Hour}}, false},
		{"vault --expires 7d", inviteArgs{room: "vault", limited: true, lim: node.InviteLimits{Expires: 7 * 24 * time.Hour}}, false},
		{"--uses 3", inviteArgs{limited: true, lim: node.InviteLimits{Uses: 3}}, false},
		{"--revoke 0011223344556677 vault", inviteArgs{room: "vault", revoke: "0011223344556677"}, false},
		{"--expires", inviteArgs{}, true},
		{"--expires -1h", inviteArgs{}, true},
		{"--expires 0d", inviteArgs{}, true},
		{"--uses 0", inviteArgs{}, true},
		{"--revoke x --once", inviteArgs{}, true},
		{"a b", inviteArgs{}, true},
		{"--forever", inviteArgs{}, true},
	} {
		got, err := parseInviteArgs(tc.args)
		if (err != nil) != tc.err || err == nil && got != tc.want {
			t.Errorf("parseInviteArgs(%q) = %+v, %v", tc.args, got, err)
		}
	}
}

// /invite --once issues a limited invite (the room gets a new key), /invites
// lists it, /invite --revoke revokes it; /invite alone still prints the open
// code.
func TestInviteCommands(t *testing.T) {
	n, s := newInterp(t)
	exec(t, n, s, "/create vault")
	info := func(line string) events.Info {
		t.Helper()
		for _, e := range exec(t, n, s, line) {
			if i, ok := e.(events.Info); ok {
				return i
			}
		}
		t.Fatalf("%s: no info", line)
		return events.Info{}
	}
	row, ok := info("/invite --once --expires 24h").Data.(node.InviteRow)
	if !ok || row.Uses != 1 || row.ExpiresAt == nil || !strings.HasPrefix(row.Invite, "parley-invite:") || len(row.InviteID) != 16 {
		t.Fatalf("/invite --once: %+v", row)
	}
	if roles, _ := info("/members").Data.(node.RolesInfo); roles.Epoch != 1 {
		t.Fatalf("epoch after a limited invite: %d", roles.Epoch)
	}
	if ref, _ := info("/invite").Data.(node.RoomRef); ref.Invite == "" || ref.Invite == row.Invite {
		t.Fatalf("/invite: %+v", ref)
	}
	if txt := info("/invite --revoke " + row.InviteID).Text; !strings.Contains(txt, "revoked") {
		t.Fatalf("/invite --revoke: %q", txt)
	}
	rows, _ := info("/invites").Data.([]node.InviteRow)
	if len(rows) != 1 || !rows[0].Revoked || rows[0].Invite != "" {
		t.Fatalf("/invites: %+v", rows)
	}
	for _, tc := range []struct{ line, want string }{
		{"/invite --revoke " + row.InviteID, "revoked"},
		{"/invite --revoke 00", "unknown invite"},
		{"/invite --once lobby", "public room"},
		{"/invite --expires soon", "usage"},
	} {
		er, ok := errorOf(exec(t, n, s, tc.line))
		if !ok || !strings.Contains(er.Error, tc.want) {
			t.Errorf("%s: error %q, want %q", tc.line, er.Error, tc.want)
		}
	}
}
