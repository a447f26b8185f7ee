package tui

import (
	"context"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
)

// Backend is what the UI needs from a node. Exec is the only way the UI
// changes anything (the same command lines as line mode); the other
// methods are read-only snapshots for display. *node.Node implements it.
type Backend interface {
	Exec(ctx context.Context, line string) error
	Status() node.Status
	RoomList() []node.RoomRow
	Members(room string) ([]node.MemberRow, error)
	RoomHistory(room string, count int) ([]events.Message, error)
	PeerList() []node.PeerView
	Peer(id string) (node.PeerView, error)
	DMHistory(peerID string, count int) ([]dm.Entry, error)
	Commands() []node.CommandInfo
}

var (
	_ Backend        = (*node.Node)(nil)
	_ TransferLister = (*node.Node)(nil)
)
