package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
// earlier runs), joins the configured rooms and picks the start room.
func (n *Node) startRooms(ctx context.Context) error {
	cfg := n.cfg.RoomsConfig
	cfg.Host = n.host
	cfg.DB = n.store.DB()
	cfg.Emitter = n.internal
	cfg.Logger = n.log.With("component", "rooms")
	cfg.Nick = n.Nick
	if cfg.Known == nil {
		cfg.Known = n.own.known
	}
	if cfg.Newcomer == nil {
		cfg.Newcomer = n.newcomer
	}
	if cfg.NickPinned == nil {
		cfg.NickPinned = n.trust.PinnedToOther
	}
	svc, err := rooms.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start rooms: %w", err)
	}
	n.rooms = svc
	n.own.rooms.Store(svc)
	for _, r := range svc.Rooms() {
		n.reshow(r.Name)
	}
	start := n.cfg.Rooms
	if len(start) == 0 && len(svc.Rooms()) == 0 && !n.cfg.NoDefaultRoom {
		start = []string{DefaultRoom}
	}
	for _, name := range start {
		if err := svc.Join(ctx, name); err != nil {
			return fmt.Errorf("join room %q: %w", name, err)
		}
		if canon, err := rooms.NormalizeName(name); err == nil {
			n.reshow(canon)
		}
	}
	for _, r := range svc.Rooms() {
		n.meet(r)
	}
	// The start room: the first one asked for, else the lobby, else the
	// first one rejoined.
	switch {
	case len(start) > 0:
		n.start, _ = rooms.NormalizeName(start[0])
	case n.isJoined(DefaultRoom):
		n.start = DefaultRoom
	default:
		if rs := svc.Rooms(); len(rs) > 0 {
			n.start = rs[0].Name
		}
	}
	return nil
}

// StartRoom is the room a user interface shows first: the first room
// configured, else the lobby, else the first room rejoined; "" when the
// node is in no room.
func (n *Node) StartRoom() string { return n.start }

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

func (n *Node) isJoined(name string) bool {
	_, ok := n.roomInfo(name)
	return ok
}

// Room returns the canonical name of a joined room, or an error wrapping
// ErrNotJoined (or the name's validation error).
func (n *Node) Room(name string) (string, error) {
	canon, err := rooms.NormalizeName(name)
	if err != nil {
		return "", err
	}
	if !n.isJoined(canon) {
		return "", fmt.Errorf("%w %q; /join it first", ErrNotJoined, safetext.Line(canon))
	}
	return canon, nil
}

// RoomRef names a room joined, created or invited to.
type RoomRef struct {
	Room    string `json:"room"`
	Private bool   `json:"private"`
	Invite  string `json:"invite,omitempty"`
}

// reshow starts tracking which messages of a joined room the user is
// shown (shown_rooms.go), and emits again, once per run, the messages
// of its history an earlier run stored but did not show; the event loop
// drops those that also came live (shown_once.go).
func (n *Node) reshow(room string) {
	svc := n.own.rooms.Load()
	if svc == nil {
		return // startRooms calls it again once the service is set
	}
	if n.cfg.beforeScan != nil {
		n.cfg.beforeScan(n, room)
	}
	missed, first, err := n.roomMarks.open(svc, room)
	if err != nil {
		n.log.Warn("cannot tell which room messages were shown; some may not be shown again after a crash", "room", room, "err", err)
		return
	}
	if !first {
		return
	}
	if len(missed) > 0 {
		n.log.Info("rooms: showing messages an earlier run did not show", "room", room, "messages", len(missed))
	}
	for _, e := range missed {
		n.internal.Emit(reshown{msg: e})
	}
	n.internal.Emit(scanned{room: room})
}

func (n *Node) joined(name string) RoomRef {
	n.reshow(name)
	r, ok := n.roomInfo(name)
	if ok {
		n.meet(r)
	}
	return RoomRef{Room: name, Private: r.Private}
}

// Join joins a public room by name, or a private room from its invite
// code.
func (n *Node) Join(ctx context.Context, nameOrInvite string) (RoomRef, error) {
	if rooms.LooksLikeInvite(nameOrInvite) {
		name, err := n.rooms.JoinInvite(ctx, nameOrInvite)
		if err != nil {
			return RoomRef{}, err
		}
		return n.joined(name), nil
	}
	name, err := rooms.NormalizeName(nameOrInvite)
	if err != nil {
		return RoomRef{}, err
	}
	if err := n.rooms.Join(ctx, name); err != nil {
		return RoomRef{}, err
	}
	return n.joined(name), nil
}

