package tui

import (
	"bytes"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
)

// A first start: nobody else around, nothing said. The lobby says how
// peers arrive and how to reach one; F3 copies the address a peer needs
// (not the loopback one), shows it on a line of its own, and the hint
// goes once someone is there.
func TestGoldenFirstRun(t *testing.T) {
	f := newFakeNode()
	f.set(func(f *fakeNode) {
		f.peers = nil
		f.rooms = []node.RoomRow{{Room: "lobby", Members: 1}}
		f.status.Peers, f.status.Relays, f.status.Reachability = 0, 0, "unknown"
	})
	h := newHarness(t, f, 80, 24)
	lan := "/ip4/192.168.1.20/tcp/4001/p2p/" + idSelf.String()
	h.events(events.Ready{PeerID: idSelf, Nick: "me", Fingerprint: "FP",
		Addrs: []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + idSelf.String(), lan}})
	checkGeometry(t, h.m.View(), 80, 24)
	golden(t, "firstrun_80x24", h.screen())

	var copied []string
	h.m.copy = func(s string) { copied = append(copied, s) }
	cmd := h.press(tea.KeyF3)
	if cmd == nil {
		t.Fatal("F3 copies nothing")
	}
	cmd()
	if len(copied) != 1 || copied[0] != lan {
		t.Fatalf("copied %q, want %q", copied, lan)
	}
	golden(t, "firstrun_copied_80x24", h.screen())

	// Without a clipboard F3 still shows the address.
	h.m.copy = nil
	if cmd := h.press(tea.KeyF3); cmd != nil {
		t.Fatal("F3 without a clipboard returned a command")
	}
	c := h.m.activeConv()
	if last := c.entries[len(c.entries)-1].text; last != "your address (a peer types /connect and it to reach you):\n"+lan {
		t.Fatalf("F3 without a clipboard shows %q", last)
	}

	f.set(func(f *fakeNode) {
		f.peers = []node.PeerView{{PeerID: idAlice, Nick: "alice", Fingerprint: fp(idAlice), Online: true, Path: "lan"}}
	})
	h.m.refresh()
	if strings.Contains(h.screen(), "Nobody else here yet") {
		t.Fatalf("the hint stays with a peer online:\n%s", h.screen())
	}
}

func TestBestAddr(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		want  string
	}{
		{nil, ""},
		{[]string{"/ip4/127.0.0.1/tcp/1/p2p/X"}, "/ip4/127.0.0.1/tcp/1/p2p/X"},
		{[]string{"/ip4/127.0.0.1/tcp/1/p2p/X", "/ip6/::1/tcp/1/p2p/X", "/ip4/10.0.0.2/tcp/1/p2p/X"}, "/ip4/10.0.0.2/tcp/1/p2p/X"},
		{[]string{"/ip4/1.2.3.4/tcp/1/p2p/R/p2p-circuit/p2p/X", "/ip4/127.0.0.1/tcp/1/p2p/X"}, "/ip4/127.0.0.1/tcp/1/p2p/X"},
		{[]string{"/ip4/1.2.3.4/tcp/1/p2p/R/p2p-circuit/p2p/X"}, "/ip4/1.2.3.4/tcp/1/p2p/R/p2p-circuit/p2p/X"},
	} {
		if got := bestAddr(tc.addrs); got != tc.want {
			t.Errorf("bestAddr(%q) = %q, want %q", tc.addrs, got, tc.want)
		}
	}
}

// The clipboard sequence is OSC 52, wrapped for tmux when inside it.
func TestOSC52Copy(t *testing.T) {
	var b bytes.Buffer
	osc52Copy(&b, "xterm-256color", "")("/ip4/1.2.3.4/tcp/1")
	if got := b.String(); !strings.HasPrefix(got, "\x1b]52;c;") || !strings.HasSuffix(got, "\x07") {
		t.Errorf("plain: %q", got)
	}
	b.Reset()
	osc52Copy(&b, "screen", "/tmp/tmux-1000/default,1,0")("x")
	if got := b.String(); !strings.HasPrefix(got, "\x1bPtmux;\x1b\x1b]52;") {
		t.Errorf("tmux: %q", got)
	}
}

// Too small a terminal says the minimum size first, wrapped, in the cells
// there are.
func TestTooSmallSaysTheMinimum(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	for _, s := range []struct{ w, h int }{{30, 8}, {12, 3}, {39, 30}, {100, 9}} {
		h.resize(s.w, s.h)
		view := h.m.View()
		checkGeometry(t, view, s.w, s.h)
		flat := strings.Join(strings.Fields(view), " ")
		if s.w >= 30 && !strings.Contains(flat, "needs at least 40x10") {
			t.Errorf("%dx%d: %q", s.w, s.h, view)
		}
	}
}

// From 80 columns up, the message column never narrows as the terminal
// widens (the peers column comes only when the messages keep 60 cells).
func TestMessagesNeverNarrowWhenWider(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	h.resize(80, 30)
	at80 := h.m.layout().msgW
	for w := 80; w <= 200; w++ {
		h.resize(w, 30)
		if got := h.m.layout().msgW; got < at80 {
			t.Fatalf("at %d columns the messages get %d cells, fewer than at 80 (%d)", w, got, at80)
		}
	}
}
