package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/rooms"
)

// DefaultRoom is joined when no room is configured.
const DefaultRoom = "lobby"

// startRooms starts the rooms service (which rejoins the rooms stored from
// earlier runs), joins the configured rooms and picks the current one.
func (n *Node) startRooms(ctx context.Context) error {
	cfg := n.cfg.RoomsConfig
	cfg.Host = n.host
	cfg.DB = n.store.DB()
	cfg.Emitter = events.EmitterFunc(n.roomEvent)
	cfg.Logger = n.log.With("component", "rooms")
	cfg.Nick = n.Nick
	cfg.OnFileShare = n.onFileShare
	svc, err := rooms.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start rooms: %w", err)
	}
	n.rooms = svc
	start := n.cfg.Rooms
	if len(start) == 0 && len(svc.Rooms()) == 0 && !n.cfg.NoDefaultRoom {
		start = []string{DefaultRoom}
	}
	for _, name := range start {
		if err := svc.Join(ctx, name); err != nil {
			return fmt.Errorf("join room %q: %w", name, err)
		}
	}
	for _, r := range svc.Rooms() {
		n.meet(r)
	}
	// The current room: the first one asked for, else the lobby, else
	// the first one rejoined.
	if len(start) > 0 {
		name, _ := rooms.NormalizeName(start[0])
		n.setCurrent(name)
	} else if _, ok := n.roomInfo(DefaultRoom); ok {
		n.setCurrent(DefaultRoom)
	} else if rs := svc.Rooms(); len(rs) > 0 {
		n.setCurrent(rs[0].Name)
	}
	return nil
}

// roomEvent passes room events on, recording the nicks members claim.
func (n *Node) roomEvent(e events.Event) {
	switch e := e.(type) {
	case events.Message:
		if p, err := peer.Decode(e.From); err == nil {
			n.observeNick(p, e.Nick)
		}
	case events.Presence:
		if p, err := peer.Decode(e.PeerID); err == nil && e.Online {
			n.observeNick(p, e.Nick)
		}
	}
	n.emit.Emit(e)
}

// meet advertises a joined room's rendezvous namespace in the DHT and
// connects to the members found there.
func (n *Node) meet(r rooms.RoomInfo) {
	if err := n.host.Join(r.Rendezvous); err != nil && !errors.Is(err, overlay.ErrNoDHT) {
		n.log.Warn("room rendezvous", "room", r.Name, "err", err)
	}
}

func (n *Node) roomInfo(name string) (rooms.RoomInfo, bool) {
	for _, r := range n.rooms.Rooms() {
		if r.Name == name {
			return r, true
		}
	}
	return rooms.RoomInfo{}, false
}

// Current returns the current room, "" when none.
func (n *Node) Current() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.current
}

func (n *Node) setCurrent(name string) {
	n.mu.Lock()
	n.current = name
	n.mu.Unlock()
}

// roomArg resolves an optional ROOM argument: the current room when empty.
func (n *Node) roomArg(arg string) (string, error) {
	if arg == "" {
		cur := n.Current()
		if cur == "" {
			return "", errors.New("no current room; /join one first")
		}
		return cur, nil
	}
	name, err := rooms.NormalizeName(arg)
	if err != nil {
		return "", err
	}
	if _, ok := n.roomInfo(name); !ok {
		return "", fmt.Errorf("not in room %q; /join it first", safetext.Line(name))
	}
	return name, nil
}

func (n *Node) roomCommands() []*command {
	return []*command{
		{name: "join", usage: "ROOM|INVITE", help: "join a public room, or a private one from its invite code; it becomes the current room", run: n.cmdJoin},
		{name: "joinpass", usage: "ROOM PASSPHRASE", help: "join the private room whose key comes from ROOM and PASSPHRASE (Argon2id)", run: n.cmdJoinPass, secret: true},
		{name: "create", usage: "ROOM", help: "create a private room with a fresh key and print its invite code", run: n.cmdCreate},
		{name: "invite", usage: "[ROOM]", help: "print the invite code of a private room again", run: n.cmdInvite},
		{name: "switch", usage: "ROOM", help: "make a joined room the current room", run: n.cmdSwitch},
		{name: "leave", usage: "[ROOM]", help: "leave a room (default: the current one)", run: n.cmdLeave},
		{name: "rooms", help: "list joined rooms", run: noArgs("rooms", n.cmdRooms)},
		{name: "who", usage: "[ROOM]", help: "list the members of a room with last seen", run: n.cmdWho},
		{name: "history", usage: "[ROOM] [N]", help: "show the last N (default 50) messages of a room", run: n.cmdHistory},
	}
}

