package command

import (
	"context"
	"strings"

	"github.com/parley-chat/parley/present"
)

// memberCommands are the membership commands of private rooms (issue 21).
func (in *Interp) memberCommands() []*command {
	kick := Info{Name: "kick", Usage: "NICK|ID", Help: "remove a member from the current private room and give the others a new key (admins)"}
	remove := kick
	remove.Name = "remove"
	return []*command{
		{kick, in.cmdKick},
		{remove, in.cmdKick},
		{Info{Name: "rotate", Usage: "[ROOM]", Help: "give the members of a private room a new key, nobody removed (admins)"}, in.cmdRotate},
		{Info{Name: "add", Usage: "NICK|ID", Help: "add a member to the current private room (admins)"}, in.cmdAdd(false)},
		{Info{Name: "promote", Usage: "NICK|ID", Help: "make a member of the current private room an admin (admins)"}, in.cmdAdd(true)},
		{Info{Name: "members", Usage: "[ROOM]", Help: "list the admins, members and removed members of a private room"}, in.cmdMembers},
		{Info{Name: "invites", Usage: "[ROOM]", Help: "list the limited invites of a private room: used, expired, revoked"}, in.cmdInvites},
	}
}

// onePeer checks that args is exactly one peer name.
func onePeer(cmd, args string) error {
	if args == "" || strings.ContainsAny(args, " \t") {
		return usage("/%s NICK|ID", cmd)
	}
	return nil
}

func (in *Interp) cmdKick(ctx context.Context, args string) (Reply, error) {
	if err := onePeer("kick", args); err != nil {
		return Reply{}, err
	}
	name, err := in.room("")
	if err != nil {
		return Reply{}, err
	}
	p, err := in.n.Kick(ctx, name, args)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Kicked(name, in.n.PeerName(p), p)}, nil
}

func (in *Interp) cmdRotate(ctx context.Context, args string) (Reply, error) {
	name, err := in.room(args)
	if err != nil {
		return Reply{}, err
	}
	if err := in.n.Rotate(ctx, name); err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Rotated(name)}, nil
}

func (in *Interp) cmdAdd(admin bool) func(context.Context, string) (Reply, error) {
	cmd := "add"
	if admin {
		cmd = "promote"
	}
	return func(ctx context.Context, args string) (Reply, error) {
		if err := onePeer(cmd, args); err != nil {
			return Reply{}, err
		}
		name, err := in.room("")
		if err != nil {
			return Reply{}, err
		}
		p, err := in.n.AddMember(ctx, name, args, admin)
		if err != nil {
			return Reply{}, err
		}
		return Reply{Text: present.Added(name, in.n.PeerName(p), p, admin)}, nil
	}
}

func (in *Interp) cmdMembers(_ context.Context, args string) (Reply, error) {
	name, err := in.room(args)
	if err != nil {
		return Reply{}, err
	}
	info, err := in.n.Roles(name)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Roles(info), Data: info}, nil
}
