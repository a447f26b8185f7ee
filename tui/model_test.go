package tui

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/muesli/termenv"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
)

func TestTextGoesToTheRoomShown(t *testing.T) {
	f := newFakeNode()
	h := newHarness(t, f, 80, 24)
	h.enter("hello lobby")
	// Ctrl+P from #lobby goes to #dev: the command session follows,
	// without a command line.
	h.press(tea.KeyCtrlP)
	if h.m.active != roomKey("dev") || f.Current() != "dev" {
		t.Fatalf("active %q, current %q after Ctrl+P", h.m.active, f.Current())
	}
	h.enter("hello dev")
	want := []string{"say #lobby hello lobby", "say #dev hello dev"}
	if got := h.takeLines(); !slices.Equal(got, want) {
		t.Fatalf("submitted %q, want %q", got, want)
	}
	// The answer to a /switch the user types is shown.
	h.enter("/switch dev")
	h.execDone()
	if !strings.Contains(h.screen(), "current room: dev") {
		t.Fatal("the answer to a typed /switch is not shown")
	}
}

func TestFollowsTheCommandsRoom(t *testing.T) {
	f := newFakeNode()
	h := newHarness(t, f, 80, 24)
	h.enter("/join rust")
	f.set(func(f *fakeNode) {
		f.rooms = append(f.rooms, node.RoomRow{Room: "rust", Members: 1})
	})
	h.events(events.Joined{Room: "rust"})
	h.execDone()
	if h.m.active != roomKey("rust") {
		t.Fatalf("active %q after /join rust", h.m.active)
	}
	if !strings.Contains(h.screen(), "joined #rust") {
		t.Fatalf("no joined line:\n%s", h.screen())
	}
	h.enter("/leave")
	f.set(func(f *fakeNode) {
		f.rooms = f.rooms[:2]
	})
	h.events(events.Left{Room: "rust"})
	h.execDone()
	if h.m.active != roomKey("dev") || slices.Contains(h.m.order, roomKey("rust")) {
		t.Fatalf("after leaving: active %q, order %q", h.m.active, h.m.order)
	}
}

func TestUnreadCounts(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	h.events(
		msg("dev", idAlice, "alice", "one", 0),
		msg("dev", idAlice, "alice", "two", time.Second),
		msg("dev", idSelf, "me", "mine do not count", 2*time.Second),
		events.Presence{Room: "dev", PeerID: idBob, Nick: "bob", Online: true},
		events.DM{ID: "d1", From: idCarol, Nick: "carol", Text: "psst", SentAt: t0},
	)
	if c := h.m.convs[roomKey("dev")]; c.unread != 2 {
		t.Fatalf("dev unread %d, want 2", c.unread)
	}
	if c := h.m.convs[dmKey(idCarol)]; c == nil || c.unread != 1 {
		t.Fatalf("carol conversation %+v", c)
	}
	// The first message of a new conversation is in the store already
	// when it arrives (the node stores, then reports): still unread.
	f := h.node
	f.set(func(f *fakeNode) {
		f.dms[idBob.String()] = []dm.Entry{{ID: "d2", Peer: idBob, Nick: "bob", Text: "stored first", SentAt: t0}}
	})
	h.events(events.DM{ID: "d2", From: idBob, Nick: "bob", Text: "stored first", SentAt: t0})
	if c := h.m.convs[dmKey(idBob)]; c == nil || c.unread != 1 || len(c.entries) != 1 {
		t.Fatalf("bob conversation %+v", c)
	}
	if !strings.Contains(h.screen(), " #dev               2 ") {
		t.Fatalf("sidebar does not show the count:\n%s", h.screen())
	}
	h.alt('2') // status, #dev, #lobby, @carol, @bob
	if h.m.active != roomKey("dev") || h.m.convs[roomKey("dev")].unread != 0 {
		t.Fatalf("Alt+2: active %q", h.m.active)
	}
	// Messages in the conversation shown are not unread.
	h.events(msg("dev", idAlice, "alice", "three", 3*time.Second))
	if h.m.convs[roomKey("dev")].unread != 0 {
		t.Fatal("a message in the shown conversation counts as unread")
	}
}

