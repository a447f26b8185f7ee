package tui

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/transfer"
)

// Golden screens of the main views. The screens are stored without the
// styles' escape sequences (testdata/*.golden); run
//
//	go test ./tui -run Golden -update
//
// to rewrite them after a deliberate change, and read the diff.

func lobbyHistory(f *fakeNode) {
	bobMsg := msg("lobby", idBob, "bob", "hi alice! did the build pass?", 2*time.Minute)
	bobMsg.NickShared = true
	eveMsg := msg("lobby", idEve, "bob", "it did, ship it", 3*time.Minute)
	eveMsg.NickShared = true
	f.set(func(f *fakeNode) {
		f.history["lobby"] = []events.Message{
			msg("lobby", idAlice, "alice", "morning all", 0),
			msg("lobby", idSelf, "me", "morning alice", time.Minute),
			bobMsg,
			eveMsg,
			msg("lobby", idAlice, "alice", "Careful: that second bob is not the bob we know. Check the fingerprints next to the nick before you trust anything either of them says.", 4*time.Minute),
		}
	})
}

func TestGoldenRoomsAndMessages(t *testing.T) {
	f := newFakeNode()
	lobbyHistory(f)
	h := newHarness(t, f, 80, 24)
	h.events(
		events.Presence{Room: "lobby", PeerID: idCarol, Nick: "carol", Online: false},
		msg("dev", idAlice, "alice", "pushed the fix", 5*time.Minute),
		msg("dev", idAlice, "alice", "please review", 6*time.Minute),
	)
	view := h.m.View()
	checkGeometry(t, view, 80, 24)
	golden(t, "rooms_80x24", h.screen())
}

// TestGoldenRoomSyncState: the room's header says whether its history is
// whole, and the room says where a sync left gaps.
func TestGoldenRoomSyncState(t *testing.T) {
	f := newFakeNode()
	lobbyHistory(f)
	f.set(func(f *fakeNode) {
		f.rooms[0].Sync = events.SyncComplete
		f.rooms[1].Sync = events.SyncGaps
	})
	h := newHarness(t, f, 80, 24)
	h.events(
		events.RoomSync{Room: "lobby", State: events.SyncSyncing},
		events.RoomSync{Room: "lobby", State: events.SyncGaps, Since: t0.Add(-7 * 24 * time.Hour), Peers: 1, CaughtUp: 40,
			Gaps: []events.SyncGap{{From: t0.Add(time.Minute), To: t0.Add(3 * time.Minute), Missing: 2}}},
		events.RoomSync{Room: "dev", State: events.SyncComplete, Since: t0.Add(-7 * 24 * time.Hour), Peers: 1},
	)
	view := h.m.View()
	checkGeometry(t, view, 80, 24)
	golden(t, "roomsync_80x24", h.screen())
	h.m.activate(roomKey("dev"))
	if got := h.m.headerRow(h.m.convs[roomKey("dev")], 200); !strings.Contains(got, "history complete") {
		t.Fatalf("dev header %q", got)
	}
}

func TestGoldenDMWithDeliveryMarks(t *testing.T) {
	f := newFakeNode()
	entry := func(id string, out bool, text, state, errText string, at time.Duration) dm.Entry {
		e := dm.Entry{ID: id, Peer: idBob, Outgoing: out, Text: text, SentAt: t0.Add(at), State: state, Error: errText}
		if !out {
			e.Nick = "bob"
		}
		return e
	}
	f.set(func(f *fakeNode) {
		f.dms[idBob.String()] = []dm.Entry{
			entry("01", false, "are you around later?", "", "", 0),
			entry("02", true, "yes, after six", "delivered", "", time.Minute),
			entry("03", true, "this one went out while you were away last week", "failed", "expired: not delivered within 168h0m0s", 2*time.Minute),
			entry("04", true, "bring the cable", "sent", "", 3*time.Minute),
		}
	})
	h := newHarness(t, f, 80, 24)
	h.enter("/msg bob see you there")
	f.set(func(f *fakeNode) {
		f.dms[idBob.String()] = append(f.dms[idBob.String()], entry("05", true, "see you there", "queued", "", 4*time.Minute))
	})
	h.events(events.DMStatus{ID: "05", To: idBob, State: events.DMQueued})
	if got := h.execDone(); len(got) != 1 || got[0] != "/msg bob see you there" {
		t.Fatalf("submitted %q", got)
	}
	if h.m.active != dmKey(idBob) {
		t.Fatalf("active conversation %q, want the one with bob", h.m.active)
	}
	golden(t, "dm_80x24_queued", h.screen())
	h.events(events.DMStatus{ID: "05", To: idBob, State: events.DMSent},
		events.DMStatus{ID: "04", To: idBob, State: events.DMDelivered})
	view := h.m.View()
	checkGeometry(t, view, 80, 24)
	golden(t, "dm_80x24", h.screen())

	// Text typed here goes to bob, by his peer ID.
	h.enter("and the adapter")
	h.enter("//slash at the start")
	want := []string{"dm " + idBob.String() + " and the adapter", "dm " + idBob.String() + " /slash at the start"}
	if got := h.takeLines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("submitted %q, want %q", got, want)
	}
}

