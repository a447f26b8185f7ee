package tui

import (
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/transfer"
)

const (
	xferIn    = "3fa9c1d2e4b5a6978877665544332211"
	xferOut   = "77aa55cc00112233445566778899aabb"
	xferShare = "c0ffee00112233445566778899aabbcc"
)

func TestGoldenTransfers(t *testing.T) {
	f := newFakeNode()
	lobbyHistory(f)
	f.set(func(f *fakeNode) {
		f.xfers = []transfer.Info{{ID: xferOut, Direction: transfer.Send, Peer: idBob, Name: "holiday.tar", Size: 300 << 20}}
	})
	h := newHarness(t, f, 80, 24)
	h.events(
		events.FileOffer{TransferID: xferIn, From: idAlice, Name: "report.pdf", Size: 1258291},
		events.FileProgress{TransferID: xferOut, Bytes: 135 << 20, Size: 300 << 20, Rate: 12 << 20, Direction: "send", Peer: idBob},
	)
	view := h.m.View()
	checkGeometry(t, view, 80, 24)
	golden(t, "transfers_80x24", h.screen())

	// Alt+A accepts the offer shown.
	h.alt('a')
	if got := h.takeLines(); !slices.Equal(got, []string{"accept " + xferIn}) {
		t.Fatalf("Alt+A submitted %q", got)
	}
	if h.m.transfers.popup() != nil || strings.Contains(h.screen(), "file offer") {
		t.Fatal("the popup stays after Alt+A")
	}
	h.events(
		events.FileProgress{TransferID: xferIn, Bytes: 629145, Size: 1258291, Rate: 314572, Direction: "receive", Peer: idAlice},
		events.FileDone{TransferID: xferOut, Path: "/home/me/holiday.tar", Size: 300 << 20, Hash: "ab", Direction: "send", Peer: idBob},
	)
	s := h.screen()
	for _, want := range []string{"↓ report.pdf · alice", " 49% 307.2 KiB/s ETA 0:03", "↑ holiday.tar · bob", "100% done"} {
		if !strings.Contains(s, want) {
			t.Errorf("screen lacks %q:\n%s", want, s)
		}
	}
	h.events(events.FileDone{TransferID: xferIn, Path: "/home/me/Downloads/report.pdf", Size: 1258291, Hash: "cd", Direction: "receive", Peer: idAlice})
	// Finished transfers leave the strip a few seconds later.
	h.clock = h.clock.Add(endedShown + time.Second)
	h.m.Update(tickMsg(h.clock))
	if s := h.screen(); strings.Contains(s, "report.pdf ·") || strings.Contains(s, "holiday.tar ·") {
		t.Fatalf("ended transfers still shown:\n%s", s)
	}
	// Both ends are written into the conversations with the peers.
	h.m.activate(dmKey(idAlice))
	if s := h.screen(); !strings.Contains(s, "alice (") || !strings.Contains(s, "received report.pdf (1.2 MiB), verified;") {
		t.Fatalf("alice's conversation:\n%s", s)
	}
	h.m.activate(dmKey(idBob))
	if s := h.screen(); !strings.Contains(s, "holiday.tar (300.0 MiB) reached bob") {
		t.Fatalf("bob's conversation:\n%s", s)
	}
}

func TestOfferKeys(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	// Without an offer, Alt+A and Alt+R do nothing (and type nothing).
	h.alt('a')
	h.alt('r')
	if len(h.takeLines()) != 0 || h.m.input.Value() != "" {
		t.Fatal("Alt+A/Alt+R without an offer did something")
	}
	h.events(
		events.FileOffer{TransferID: xferIn, From: idAlice, Name: "a.txt", Size: 10},
		events.FileOffer{TransferID: xferOut, From: idBob, Name: "b.txt", Size: 20},
		events.FileOffer{TransferID: xferShare, From: idCarol, Name: "c.txt", Size: 30, Room: "lobby"},
	)
	// Typing goes on while an offer is shown.
	h.typeText("hello")
	if h.m.input.Value() != "hello" {
		t.Fatalf("input %q", h.m.input.Value())
	}
	h.alt('r') // rejects a.txt
	h.press(tea.KeyEsc)
	// b.txt is hidden, not answered; c.txt, a room share, is fetched.
	h.alt('a')
	want := []string{"reject " + xferIn, "fetch " + xferShare}
	if got := h.takeLines(); !slices.Equal(got, want) {
		t.Fatalf("submitted %q, want %q", got, want)
	}
	if h.m.transfers.popup() != nil {
		t.Fatal("an offer is still shown")
	}
	if !strings.Contains(h.screen(), "carol (") {
		t.Fatalf("the share is not written into the room:\n%s", h.screen())
	}
}