func TestScrollback(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	for i := range 100 {
		h.events(msg("lobby", idAlice, "alice", fmt.Sprintf("line %03d", i), time.Duration(i)*time.Second))
	}
	if !strings.Contains(h.screen(), "line 099") {
		t.Fatal("the last line is not shown")
	}
	h.press(tea.KeyPgUp)
	s := h.screen()
	if strings.Contains(s, "line 099") || !strings.Contains(s, "line 079") || !strings.Contains(s, "scrolled back") {
		t.Fatalf("after PgUp:\n%s", s)
	}
	// New lines do not move a scrolled view; the header counts them.
	h.events(msg("lobby", idBob, "bob", "new one", time.Hour))
	if h.screen() == s || !strings.Contains(h.screen(), "1 new below") || !strings.Contains(h.screen(), "line 079") {
		t.Fatalf("after a new line while scrolled:\n%s", h.screen())
	}
	h.m.Update(tea.MouseMsg{Button: tea.MouseButtonWheelUp, Action: tea.MouseActionPress, X: 40, Y: 10})
	if !strings.Contains(h.screen(), "line 076") {
		t.Fatalf("the wheel does not scroll:\n%s", h.screen())
	}
	for range 100 {
		h.press(tea.KeyPgUp)
	}
	if !strings.Contains(h.screen(), "line 000") {
		t.Fatalf("PgUp does not reach the first line:\n%s", h.screen())
	}
	for range 100 {
		h.press(tea.KeyPgDown)
	}
	if s := h.screen(); !strings.Contains(s, "new one") || strings.Contains(s, "scrolled") {
		t.Fatalf("PgDn does not come back to the bottom:\n%s", s)
	}
	// Sending jumps to the bottom too.
	h.press(tea.KeyPgUp)
	h.enter("back")
	if h.m.activeConv().scroll != 0 {
		t.Fatal("sending leaves the view scrolled")
	}
}

func TestInputHistory(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	h.enter("first")
	h.enter("/joinpass secret-room hunter2")
	h.enter("second")
	h.typeText("draft")
	h.press(tea.KeyUp)
	if v := h.m.input.Value(); v != "second" {
		t.Fatalf("Up: %q", v)
	}
	h.press(tea.KeyUp)
	if v := h.m.input.Value(); v != "first" {
		t.Fatalf("Up Up: %q (secret commands stay out of the history)", v)
	}
	h.press(tea.KeyUp)
	if v := h.m.input.Value(); v != "first" {
		t.Fatalf("Up past the start: %q", v)
	}
	h.press(tea.KeyDown)
	h.press(tea.KeyDown)
	if v := h.m.input.Value(); v != "draft" {
		t.Fatalf("Down back to the draft: %q", v)
	}
}

func TestCompletion(t *testing.T) {
	cases := []struct {
		typed string
		tabs  int
		want  string
	}{
		{"/wh", 1, "/who "},
		{"/wh", 2, "/whois "},
		{"/wh", 3, "/who "},
		{"/switch d", 1, "/switch dev "},
		{"/switch ", 2, "/switch lobby "},
		{"al", 1, "alice: "},
		{"hi al", 1, "hi alice "},
		{"/msg b", 1, "/msg bob#" + fp(idBob) + " "},
		{"/msg b", 2, "/msg bob#" + fp(idEve) + " "},
		{"/msg ca", 1, "/msg carol "},
		{"/msg zz", 1, "/msg zz"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s×%d", tc.typed, tc.tabs), func(t *testing.T) {
			h := newHarness(t, newFakeNode(), 80, 24)
			h.typeText(tc.typed)
			for range tc.tabs {
				h.press(tea.KeyTab)
			}
			if v := h.m.input.Value(); v != tc.want {
				t.Fatalf("got %q, want %q", v, tc.want)
			}
		})
	}
	// Shift+Tab goes back; typing ends the cycle.
	h := newHarness(t, newFakeNode(), 80, 24)
	h.typeText("/wh")
	h.press(tea.KeyTab)
	h.press(tea.KeyTab)
	h.press(tea.KeyShiftTab)
	h.typeText("x")
	if v := h.m.input.Value(); v != "/who x" {
		t.Fatalf("got %q", v)
	}
}

func TestCompletionSkipsUnsafeNicks(t *testing.T) {
	f := newFakeNode()
	f.set(func(f *fakeNode) { f.peers[0].Nick = "al\x1b[2Jice" })
	h := newHarness(t, f, 80, 24)
	h.m.active = roomKey("dev") // no members there
	h.typeText("/msg al")
	h.press(tea.KeyTab)
	if v := h.m.input.Value(); v != "/msg al" {
		t.Fatalf("completed to %q", v)
	}
}

func TestQuitKeys(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	if cmd := h.press(tea.KeyCtrlC); cmd == nil || cmd() != tea.Quit() {
		t.Fatal("Ctrl+C does not quit")
	}
	h = newHarness(t, newFakeNode(), 80, 24)
	h.enter("/quit")
	if got := h.takeLines(); !slices.Equal(got, []string{"/quit"}) {
		t.Fatalf("/quit: submitted %q (the node answers ErrQuit)", got)
	}
}

