package tui

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/transfer"
	"github.com/parley-chat/parley/trust"
)

// Backend is what the UI needs from a node: read-only snapshots for
// display, and the typed operations the UI runs on its own with the room
// or peer on screen (text in a room or a private conversation, answers to
// file offers, whois and verify from the peers pane). *node.Node
// implements it.
type Backend interface {
	Status() node.Status
	StartRoom() string
	RoomList() []node.RoomRow
	Members(room string) ([]node.MemberRow, error)
	RoomHistory(room string, count int) ([]events.Message, error)
	PeerList() []node.PeerView
	Peer(p peer.ID) node.PeerView
	DMHistory(p peer.ID, count int) ([]dm.Entry, error)
	DMConversations(limit int) ([]dm.Conversation, error)
	Transfers() []transfer.Info

	Say(ctx context.Context, room, text string) (events.Message, error)
	SendDM(ctx context.Context, p peer.ID, text string) (string, error)
	Accept(id string) error
	Reject(id string) error
	Fetch(ctx context.Context, id string) error
	Whois(p peer.ID) trust.WhoisInfo
	Safety(p peer.ID) (node.SafetyInfo, error)
}

// Commands runs the slash commands a user types (package command), in
// the session whose current room is the room the UI shows last.
// *command.Interp implements it.
type Commands interface {
	Exec(ctx context.Context, line string) (command.Reply, error)
	Commands() []command.Info
	Current() string
	SetCurrent(room string)
}

var (
	_ Backend  = (*node.Node)(nil)
	_ Commands = (*command.Interp)(nil)
)