func TestTransferFailedAndRejected(t *testing.T) {
	h := newHarness(t, newFakeNode(), 80, 24)
	h.events(
		events.FileOffer{TransferID: xferIn, From: idAlice, Name: "a.bin", Size: 1 << 20},
		events.FileProgress{TransferID: xferIn, Bytes: 1 << 19, Size: 1 << 20, Rate: 1000, Direction: "receive", Peer: idAlice},
		events.FileFailed{TransferID: xferIn, Error: "chunk 3 failed verification \x1b[2J 3 times", Code: "verify_failed", Direction: "receive", Peer: idAlice},
		events.FileRejected{TransferID: xferOut, Direction: "send", Peer: idBob},
	)
	if h.m.transfers.popup() != nil {
		t.Fatal("a failed offer is still shown")
	}
	if c := h.m.convs[dmKey(idAlice)]; c == nil || c.unread != 2 {
		t.Fatalf("alice's conversation %+v (the offer and the failure are unread)", c)
	}
	h.m.activate(dmKey(idAlice))
	s := h.screen()
	if !strings.Contains(s, "transfer of a.bin failed: chunk 3 failed") || !strings.Contains(s, `verification \x1b[2J 3 times`) || !strings.Contains(s, " 50% failed") {
		t.Fatalf("screen:\n%s", s)
	}
	h.m.activate(dmKey(idBob))
	if s := h.screen(); !strings.Contains(s, "declined transfer 77aa55cc") {
		t.Fatalf("an unknown transfer is not named by its id:\n%s", s)
	}
}

// An interrupted transfer says it waits for the other side instead of
// keeping its last rate and ETA (issue 22).
func TestTransferWaitingForPeer(t *testing.T) {
	h := newHarness(t, newFakeNode(), 100, 24)
	h.events(
		events.FileOffer{TransferID: xferIn, From: idAlice, Name: "a.bin", Size: 1 << 20},
		events.FileProgress{TransferID: xferIn, Bytes: 1 << 18, Size: 1 << 20, Rate: 181 << 20, Direction: "receive", Peer: idAlice},
		events.FileProgress{TransferID: xferIn, Bytes: 1 << 18, Size: 1 << 20, Direction: "receive", Peer: idAlice, Waiting: true},
	)
	h.m.activate(dmKey(idAlice))
	s := h.screen()
	if !strings.Contains(s, " 25% waiting for peer") || strings.Contains(s, "ETA") {
		t.Fatalf("screen:\n%s", s)
	}
	h.events(events.FileProgress{TransferID: xferIn, Bytes: 1 << 19, Size: 1 << 20, Rate: 1 << 20, Direction: "receive", Peer: idAlice})
	if s := h.screen(); !strings.Contains(s, " 50% ") || strings.Contains(s, "waiting for peer") {
		t.Fatalf("after resuming:\n%s", s)
	}
}

// A transfer stopped by this node's full disk says so (issue 18), not
// that it waits for the peer.
func TestTransferWaitingOnFullDisk(t *testing.T) {
	h := newHarness(t, newFakeNode(), 100, 24)
	h.events(
		events.FileOffer{TransferID: xferIn, From: idAlice, Name: "a.bin", Size: 1 << 20},
		events.FileProgress{TransferID: xferIn, Bytes: 1 << 18, Size: 1 << 20, Direction: "receive", Peer: idAlice,
			Waiting: true, Code: events.WaitNoSpace, Reason: "no space left on device"},
	)
	h.m.activate(dmKey(idAlice))
	if s := h.screen(); !strings.Contains(s, " 25% disk full: /resume") || strings.Contains(s, "waiting for peer") {
		t.Fatalf("screen:\n%s", s)
	}
}

// A room share pulled from several members says from how many.
func TestTransferShowsHolders(t *testing.T) {
	f := newFakeNode()
	lobbyHistory(f)
	h := newHarness(t, f, 80, 24)
	h.events(
		events.FileOffer{TransferID: xferShare, From: idAlice, Name: "talk.mp4", Size: 64 << 20, Room: "lobby"},
		events.FileProgress{TransferID: xferShare, Bytes: 16 << 20, Size: 64 << 20, Rate: 24 << 20, Direction: "receive", Peer: idAlice, Holders: 3},
	)
	if s := h.screen(); !strings.Contains(s, "↓ talk.mp4 · 3 holders") {
		t.Fatalf("screen lacks the holders:\n%s", s)
	}
	h.events(events.FileProgress{TransferID: xferShare, Bytes: 32 << 20, Size: 64 << 20, Rate: 8 << 20, Direction: "receive", Peer: idAlice, Holders: 1})
	if s := h.screen(); !strings.Contains(s, "↓ talk.mp4 · alice") {
		t.Fatalf("one holder left, screen:\n%s", s)
	}
}