func TestFullQueueIsReported(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	h.full = true
	h.enter("hello")
	if !strings.Contains(h.screen(), "too many commands waiting") {
		t.Fatalf("no error shown:\n%s", h.screen())
	}
}

func TestScrollbackIsBounded(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	for i := range maxEntries + 50 {
		h.events(msg("dev", idAlice, "alice", fmt.Sprintf("m%d", i), time.Duration(i)*time.Millisecond))
	}
	c := h.m.convs[roomKey("dev")]
	if len(c.entries) != maxEntries || len(c.ids) != maxEntries {
		t.Fatalf("%d entries, %d ids; want %d", len(c.entries), len(c.ids), maxEntries)
	}
	// A repeated message id is shown once.
	e := msg("dev", idAlice, "alice", "again", time.Hour)
	h.events(e, e)
	if n := len(c.entries); c.entries[n-1].text != "again" || c.entries[n-2].text == "again" {
		t.Fatal("duplicate message shown twice")
	}
}

func TestDMStatusForAMessageNotInTheStore(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	h.events(events.DMStatus{ID: "0123456789abcdef", To: idCarol, State: events.DMFailed, Error: "rejected by recipient: too long"})
	c := h.m.convs[dmKey(idCarol)]
	if c == nil || len(c.entries) != 1 || c.entries[0].state != events.DMFailed {
		t.Fatalf("conversation %+v", c)
	}
	h.m.activate(c.key)
	if s := h.screen(); !strings.Contains(s, "(message 01234567)") || !strings.Contains(s, "✗ failed: rejected by") {
		t.Fatalf("screen:\n%s", s)
	}
}

func TestPasteKeyIsDisabled(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	if h.m.input.KeyMap.Paste.Enabled() {
		t.Fatal("Ctrl+V would run a clipboard program")
	}
	if key.Matches(tea.KeyMsg{Type: tea.KeyCtrlV}, h.m.input.KeyMap.Paste) {
		t.Fatal("Ctrl+V matches the paste binding")
	}
}

func TestClickPicksAConversation(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	// Row 0 is the header, then status, #dev, #lobby.
	h.m.Update(tea.MouseMsg{Button: tea.MouseButtonLeft, Action: tea.MouseActionPress, X: 3, Y: 2})
	if h.m.active != roomKey("dev") {
		t.Fatalf("click on row 2 shows %q", h.m.active)
	}
}

func TestStatusShowsNodeEvents(t *testing.T) {
	h := newHarness(t, newFakeNode(), 160, 30)
	h.events(
		events.Ready{PeerID: idSelf, Nick: "me", Fingerprint: "FP", Addrs: []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + idSelf.String()}},
		events.PeerConnected{PeerID: idAlice, Addr: "/ip4/127.0.0.1/tcp/4002"},
		events.PeerPath{PeerID: idAlice, Path: "direct", Previous: "relayed", Addr: "/ip4/1.2.3.4/tcp/1"},
		events.Reachability{Reachability: "public"},
		events.PeerDisconnected{PeerID: idAlice, Reason: "liveness"},
		LogLine{Text: "level=WARN msg=something"},
	)
	h.m.activate(statusKey)
	s := h.screen()
	for _, want := range []string{"ready: me (FP)", "listening on /ip4/127.0.0.1/tcp/4001", "connected: alice (" + fp(idAlice) + ")",
		"now direct (was relayed)", "reachability: public", "stopped answering pings", "level=WARN"} {
		if !strings.Contains(s, want) {
			t.Errorf("status lacks %q:\n%s", want, s)
		}
	}
}

func TestFailedMsgDoesNotSwitchLater(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	h.enter("/msg nobody hi")
	h.execDone()
	if !strings.Contains(h.screen(), `no known peer is called "nobody"`) {
		t.Fatalf("the error is not shown:\n%s", h.screen())
	}
	// A later delivery state (of a /msg typed before, say) does not pull
	// the view away from the room.
	h.events(events.DMStatus{ID: "07", To: idCarol, State: events.DMQueued})
	if h.m.active != roomKey("lobby") {
		t.Fatalf("active %q", h.m.active)
	}
}

