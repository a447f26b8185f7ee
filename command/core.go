package command

import (
	"context"
	"strings"

	"github.com/parley-chat/parley/present"
)

func (in *Interp) coreCommands() []*command {
	return []*command{
		{Info{Name: "help", Help: "list the commands"}, noArgs("help", in.cmdHelp)},
		{Info{Name: "quit", Help: "leave cleanly"}, noArgs("quit", func(context.Context) (Reply, error) { return Reply{}, ErrQuit })},
		{Info{Name: "id", Help: "show this node's peer ID, fingerprint, nick and addresses"}, noArgs("id", in.cmdID)},
		{Info{Name: "peers", Help: "list connected peers"}, noArgs("peers", in.cmdPeers)},
		{Info{Name: "connect", Usage: "MULTIADDR/p2p/ID", Help: "connect to a peer and keep the connection"}, in.cmdConnect},
		{Info{Name: "nick", Usage: "NAME", Help: "change your nick (saved in config.toml)"}, in.cmdNick},
	}
}

func (in *Interp) cmdHelp(context.Context) (Reply, error) {
	cs := make([]present.Command, len(in.list))
	for i, c := range in.list {
		cs[i] = present.Command{Name: c.Name, Usage: c.Usage, Help: c.Help}
	}
	return Reply{Text: present.Help(cs)}, nil
}

func (in *Interp) cmdID(context.Context) (Reply, error) {
	info := in.n.Identity()
	return Reply{Text: present.ID(info), Data: info}, nil
}

func (in *Interp) cmdPeers(context.Context) (Reply, error) {
	rows := in.n.Peers()
	st := in.n.Status()
	return Reply{Text: present.Peers(rows, st.Reachability, st.Relays), Data: rows}, nil
}

func (in *Interp) cmdConnect(ctx context.Context, args string) (Reply, error) {
	if args == "" {
		return Reply{}, usage("/connect MULTIADDR/p2p/ID | PEER")
	}
	p, err := in.n.Connect(ctx, args)
	if err != nil || strings.Contains(args, "/") {
		// An address: the peer_connected event tells.
		return Reply{}, err
	}
	w := in.n.Whois(p)
	return Reply{Text: present.Reached(w), Data: w, Peer: p}, nil
}

func (in *Interp) cmdNick(_ context.Context, args string) (Reply, error) {
	if args == "" {
		return Reply{Text: present.Nick(in.n.Nick(), false)}, nil
	}
	if err := in.n.SetNick(args); err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Nick(args, true)}, nil
}