// JoinPassphrase joins the private room whose key is derived from its
// name and a passphrase.
func (n *Node) JoinPassphrase(ctx context.Context, room, passphrase string) (RoomRef, error) {
	name, err := rooms.NormalizeName(room)
	if err != nil {
		return RoomRef{}, err
	}
	if err := n.rooms.JoinPassphrase(ctx, name, passphrase); err != nil {
		return RoomRef{}, err
	}
	return n.joined(name), nil
}

// CreateRoom creates a private room with a fresh key; the result holds
// its invite code.
func (n *Node) CreateRoom(ctx context.Context, room string) (RoomRef, error) {
	name, err := rooms.NormalizeName(room)
	if err != nil {
		return RoomRef{}, err
	}
	invite, err := n.rooms.Create(ctx, name)
	if err != nil {
		return RoomRef{}, err
	}
	ref := n.joined(name)
	ref.Invite = invite
	return ref, nil
}

// Invite returns the invite code of a joined private room.
func (n *Node) Invite(room string) (RoomRef, error) {
	name, err := n.Room(room)
	if err != nil {
		return RoomRef{}, err
	}
	invite, err := n.rooms.Invite(name)
	if err != nil {
		return RoomRef{}, err
	}
	return RoomRef{Room: name, Private: true, Invite: invite}, nil
}

// Leave leaves a joined room.
func (n *Node) Leave(room string) error {
	name, err := n.Room(room)
	if err != nil {
		return err
	}
	r, _ := n.roomInfo(name)
	if err := n.rooms.Leave(name); err != nil {
		return err
	}
	n.host.Leave(r.Rendezvous)
	return nil
}

// Say sends text to a joined room and returns the message as sent. Lines
// faster than the room's rate limit wait their turn, up to 30 s worth
// of them (pace.go).
func (n *Node) Say(ctx context.Context, room, text string) (events.Message, error) {
	return n.sayPaced(ctx, room, text)
}

// RoomRow is one joined room (/rooms). Current is set by the user
// interface that has a current room.
type RoomRow struct {
	Room    string `json:"room"`
	Private bool   `json:"private"`
	Members int    `json:"members"`
	Current bool   `json:"current"`
	// Sync is the state of the room's history sync (events.RoomSync's
	// State: waiting, syncing, complete, gaps); empty before the first.
	Sync string `json:"sync,omitempty"`
}

// RoomList lists the joined rooms, sorted by name.
func (n *Node) RoomList() []RoomRow {
	rs := n.rooms.Rooms()
	rows := make([]RoomRow, len(rs))
	for i, r := range rs {
		rows[i] = RoomRow{Room: r.Name, Private: r.Private, Members: r.Members}
		if st, err := n.rooms.SyncState(r.Name); err == nil {
			rows[i].Sync = st.State
		}
	}
	return rows
}

// MemberRow is one member of a room (/who).
type MemberRow struct {
	PeerID      peer.ID   `json:"peer_id"`
	Nick        string    `json:"nick"`
	Fingerprint string    `json:"fingerprint"`
	Online      bool      `json:"online"`
	Self        bool      `json:"self"`
	LastSeen    time.Time `json:"last_seen"`
}

// MarshalJSON writes the contract form: last_seen in RFC 3339, UTC, whole
// seconds.
func (r MemberRow) MarshalJSON() ([]byte, error) {
	type plain MemberRow
	return json.Marshal(struct {
		plain
		LastSeen string `json:"last_seen"`
	}{plain(r), r.LastSeen.UTC().Format(time.RFC3339)})
}

// Members lists the members of a joined room.
func (n *Node) Members(room string) ([]MemberRow, error) {
	ms, err := n.rooms.Who(room)
	if err != nil {
		return nil, err
	}
	rows := make([]MemberRow, len(ms))
	for i, m := range ms {
		rows[i] = MemberRow{
			PeerID: m.PeerID, Nick: m.Nick, Fingerprint: m.Fingerprint,
			Online: m.Online, Self: m.Self, LastSeen: m.LastSeen,
		}
	}
	return rows, nil
}

// RoomHistory returns up to count stored messages of a joined room
// (count <= 0: the default), oldest first.
func (n *Node) RoomHistory(room string, count int) ([]events.Message, error) {
	return n.rooms.History(room, count)
}