func TestGoldenPeersPane(t *testing.T) {
	f := newFakeNode()
	lobbyHistory(f)
	h := newHarness(t, f, 120, 30)
	h.press(tea.KeyF2)
	h.press(tea.KeyDown)
	h.press(tea.KeyDown)
	view := h.m.View()
	checkGeometry(t, view, 120, 30)
	golden(t, "peers_120x30", h.screen())

	// w asks for whois of the peer under the cursor; Enter opens a
	// private conversation with it.
	h.typeText("w")
	h.press(tea.KeyEnter)
	if got := h.takeLines(); len(got) != 1 || got[0] != "whois "+idEve.String() {
		t.Fatalf("submitted %q", got)
	}
	if h.m.active != dmKey(idEve) || h.m.focus != focusInput {
		t.Fatalf("active %q focus %v after Enter on a peer", h.m.active, h.m.focus)
	}
	if !strings.Contains(h.screen(), "@bob ("+fp(idEve)+")") {
		t.Fatalf("a private conversation with the second bob must show the fingerprint:\n%s", h.screen())
	}
}

func TestGoldenHelpOverlay(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	h.enter("/help")
	if len(h.takeLines()) != 0 {
		t.Fatal("/help went to the node; the UI shows it")
	}
	view := h.m.View()
	checkGeometry(t, view, 80, 24)
	golden(t, "help_80x24", h.screen())
	top := h.screen()
	h.press(tea.KeyPgDown)
	if h.screen() == top {
		t.Fatal("PgDn does not scroll the help")
	}
	h.press(tea.KeyEsc)
	if h.m.help || strings.Contains(h.screen(), "Esc, F1 or q to close") {
		t.Fatal("Esc does not close the help")
	}
	h.press(tea.KeyF1)
	if !h.m.help {
		t.Fatal("F1 does not open the help")
	}
}

// Payloads of the injection tests: what a peer might put into any text
// the UI shows.
const (
	escTitle = "\x1b]0;owned\x07"           // OSC: set the window title
	escClear = "\x1b[2J\x1b[H"              // CSI: clear the screen, cursor home
	escUp    = "\x1b[5A\x1b[2K"             // CSI: cursor up 5 rows, erase the line
	escColor = "\x1b[31;1m"                 // SGR: red bold
	escClip  = "\x1b]52;c;cm0gLXJmIH4K\x07" // OSC 52: write the clipboard
	escC1    = "\u009b6n"                   // C1 CSI: report cursor position
	escBidi  = "\u202eevil\u202c"           // right-to-left override
	escNUL   = "\x00"                       // NUL
)

// Peers control nicks, room names, message texts and file names. None of
// it may reach the terminal as a control sequence.
func TestGoldenInjectionRendersInert(t *testing.T) {
	f := newFakeNode()
	f.set(func(f *fakeNode) {
		f.peers[0].Nick = "al" + escTitle + "ice"
		f.rooms = append(f.rooms, node.RoomRow{Room: "r" + escClear + "oom", Members: 1})
	})
	for _, colour := range []bool{true, false} {
		h := harnessIn(t, f, 80, 24, colour)
		h.events(
			msg("lobby", idAlice, "al"+escTitle+"ice", "hi "+escColor+"red"+escClear+" "+escClip+" "+escC1+" "+escBidi+"\r\x08\x07 done", 0),
			events.DM{ID: "aa", From: idBob, Nick: "bob" + escColor, Text: "dm " + escTitle, SentAt: t0},
			events.Info{Text: "info " + escClear},
			events.Error{Error: "error " + escTitle},
			events.TrustWarning{Text: "warning " + escClip},
			events.PeerConnected{PeerID: idCarol, Addr: "/ip4/1.2.3.4" + escClear},
			LogLine{Text: "log " + escColor},
		)
		for _, k := range h.m.order {
			h.m.activate(k)
			assertInert(t, h.m.View(), colour)
		}
		h.m.activate(roomKey("lobby"))
		view := h.m.View()
		checkGeometry(t, view, 80, 24)
		if !colour {
			golden(t, "injection_80x24", h.screen())
		}
		if !strings.Contains(h.screen(), `\x1b]0;owned\x07`) {
			t.Fatalf("the escape sequence is not shown as text:\n%s", h.screen())
		}
	}
}

