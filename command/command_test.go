package command

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/node"
)

// newInterp starts a node on loopback and returns an interpreter for it
// and the sink of its events.
func newInterp(t *testing.T) (*Interp, *nodetest.Sink) {
	t.Helper()
	n, s := nodetest.New(t, nil)
	return New(n), s
}

// exec runs a line as line mode does and returns the events it produced
// (commands on one node answer synchronously).
func exec(t *testing.T, in *Interp, s *nodetest.Sink, line string) []events.Event {
	t.Helper()
	s.Take()
	if err := in.Run(context.Background(), line, s); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return s.Take()
}

func errorOf(evs []events.Event) (events.Error, bool) {
	for _, e := range evs {
		if er, ok := e.(events.Error); ok {
			return er, true
		}
	}
	return events.Error{}, false
}

func TestCommandErrors(t *testing.T) {
	n, s := newInterp(t)
	cases := []struct {
		line, wantErr, wantEcho string
	}{
		{"/nosuch", "unknown command /nosuch", "/nosuch"},
		{"/NOSUCH\x1b[2J", "unknown command", `/NOSUCH\x1b[2J`},
		{"/id extra", "takes no arguments", "/id extra"},
		{"/connect /ip4/127.0.0.1/tcp/1", "/p2p/", "/connect /ip4/127.0.0.1/tcp/1"},
		{"/join", "usage", "/join"},
		{"/join bad/name", "invalid", "/join bad/name"},
		{"/history lobby -1", "bad count", "/history lobby -1"},
		{"/history nosuchroom", "not in room", "/history nosuchroom"},
		{"/msg", "usage", "/msg"},
		{"/msg nobody hello", "no known peer", "/msg nobody hello"},
		{"/nick bad\u202ename", "invalid nick", "/nick bad\\u202ename"},
		{"/joinpass secretroom correct horse battery", "", ""}, // succeeds below
		{"/joinpass x short", "passphrase", "/joinpass …"},
	}
	for _, tc := range cases {
		evs := exec(t, n, s, tc.line)
		er, failed := errorOf(evs)
		if tc.wantErr == "" {
			if failed {
				t.Errorf("%q failed: %v", tc.line, er)
			}
			continue
		}
		if !failed {
			t.Errorf("%q: no error event in %v", tc.line, evs)
			continue
		}
		if !strings.Contains(er.Error, tc.wantErr) || er.Command != tc.wantEcho {
			t.Errorf("%q: error %q command %q; want error containing %q, command %q", tc.line, er.Error, er.Command, tc.wantErr, tc.wantEcho)
		}
		if strings.Contains(er.Command, "short") {
			t.Errorf("passphrase echoed: %q", er.Command)
		}
	}
	if err := n.Run(context.Background(), "/quit", s); !errors.Is(err, ErrQuit) {
		t.Fatalf("/quit = %v", err)
	}
}

func TestRoomsAndCurrentRoom(t *testing.T) {
	n, s := newInterp(t)
	if n.Current() != node.DefaultRoom {
		t.Fatalf("current room %q, want %q", n.Current(), node.DefaultRoom)
	}
	exec(t, n, s, "/join dev")
	if n.Current() != "dev" {
		t.Fatalf("after /join dev current is %q", n.Current())
	}
	evs := exec(t, n, s, "/create secret")
	var ref node.RoomRef
	for _, e := range evs {
		if in, ok := e.(events.Info); ok {
			ref, _ = in.Data.(node.RoomRef)
		}
	}
	if ref.Room != "secret" || !ref.Private || !strings.HasPrefix(ref.Invite, "parley-invite:") {
		t.Fatalf("/create answered %+v", evs)
	}
	exec(t, n, s, "/switch lobby")
	exec(t, n, s, "hello lobby")
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := exec(t, n, s, "/history 5")
		var msgs []events.Message
		for _, e := range evs {
			if in, ok := e.(events.Info); ok {
				msgs, _ = in.Data.([]events.Message)
			}
		}
		if len(msgs) == 1 && msgs[0].Text == "hello lobby" && msgs[0].Room == "lobby" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/history never showed the sent message: %+v", evs)
		}
		time.Sleep(20 * time.Millisecond) // own message comes back through pubsub
	}
	exec(t, n, s, "/leave lobby")
	if cur := n.Current(); cur == "lobby" || cur == "" {
		t.Fatalf("after leaving the current room, current is %q", cur)
	}
	var info events.Info
	for _, e := range exec(t, n, s, "/rooms") {
		if i, ok := e.(events.Info); ok {
			info = i
		}
	}
	if strings.Contains(info.Text, "lobby") || !strings.Contains(info.Text, "secret") {
		t.Fatalf("/rooms = %q", info.Text)
	}
}

func TestCommandsListed(t *testing.T) {
	in, _ := newInterp(t)
	cs := in.Commands()
	if !slices.IsSortedFunc(cs, func(x, y Info) int { return strings.Compare(x.Name, y.Name) }) {
		t.Fatal("Commands not sorted")
	}
	i := slices.IndexFunc(cs, func(c Info) bool { return c.Name == "joinpass" })
	if i < 0 || !cs[i].Secret || cs[i].Usage == "" {
		t.Fatalf("joinpass in Commands: %+v", cs)
	}
}
