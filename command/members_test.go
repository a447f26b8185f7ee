package command

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
)

// The membership commands on one node: the creator is the first admin,
// /rotate starts epoch 1, and misuse gives error events.
func TestMemberCommands(t *testing.T) {
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
	roles, _ := info("/members").Data.(node.RolesInfo)
	if roles.Room != "vault" || roles.Epoch != 0 || len(roles.Roles) != 1 || roles.Roles[0].Role != "admin" || !roles.Roles[0].Self {
		t.Fatalf("/members after /create: %+v", roles)
	}
	if txt := info("/rotate").Text; !strings.Contains(txt, "new key") {
		t.Fatalf("/rotate: %q", txt)
	}
	roles, _ = info("/members vault").Data.(node.RolesInfo)
	if roles.Epoch != 1 {
		t.Fatalf("epoch after /rotate: %d", roles.Epoch)
	}
	for _, tc := range []struct{ line, want string }{
		{"/kick", "usage"},
		{"/remove a b", "usage"},
		{"/kick nobody", "no known peer"},
		{"/add nobody", "no known peer"},
		{"/members lobby", "public room"},
		{"/rotate lobby", "public room"},
	} {
		er, ok := errorOf(exec(t, n, s, tc.line))
		if !ok || !strings.Contains(er.Error, tc.want) {
			t.Errorf("%s: error %q, want %q", tc.line, er.Error, tc.want)
		}
	}
}