// File transfers carry peer text too: the name of an offered file, the
// room of a share, the nick of the peer offering it, the name the
// transfer list gives, the error text of a failure. The offer popup, the
// progress rows and the lines written into the conversations show all of
// it as inert text.
func TestGoldenTransferInjectionRendersInert(t *testing.T) {
	const (
		xferFail  = "badbadbad0112233445566778899aabb"
		xferLater = "1a7e0000112233445566778899aabbcc"
	)
	room := "r" + escClear + "oom"
	f := newFakeNode()
	f.set(func(f *fakeNode) {
		f.peers[0].Nick = "al" + escTitle + "ice"
		f.peers[1].Nick = "bo" + escColor + "b"
		f.peers[4].Nick, f.peers[4].Online = "car"+escNUL+"ol", true
		f.rooms = append(f.rooms, node.RoomRow{Room: room, Members: 3})
		// The sender's side of a share: the UI takes its name and room
		// from the transfer list.
		f.xfers = []transfer.Info{{ID: xferOut, Direction: transfer.Send, Peer: idBob,
			Name: "notes" + escUp + ".txt", Size: 64 << 20, Room: room}}
	})
	for _, colour := range []bool{true, false} {
		h := harnessIn(t, f, 80, 24, colour)
		h.events(
			events.FileOffer{TransferID: xferShare, From: idCarol, Name: "s" + escBidi + escColor + ".txt", Size: 4096, Room: room},
			events.FileOffer{TransferID: xferIn, From: idBob, Name: "in\n" + escC1 + ".pdf", Size: 1 << 20},
			events.FileOffer{TransferID: xferFail, From: idAlice, Name: "bad" + escNUL + ".bin", Size: 1 << 20},
			events.FileProgress{TransferID: xferIn, Bytes: 1 << 19, Size: 1 << 20, Rate: 1 << 16, Direction: "receive", Peer: idBob},
			events.FileProgress{TransferID: xferFail, Bytes: 1 << 18, Size: 1 << 20, Rate: 1 << 16, Direction: "receive", Peer: idAlice},
			events.FileProgress{TransferID: xferOut, Bytes: 16 << 20, Size: 64 << 20, Rate: 4 << 20, Direction: "send", Peer: idBob},
			events.FileFailed{TransferID: xferFail, Error: "peer said " + escClear + escNUL + "\r\n" + escC1, Code: "error", Direction: "receive", Peer: idAlice},
			events.FileOffer{TransferID: xferLater, From: idBob, Name: "l" + escClip + escNUL + ".zip", Size: 123},
		)
		for _, k := range h.m.order {
			h.m.activate(k)
			assertInert(t, h.m.View(), colour)
		}

		// The share waits first: its popup names the room, over the room
		// with the announcement, above three progress rows.
		h.m.activate(roomKey(room))
		view := h.m.View()
		checkGeometry(t, view, 80, 24)
		assertInert(t, view, colour)
		s := h.screen()
		for _, want := range []string{
			`car\x00ol (T2HA) shares a file in #r\x1b[2J\x1b[Hoom`,
			`s\u202eevil\u202c\x1b[31;1m.txt · 4.0 KiB`,
			"Alt+A accept · Alt+R reject · Esc later",
			`↓ in\x0a\x9b6n.pdf · bo\x1b[…`, " 50% 64.0 KiB/s",
			`↓ bad\x00.bin · al\x1b]0;own…`, " 25% failed",
			`↑ notes\x1b[5A\x1b[2K.txt · …`, " 25% 4.0 MiB/s",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("screen lacks %q:\n%s", want, s)
			}
		}
		if !colour {
			golden(t, "injection_transfers_80x24", s)
		}

		// Esc hides the share; the offer from bob comes up, shown over
		// the conversation with alice, where the failure is written.
		h.press(tea.KeyEsc)
		h.m.activate(dmKey(idAlice))
		view = h.m.View()
		checkGeometry(t, view, 80, 24)
		assertInert(t, view, colour)
		s = h.screen()
		for _, want := range []string{
			`bo\x1b[31;1mb (JRVN) offers a file`,
			`l\x1b]52;c;cm0gLXJmIH4K\x07\x00.zip · 123 B`,
			"Alt+A accept · Alt+R reject · Esc later",
			"transfer of " + `bad\x00.bin failed: peer said`,
			`\x1b[2J\x1b[H\x00\x0d\x0a\x9b6n`,
		} {
			if !strings.Contains(s, want) {
				t.Errorf("screen lacks %q:\n%s", want, s)
			}
		}
		if !colour {
			golden(t, "injection_transfers_dm_80x24", s)
		}
		h.alt('a')
		if got := h.takeLines(); !slices.Equal(got, []string{"accept " + xferLater}) {
			t.Fatalf("Alt+A submitted %q", got)
		}
	}
}