// RoomRef is the structured answer of /join, /create and /invite.
type RoomRef struct {
	Room    string `json:"room"`
	Private bool   `json:"private"`
	Invite  string `json:"invite,omitempty"`
}

func (n *Node) joined(name string) {
	if r, ok := n.roomInfo(name); ok {
		n.meet(r)
	}
	n.setCurrent(name)
}

func (n *Node) cmdJoin(ctx context.Context, args string) error {
	if args == "" || strings.ContainsAny(args, " \t") {
		return errors.New("usage: /join ROOM or /join INVITE")
	}
	name := args
	if rooms.LooksLikeInvite(args) {
		var err error
		if name, err = n.rooms.JoinInvite(ctx, args); err != nil {
			return err
		}
	} else {
		var err error
		if name, err = rooms.NormalizeName(args); err != nil {
			return err
		}
		if err := n.rooms.Join(ctx, name); err != nil {
			return err
		}
	}
	n.joined(name)
	return nil
}

func (n *Node) cmdJoinPass(ctx context.Context, args string) error {
	name, pass, _ := strings.Cut(args, " ")
	if name == "" || pass == "" {
		return errors.New("usage: /joinpass ROOM PASSPHRASE")
	}
	name, err := rooms.NormalizeName(name)
	if err != nil {
		return err
	}
	if err := n.rooms.JoinPassphrase(ctx, name, pass); err != nil {
		return err
	}
	n.joined(name)
	return nil
}

func (n *Node) cmdCreate(ctx context.Context, args string) error {
	if args == "" || strings.ContainsAny(args, " \t") {
		return errors.New("usage: /create ROOM")
	}
	name, err := rooms.NormalizeName(args)
	if err != nil {
		return err
	}
	invite, err := n.rooms.Create(ctx, name)
	if err != nil {
		return err
	}
	n.joined(name)
	n.emit.Emit(events.Info{
		Text: fmt.Sprintf("created private room %s; give this invite code to the people you want in it (it holds the room key):\n  %s", name, invite),
		Data: RoomRef{Room: name, Private: true, Invite: invite},
	})
	return nil
}

func (n *Node) cmdInvite(_ context.Context, args string) error {
	name, err := n.roomArg(args)
	if err != nil {
		return err
	}
	invite, err := n.rooms.Invite(name)
	if err != nil {
		return err
	}
	n.emit.Emit(events.Info{
		Text: fmt.Sprintf("invite code for %s (it holds the room key):\n  %s", name, invite),
		Data: RoomRef{Room: name, Private: true, Invite: invite},
	})
	return nil
}

func (n *Node) cmdSwitch(_ context.Context, args string) error {
	if args == "" {
		return errors.New("usage: /switch ROOM")
	}
	name, err := n.roomArg(args)
	if err != nil {
		return err
	}
	n.setCurrent(name)
	n.emit.Emit(events.Info{Text: "current room: " + name, Data: RoomRef{Room: name}})
	return nil
}

func (n *Node) cmdLeave(_ context.Context, args string) error {
	name, err := n.roomArg(args)
	if err != nil {
		return err
	}
	r, _ := n.roomInfo(name)
	if err := n.rooms.Leave(name); err != nil {
		return err
	}
	n.host.Leave(r.Rendezvous)
	if n.Current() == name {
		next := ""
		if rs := n.rooms.Rooms(); len(rs) > 0 {
			next = rs[0].Name
		}
		n.setCurrent(next)
	}
	return nil
}

// RoomRow is one entry of the structured answer of /rooms.
type RoomRow struct {
	Room    string `json:"room"`
	Private bool   `json:"private"`
	Members int    `json:"members"`
	Current bool   `json:"current"`
}

