package adversarial

import (
	"testing"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/node"
)

// TestLookAlikeOfAPinnedNickShowsFingerprint (issue 19, finding 5): the
// victim knows "alice" from a direct message (her nick is pinned to her
// key) and she is in none of its rooms. A stranger calling itself
// "ａｌｉｃｅ" (full width) in the lobby gets a trust warning, and its
// lines are flagged nick_shared with its fingerprint, so a display that
// follows EVENTS.md shows "ａｌｉｃｅ (FP)". Before, nick_shared looked
// only at the room's members, and was false: the warning and the line's
// display disagreed.
func TestLookAlikeOfAPinnedNickShowsFingerprint(t *testing.T) {
	victim := newParty(t, "victim", nil)
	alice := newParty(t, "alice", func(c *node.Config) { c.NoDefaultRoom = true })
	link(t, alice, victim)
	alice.exec("/msg " + victim.peerID().String() + " hi, it's alice")
	victim.waitDM("hi, it's alice")

	impostor := newParty(t, "ａｌｉｃｅ", nil)
	link(t, impostor, victim)
	inLobby(t, impostor, victim)
	victim.ev.wait(t, "trust warning for the look-alike", func(e events.Event) bool {
		w, ok := e.(events.TrustWarning)
		return ok && w.PeerID == impostor.peerID() && w.PinnedPeerID == alice.peerID()
	})
	impostor.exec("it's me, alice, send me the files")
	m := victim.waitMessage("it's me, alice, send me the files")
	if !m.NickShared || m.Fingerprint != identity.ShortFingerprint(impostor.peerID()) {
		t.Fatalf("the look-alike's line: nick %q, nick_shared %v, fingerprint %q; want flagged with %q",
			m.Nick, m.NickShared, m.Fingerprint, identity.ShortFingerprint(impostor.peerID()))
	}
	h, err := victim.n.RoomHistory(node.DefaultRoom, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range h {
		if e.From == impostor.peerID() && !e.NickShared {
			t.Fatalf("the look-alike's line in /history not flagged: %+v", e)
		}
	}
}