func TestNoColorDropsColoursOnAColourTerminal(t *testing.T) {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.TrueColor)
	f := newFakeNode()
	lobbyHistory(f)
	h := newHarnessStyled(t, f, 100, 30, r, true)
	view := h.m.View()
	if colorSGR.MatchString(view) {
		t.Fatalf("NO_COLOR view holds colour sequence %q", colorSGR.FindString(view))
	}
	// lipgloss drops attributes too without colours: the UI marks the
	// selection with ">" as well as with reverse video.
	if strings.Contains(view, "\x1b") || !strings.Contains(view, ">#lobby") {
		t.Fatalf("NO_COLOR view:\n%q", view)
	}
	hc := newColourHarness(t, f, 100, 30)
	if !colorSGR.MatchString(hc.m.View()) {
		t.Fatal("the colour view has no colours")
	}
}

func TestClickPicksAPeer(t *testing.T) {
	h := newHarness(t, newFakeNode(), 120, 30)
	// Wide: the peers column starts after the sidebar and the messages;
	// row 0 is its header.
	h.m.Update(tea.MouseMsg{Button: tea.MouseButtonLeft, Action: tea.MouseActionPress, X: 110, Y: 2})
	if h.m.focus != focusPeers || h.m.peerSel != 1 {
		t.Fatalf("focus %v, peer %d", h.m.focus, h.m.peerSel)
	}
	h.press(tea.KeyEnter)
	if h.m.active != dmKey(idBob) {
		t.Fatalf("active %q", h.m.active)
	}
	// Below the list (the input line) is no peer.
	h.m.Update(tea.MouseMsg{Button: tea.MouseButtonLeft, Action: tea.MouseActionPress, X: 110, Y: 28})
	if h.m.focus != focusInput {
		t.Fatal("a click on the input line picked a peer")
	}
}

// TestWaitingIsExplained: the header of a private conversation says why
// messages wait, until one is delivered; a failed dial of a kept peer is a
// line in the status conversation.
func TestWaitingIsExplained(t *testing.T) {
	h := newHarness(t, newFakeNode(), 160, 24)
	h.events(events.DMStatus{ID: "07", To: idCarol, State: events.DMQueued})
	h.m.activate(dmKey(idCarol))
	if !strings.Contains(h.screen(), "away: messages wait in the queue") {
		t.Fatalf("no away mark:\n%s", h.screen())
	}
	h.events(events.DMStatus{ID: "07", To: idCarol, State: events.DMQueued, Reason: events.DMWaitDialFailed,
		Detail: "127.0.0.1:4001 refused the connection\x1b[31m"})
	if s := h.screen(); !strings.Contains(s, "waiting: 127.0.0.1:4001 refused the connection") || strings.Contains(s, "away:") {
		t.Fatalf("no reason in the header:\n%s", s)
	}
	h.events(events.DMStatus{ID: "07", To: idCarol, State: events.DMDelivered})
	if s := h.screen(); strings.Contains(s, "waiting:") {
		t.Fatalf("reason kept after delivery:\n%s", s)
	}
	h.events(events.PeerDialFailed{PeerID: idCarol, Addr: "127.0.0.1:4001", Reason: "wrong_peer",
		Error: "the peer at 127.0.0.1:4001 is 12D3…Xt8g, not 12D3…SYd1", RetryIn: time.Second})
	h.m.activate(statusKey)
	if s := h.screen(); !strings.Contains(s, "cannot reach carol") || !strings.Contains(s, "is 12D3…Xt8g, not 12D3…SYd1; retrying in 1s") {
		t.Fatalf("no dial failure line:\n%s", s)
	}
}

// Private conversations of an earlier run are listed again at start,
// most recent last, with their messages and nothing unread.
func TestDMConversationsRestoredAtStart(t *testing.T) {
	f := newFakeNode()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.dms[idCarol.String()] = []dm.Entry{{ID: "c1", Peer: idCarol, Nick: "carol", Text: "older", SentAt: t0}}
	f.dms[idBob.String()] = []dm.Entry{{ID: "b1", Peer: idBob, Nick: "bob", Text: "newer", SentAt: t0.Add(time.Hour)}}
	h := newHarness(t, f, 100, 24)
	for _, p := range []peer.ID{idCarol, idBob} {
		c := h.m.convs[dmKey(p)]
		if c == nil || len(c.entries) != 1 || c.unread != 0 {
			t.Fatalf("conversation with %s after a restart: %+v", p, c)
		}
	}
	ic, ib := slices.Index(h.m.order, dmKey(idCarol)), slices.Index(h.m.order, dmKey(idBob))
	if ic < 0 || ib < ic {
		t.Fatalf("sidebar order %v: want carol (older) before bob", h.m.order)
	}
	if !strings.Contains(h.screen(), "@bob") {
		t.Fatalf("sidebar does not list bob:\n%s", h.screen())
	}
}