func (n *Node) cmdRooms(context.Context) error {
	cur := n.Current()
	rs := n.rooms.Rooms()
	rows := make([]RoomRow, len(rs))
	var b strings.Builder
	fmt.Fprintf(&b, "%d room(s)", len(rs))
	for i, r := range rs {
		rows[i] = RoomRow{Room: r.Name, Private: r.Private, Members: r.Members, Current: r.Name == cur}
		mark, kind := " ", "public"
		if rows[i].Current {
			mark = "*"
		}
		if r.Private {
			kind = "private"
		}
		fmt.Fprintf(&b, "\n %s %s (%s, %d online)", mark, r.Name, kind, r.Members)
	}
	n.emit.Emit(events.Info{Text: b.String(), Data: rows})
	return nil
}

// MemberRow is one entry of the structured answer of /who.
type MemberRow struct {
	PeerID      string `json:"peer_id"`
	Nick        string `json:"nick"`
	Fingerprint string `json:"fingerprint"`
	Online      bool   `json:"online"`
	Self        bool   `json:"self"`
	LastSeen    string `json:"last_seen"`
}

func (n *Node) cmdWho(_ context.Context, args string) error {
	name, err := n.roomArg(args)
	if err != nil {
		return err
	}
	ms, err := n.rooms.Who(name)
	if err != nil {
		return err
	}
	rows := make([]MemberRow, len(ms))
	var b strings.Builder
	fmt.Fprintf(&b, "members of %s:", name)
	for i, m := range ms {
		rows[i] = MemberRow{
			PeerID: m.PeerID.String(), Nick: m.Nick, Fingerprint: m.Fingerprint,
			Online: m.Online, Self: m.Self, LastSeen: m.LastSeen.UTC().Format(time.RFC3339),
		}
		state := "online"
		switch {
		case m.Self:
			state = "you"
		case !m.Online:
			state = "gone, last seen " + m.LastSeen.Local().Format("Jan 2 15:04")
		}
		fmt.Fprintf(&b, "\n  %s (%s) %s", safetext.Line(m.Nick), m.Fingerprint, state)
	}
	n.emit.Emit(events.Info{Text: b.String(), Data: rows})
	return nil
}

func (n *Node) cmdHistory(_ context.Context, args string) error {
	fields := strings.Fields(args)
	if len(fields) > 2 {
		return errors.New("usage: /history [ROOM] [N]")
	}
	count := 0
	if len(fields) > 0 {
		if v, err := strconv.Atoi(fields[len(fields)-1]); err == nil {
			if v < 1 {
				return fmt.Errorf("bad count %d: use a number of messages above 0", v)
			}
			count = v
			fields = fields[:len(fields)-1]
		} else if len(fields) == 2 {
			return fmt.Errorf("bad count %q: use a number of messages", safetext.Line(fields[1]))
		}
	}
	name, err := n.roomArg(strings.Join(fields, ""))
	if err != nil {
		return err
	}
	msgs, err := n.rooms.History(name, count)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "last %d message(s) in %s:", len(msgs), name)
	for _, m := range msgs {
		b.WriteString("\n")
		b.WriteString(FormatMessage(m))
	}
	if msgs == nil {
		msgs = []events.Message{}
	}
	n.emit.Emit(events.Info{Text: b.String(), Data: msgs})
	return nil
}

// say sends text to the current room.
func (n *Node) say(ctx context.Context, text string) error {
	cur := n.Current()
	if cur == "" {
		return errors.New("no current room; /join one first")
	}
	_, err := n.rooms.Send(ctx, cur, text)
	return err
}

// FormatMessage renders a room message for people: local time, room, nick
// (with its fingerprint when another member shares it) and the text, with
// every control character neutralised. A multi-line text keeps its line
// breaks, but every continuation line is indented, so that no line of a
// message can pass for a message of its own.
func FormatMessage(m events.Message) string {
	at := m.SentAt
	if t, err := time.Parse(time.RFC3339, m.SentAt); err == nil {
		at = t.Local().Format("15:04")
	}
	nick := safetext.Line(m.Nick)
	if m.NickShared {
		nick += " (" + safetext.Line(m.Fingerprint) + ")"
	}
	text := strings.ReplaceAll(safetext.Block(m.Text), "\n", "\n    ")
	return fmt.Sprintf("[%s] #%s <%s> %s", safetext.Line(at), safetext.Line(m.Room), nick, text)
}
