package tui

import (
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The peer list names the relay of a relayed peer when it fits and
// marks hole-punched ones; a DM's header says both in words. (The
// goldens show peers without this information, and are unchanged.)
func TestPeerPathShown(t *testing.T) {
	f := newFakeNode()
	for i := range f.peers {
		switch f.peers[i].PeerID {
		case idEve:
			f.peers[i].Via, f.peers[i].ViaNick = idRelay, "hub"
		case idBob:
			f.peers[i].HolePunched = true
		}
	}
	h := newHarness(t, f, 120, 30)
	s := h.screen()
	for _, want := range []string{"bob (" + fp(idEve) + ") ↪hub", "bob (" + fp(idBob) + ")"} {
		if !strings.Contains(s, want) {
			t.Errorf("peer list lacks %q:\n%s", want, s)
		}
	}
	var bobRow string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "bob ("+fp(idBob)+")") {
			bobRow = l
		}
	}
	if !strings.Contains(bobRow, "punch") {
		t.Errorf("hole-punched peer's row %q lacks punch", bobRow)
	}

	for _, tc := range []struct {
		name string
		peer peer.ID
		want string
	}{
		{"relayed", idEve, "online, relayed via hub (" + fp(idRelay) + ")"},
		{"hole-punched", idBob, "online, direct, hole-punched"},
		{"lan", idAlice, "online, lan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.m.dmConv(tc.peer)
			if got := h.m.headerRow(c, 200); !strings.Contains(got, tc.want) {
				t.Fatalf("header %q lacks %q", got, tc.want)
			}
		})
	}
}
