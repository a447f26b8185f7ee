package command

import (
	"context"
	"strings"

	"github.com/parley-chat/parley/present"
	"github.com/parley-chat/parley/transfer"
)

func (in *Interp) transferCommands() []*command {
	idOp := func(name, help string, op func(ctx context.Context, id string) error) *command {
		return &command{Info{Name: name, Usage: "ID", Help: help}, oneArg(name, "ID", func(ctx context.Context, id string) (Reply, error) {
			return Reply{}, op(ctx, id)
		})}
	}
	return []*command{
		{Info{Name: "send", Usage: "PEER PATH", Help: "offer a file to a peer"}, in.cmdSend},
		idOp("accept", "accept a file offer (ID or a unique prefix)", func(_ context.Context, id string) error { return in.n.Accept(id) }),
		idOp("reject", "reject a file offer", func(_ context.Context, id string) error { return in.n.Reject(id) }),
		idOp("cancel", "cancel a transfer, on either side", func(_ context.Context, id string) error { return in.n.Cancel(id) }),
		idOp("resume", "resume an interrupted transfer now", func(_ context.Context, id string) error { return in.n.Resume(id) }),
		{Info{Name: "transfers", Help: "list transfers with state, progress, rate and ETA"}, noArgs("transfers", in.cmdTransfers)},
		{Info{Name: "share", Usage: "ROOM PATH", Help: "announce a file in a room; members /fetch it"}, in.cmdShare},
		idOp("fetch", "download a file shared in a room", in.n.Fetch),
	}
}

func (in *Interp) cmdSend(ctx context.Context, args string) (Reply, error) {
	who, path, _ := strings.Cut(args, " ")
	path = strings.TrimSpace(path)
	if who == "" || path == "" {
		return Reply{}, usage("/send PEER PATH")
	}
	p, err := in.n.ResolvePeer(who)
	if err != nil {
		return Reply{}, err
	}
	id, err := in.n.Offer(ctx, p, path)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Offered(path, who, id), Data: map[string]string{"transfer_id": id}, Peer: p}, nil
}

func (in *Interp) cmdShare(ctx context.Context, args string) (Reply, error) {
	room, path, _ := strings.Cut(args, " ")
	path = strings.TrimSpace(path)
	if room == "" || path == "" {
		return Reply{}, usage("/share ROOM PATH")
	}
	name, err := in.room(room)
	if err != nil {
		return Reply{}, err
	}
	sh, err := in.n.Share(ctx, name, path)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Shared(sh, name), Data: sh}, nil
}

func (in *Interp) cmdTransfers(context.Context) (Reply, error) {
	list := in.n.Transfers()
	if list == nil {
		list = []transfer.Info{}
	}
	return Reply{Text: present.Transfers(list), Data: list}, nil
}