var (
	sgr      = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	colorSGR = regexp.MustCompile(`\x1b\[[0-9;]*(3[0-9]|4[0-9]|9[0-7]|10[0-7])(;[0-9]+)*m`)
)

// assertInert fails unless the only escape sequences in view are the
// styles' own SGR (colour and attribute) sequences, and there is no other
// control character than newline. Without colour there may be no colour
// sequence at all.
func assertInert(t *testing.T, view string, colour bool) {
	t.Helper()
	if !colour && colorSGR.MatchString(view) {
		t.Fatalf("colour sequence %q without colours", colorSGR.FindString(view))
	}
	rest := sgr.ReplaceAllString(view, "")
	for i, r := range rest {
		if r == '\n' {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' || r == '\u202c' {
			t.Fatalf("control character %U at byte %d reaches the terminal: %q", r, i, rest[max(0, i-20):min(len(rest), i+20)])
		}
	}
}

func TestGoldenResize(t *testing.T) {
	f := newFakeNode()
	lobbyHistory(f)
	h := newHarness(t, f, 80, 24)
	sizes := []struct{ w, h int }{{80, 24}, {120, 30}, {50, 14}, {80, 24}}
	var first string
	for i, s := range sizes {
		h.resize(s.w, s.h)
		checkGeometry(t, h.m.View(), s.w, s.h)
		switch i {
		case 0:
			first = h.screen()
			golden(t, "resize_80x24", first)
		case 1:
			golden(t, "resize_120x30", h.screen())
		case 2:
			golden(t, "resize_50x14", h.screen())
		case 3:
			if h.screen() != first {
				t.Fatalf("back at 80x24 the screen differs:\n%s", sideBySide(first, h.screen()))
			}
		}
	}
	h.resize(30, 8)
	if !strings.Contains(h.screen(), "terminal too small") {
		t.Fatalf("30x8 shows:\n%s", h.screen())
	}
}

// Every view fills the terminal exactly, from the smallest supported size
// up, with long names and texts everywhere.
func TestGeometryAtManySizes(t *testing.T) {
	f := newFakeNode()
	lobbyHistory(f)
	long := strings.Repeat("wide😀名前", 6)
	f.set(func(f *fakeNode) {
		f.peers[0].Nick = long
		f.rooms = append(f.rooms, node.RoomRow{Room: "a-room-with-a-very-long-name-indeed", Members: 3})
	})
	h := newHarness(t, f, 80, 24)
	h.events(
		msg("lobby", idAlice, long, strings.Repeat("unbroken", 40), time.Minute),
		events.DM{ID: "d1", From: idCarol, Nick: long, Text: "hi", SentAt: t0},
	)
	x := h.m.transfers.get("0123456789abcdef0123456789abcdef")
	x.peer, x.name, x.size = idAlice, long+".tar.gz", 3<<30
	h.m.transfers.offer(x)
	y := h.m.transfers.get("fedcba9876543210fedcba9876543210")
	y.send, y.peer, y.name, y.size, y.bytes, y.rate, y.state = true, idBob, "notes.txt", 1000, 400, 100, xferActive
	views := []struct {
		name string
		set  func()
	}{
		{"messages", func() {}},
		{"help", func() { h.m.help = true }},
		{"peers", func() { h.m.help = false; h.m.focus = focusPeers }},
		{"status", func() { h.m.focus = focusInput; h.m.activate(statusKey) }},
		{"dm", func() { h.m.activate(dmKey(idCarol)) }},
	}
	for _, v := range views {
		v.set()
		for _, s := range []struct{ w, h int }{{40, 10}, {41, 11}, {59, 17}, {60, 20}, {80, 24}, {99, 30}, {100, 30}, {160, 50}, {300, 80}} {
			h.resize(s.w, s.h)
			view := h.m.View()
			checkGeometry(t, view, s.w, s.h)
			assertInert(t, view, false)
		}
	}
}
