package tui

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/present"
)

// An action is one thing the UI asks of the node. Actions run one at a
// time, in order, on the executor goroutine (a slow /connect never
// freezes the screen); the model sees the outcome as an execDoneMsg.
type action interface {
	do(ctx context.Context, be Backend, cmds Commands) (command.Reply, error)
}

// lineAction is a slash command line the user typed (or text typed in
// the status conversation, for the current room).
type lineAction struct{ line string }

// sayAction is text typed in a room's conversation.
type sayAction struct{ room, text string }

// dmAction is text typed in a private conversation.
type dmAction struct {
	peer peer.ID
	text string
}

// offerAction answers a file offer: accept, reject, or fetch a room share.
type offerAction struct {
	op offerOp
	id string
}

type offerOp int

const (
	offerAccept offerOp = iota
	offerReject
	offerFetch
)

// whoisAction and verifyAction come from the peers pane.
type (
	whoisAction  struct{ peer peer.ID }
	verifyAction struct{ peer peer.ID }
)

func (a lineAction) do(ctx context.Context, _ Backend, cmds Commands) (command.Reply, error) {
	return cmds.Exec(ctx, a.line)
}

func (a sayAction) do(ctx context.Context, be Backend, _ Commands) (command.Reply, error) {
	_, err := be.Say(ctx, a.room, a.text)
	return command.Reply{}, err
}

func (a dmAction) do(ctx context.Context, be Backend, _ Commands) (command.Reply, error) {
	_, err := be.SendDM(ctx, a.peer, a.text)
	return command.Reply{Peer: a.peer}, err
}

func (a offerAction) do(ctx context.Context, be Backend, _ Commands) (command.Reply, error) {
	switch a.op {
	case offerReject:
		return command.Reply{}, be.Reject(a.id)
	case offerFetch:
		return command.Reply{}, be.Fetch(ctx, a.id)
	default:
		return command.Reply{}, be.Accept(a.id)
	}
}

func (a whoisAction) do(_ context.Context, be Backend, _ Commands) (command.Reply, error) {
	w := be.Whois(a.peer)
	return command.Reply{Text: present.Whois(w), Data: w}, nil
}

func (a verifyAction) do(_ context.Context, be Backend, _ Commands) (command.Reply, error) {
	si, err := be.Safety(a.peer)
	if err != nil {
		return command.Reply{}, err
	}
	return command.Reply{Text: present.Safety(si, a.peer.String()), Data: si}, nil
}
