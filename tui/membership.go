package tui

import (
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/present"
)

// peerNamer names peers with the nicks of the peers list.
type peerNamer struct{ m *Model }

func (n peerNamer) PeerName(p peer.ID) string { return n.m.peerByID[p].Nick }

// membership shows a change of a private room's membership in the room.
func (m *Model) membership(e events.Membership) {
	m.system(m.roomConv(e.Room), entrySystem, clean(present.Membership(e, peerNamer{m})))
}
