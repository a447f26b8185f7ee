package command

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/present"
)

func (in *Interp) roomCommands() []*command {
	return []*command{
		{Info{Name: "join", Usage: "ROOM|INVITE", Help: "join a public room, or a private one from its invite code; it becomes the current room"}, in.cmdJoin},
		{Info{Name: "joinpass", Usage: "ROOM PASSPHRASE", Help: "join the private room whose key comes from ROOM and PASSPHRASE (Argon2id)", Secret: true}, in.cmdJoinPass},
		{Info{Name: "create", Usage: "ROOM", Help: "create a private room with a fresh key and print its invite code"}, oneArg("create", "ROOM", in.cmdCreate)},
		{Info{Name: "invite", Usage: "[ROOM] [--once] [--expires DUR] | --revoke ID", Help: "print the invite code of a private room again; --once, --uses N, --expires DUR: a limited invite (admins); --revoke ID: revoke one"}, in.cmdInviteAny},
		{Info{Name: "switch", Usage: "ROOM", Help: "make a joined room the current room"}, in.cmdSwitch},
		{Info{Name: "leave", Usage: "[ROOM]", Help: "leave a room (default: the current one)"}, in.cmdLeave},
		{Info{Name: "rooms", Help: "list joined rooms"}, noArgs("rooms", in.cmdRooms)},
		{Info{Name: "who", Usage: "[ROOM]", Help: "list the members of a room with last seen"}, in.cmdWho},
		{Info{Name: "history", Usage: "[ROOM] [N]", Help: "show the last N (default 50) messages of a room"}, in.cmdHistory},
		{Info{Name: "say", Usage: "ROOM TEXT", Help: "send TEXT to a joined ROOM without switching to it (for bots)"}, in.cmdSay},
	}
}

func (in *Interp) cmdSay(ctx context.Context, args string) (Reply, error) {
	room, text, _ := strings.Cut(args, " ")
	text = strings.TrimSpace(text)
	if room == "" || text == "" {
		return Reply{}, usage("/say ROOM TEXT")
	}
	name, err := in.n.Room(room)
	if err != nil {
		return Reply{}, err
	}
	_, err = in.n.Say(ctx, name, text)
	return Reply{}, err
}

// switched makes room current and says so in the reply.
func (in *Interp) switched(room string, r Reply) Reply {
	in.SetCurrent(room)
	r.RoomChanged, r.Room = true, room
	return r
}

func (in *Interp) cmdJoin(ctx context.Context, args string) (Reply, error) {
	if args == "" || strings.ContainsAny(args, " \t") {
		return Reply{}, usage("/join ROOM or /join INVITE")
	}
	ref, err := in.n.Join(ctx, args)
	if err != nil {
		return Reply{}, err
	}
	return in.switched(ref.Room, Reply{}), nil
}

func (in *Interp) cmdJoinPass(ctx context.Context, args string) (Reply, error) {
	name, pass, _ := strings.Cut(args, " ")
	if name == "" || pass == "" {
		return Reply{}, usage("/joinpass ROOM PASSPHRASE")
	}
	ref, err := in.n.JoinPassphrase(ctx, name, pass)
	if err != nil {
		return Reply{}, err
	}
	return in.switched(ref.Room, Reply{}), nil
}

func (in *Interp) cmdCreate(ctx context.Context, arg string) (Reply, error) {
	ref, err := in.n.CreateRoom(ctx, arg)
	if err != nil {
		return Reply{}, err
	}
	return in.switched(ref.Room, Reply{Text: present.Created(ref), Data: ref}), nil
}

func (in *Interp) cmdInvite(_ context.Context, args string) (Reply, error) {
	name, err := in.room(args)
	if err != nil {
		return Reply{}, err
	}
	ref, err := in.n.Invite(name)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Invite(ref), Data: ref}, nil
}

func (in *Interp) cmdSwitch(_ context.Context, args string) (Reply, error) {
	if args == "" {
		return Reply{}, usage("/switch ROOM")
	}
	name, err := in.room(args)
	if err != nil {
		return Reply{}, err
	}
	return in.switched(name, Reply{Text: present.Current(name), Data: node.RoomRef{Room: name}}), nil
}

func (in *Interp) cmdLeave(_ context.Context, args string) (Reply, error) {
	name, err := in.room(args)
	if err != nil {
		return Reply{}, err
	}
	if err := in.n.Leave(name); err != nil {
		return Reply{}, err
	}
	if in.Current() != name {
		return Reply{}, nil
	}
	next := ""
	if rs := in.n.RoomList(); len(rs) > 0 {
		next = rs[0].Room
	}
	return in.switched(next, Reply{}), nil
}

// Rooms lists the joined rooms, marking the current one.
func (in *Interp) Rooms() []node.RoomRow {
	rows := in.n.RoomList()
	cur := in.Current()
	for i := range rows {
		rows[i].Current = rows[i].Room == cur
	}
	return rows
}

func (in *Interp) cmdRooms(context.Context) (Reply, error) {
	rows := in.Rooms()
	return Reply{Text: present.Rooms(rows), Data: rows}, nil
}

func (in *Interp) cmdWho(_ context.Context, args string) (Reply, error) {
	name, err := in.room(args)
	if err != nil {
		return Reply{}, err
	}
	rows, err := in.n.Members(name)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Who(name, rows), Data: rows}, nil
}

func (in *Interp) cmdHistory(_ context.Context, args string) (Reply, error) {
	fields := strings.Fields(args)
	if len(fields) > 2 {
		return Reply{}, usage("/history [ROOM] [N]")
	}
	count := 0
	if len(fields) > 0 {
		if v, err := strconv.Atoi(fields[len(fields)-1]); err == nil {
			if v < 1 {
				return Reply{}, fmt.Errorf("bad count %d: use a number of messages above 0", v)
			}
			count = v
			fields = fields[:len(fields)-1]
		} else if len(fields) == 2 {
			return Reply{}, fmt.Errorf("bad count %q: use a number of messages", safetext.Line(fields[1]))
		}
	}
	name, err := in.room(strings.Join(fields, ""))
	if err != nil {
		return Reply{}, err
	}
	msgs, err := in.n.RoomHistory(name, count)
	if err != nil {
		return Reply{}, err
	}
	if msgs == nil {
		msgs = []events.Message{}
	}
	return Reply{Text: present.History(name, msgs), Data: msgs}, nil
}
