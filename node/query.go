package node

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/transfer"
)

// Read-only accessors for user interfaces that show state continuously
// (the terminal UI). They change nothing; everything that changes state
// goes through Exec, like in line mode. Text in the results is as peers
// sent it: displays make it inert (internal/safetext).

// maxPeerList bounds PeerList.
const maxPeerList = 256

// recentPeer is how recently an unconnected known peer must have been
// seen to appear in PeerList.
const recentPeer = 24 * time.Hour

// Status is the node's own state for a status bar.
type Status struct {
	PeerID      string
	Nick        string
	Fingerprint string
	// Reachability is AutoNAT's verdict: "unknown", "public" or
	// "private"; Relays is the number of relays holding a reservation.
	Reachability string
	Relays       int
	// Peers is the number of connected peers.
	Peers int
	// Current is the current room, "" when none.
	Current string
}

// Status returns the node's own state.
func (n *Node) Status() Status {
	r := n.host.Reachability()
	return Status{
		PeerID:       n.host.ID().String(),
		Nick:         n.Nick(),
		Fingerprint:  n.cfg.Identity.Fingerprint(),
		Reachability: r.Reachability,
		Relays:       len(r.Relays),
		Peers:        len(n.host.Peers()),
		Current:      n.Current(),
	}
}

// RoomList lists the joined rooms, sorted by name, as /rooms does.
func (n *Node) RoomList() []RoomRow {
	cur := n.Current()
	rs := n.rooms.Rooms()
	rows := make([]RoomRow, len(rs))
	for i, r := range rs {
		rows[i] = RoomRow{Room: r.Name, Private: r.Private, Members: r.Members, Current: r.Name == cur}
	}
	return rows
}

// Members lists the members of a joined room, as /who does.
func (n *Node) Members(room string) ([]MemberRow, error) {
	ms, err := n.rooms.Who(room)
	if err != nil {
		return nil, err
	}
	rows := make([]MemberRow, len(ms))
	for i, m := range ms {
		rows[i] = MemberRow{
			PeerID: m.PeerID.String(), Nick: m.Nick, Fingerprint: m.Fingerprint,
			Online: m.Online, Self: m.Self, LastSeen: m.LastSeen.UTC().Format(time.RFC3339),
		}
	}
	return rows, nil
}

// RoomHistory returns up to count stored messages of a joined room,
// oldest first, as /history does.
func (n *Node) RoomHistory(room string, count int) ([]events.Message, error) {
	return n.rooms.History(room, count)
}

// PeerView describes a peer for a peers list.
type PeerView struct {
	PeerID string
	// Nick is the last nick the peer claimed, "" when none.
	Nick string
	// Fingerprint is the short fingerprint (identity.ShortFingerprint).
	Fingerprint string
	// Online: connected now. Path is "lan", "direct" or "relayed" while
	// online, "" otherwise.
	Online bool
	Path   string
	// Trusted: the user compared safety numbers (/trust).
	Trusted bool
	// Conflict: the peer claims a nick that is pinned to another key.
	Conflict bool
	// NickShared: another listed peer claims the same nick; show the
	// fingerprint next to it.
	NickShared bool
}

// PeerList lists the connected peers and the known peers seen in the
// last day, online first, then by nick and peer ID; at most 256.
func (n *Node) PeerList() []PeerView {
	byID := make(map[peer.ID]*PeerView)
	var out []*PeerView
	add := func(p peer.ID) *PeerView {
		if v, ok := byID[p]; ok {
			return v
		}
		info, _ := n.trust.Get(p)
		v := &PeerView{
			PeerID: p.String(), Nick: info.Nick, Fingerprint: identity.ShortFingerprint(p),
			Trusted: info.Trusted, Conflict: info.Nick != "" && !info.Pinned,
		}
		byID[p] = v
		out = append(out, v)
		return v
	}
	for _, pi := range n.host.Peers() {
		v := add(pi.ID)
		v.Online = true
		path, _ := n.host.Path(pi.ID)
		if path == overlay.PathNone {
			path = overlay.PathDirect
			if pi.Relayed {
				path = overlay.PathRelayed
			}
		}
		v.Path = string(path)
	}
	since := time.Now().Add(-recentPeer)
	for _, info := range n.trust.Known() {
		if info.ID != n.host.ID() && info.LastSeen.After(since) {
			add(info.ID)
		}
	}
	nicks := make(map[string]int)
	for _, v := range out {
		if v.Nick != "" {
			nicks[identity.NickKey(v.Nick)]++
		}
	}
	views := make([]PeerView, len(out))
	for i, v := range out {
		v.NickShared = v.Nick != "" && nicks[identity.NickKey(v.Nick)] > 1
		views[i] = *v
	}
	sort.SliceStable(views, func(i, j int) bool {
		a, b := views[i], views[j]
		if a.Online != b.Online {
			return a.Online
		}
		if (a.Nick == "") != (b.Nick == "") {
			return a.Nick != ""
		}
		if a.Nick != b.Nick {
			return a.Nick < b.Nick
		}
		return a.PeerID < b.PeerID
	})
	if len(views) > maxPeerList {
		views = views[:maxPeerList]
	}
	return views
}

// Peer describes one peer, connected or not.
func (n *Node) Peer(id string) (PeerView, error) {
	p, err := peer.Decode(id)
	if err != nil {
		return PeerView{}, fmt.Errorf("bad peer ID %q: %w", safetext.Line(id), err)
	}
	info, _ := n.trust.Get(p)
	v := PeerView{
		PeerID: id, Nick: info.Nick, Fingerprint: identity.ShortFingerprint(p),
		Trusted: info.Trusted, Conflict: info.Nick != "" && !info.Pinned,
	}
	if path, _ := n.host.Path(p); path != overlay.PathNone {
		v.Online, v.Path = true, string(path)
	}
	return v, nil
}

// DMHistory returns the last count direct messages exchanged with a peer
// (both directions, with the delivery state of outgoing ones), oldest
// first.
func (n *Node) DMHistory(id string, count int) ([]dm.Entry, error) {
	p, err := peer.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("bad peer ID %q: %w", safetext.Line(id), err)
	}
	if n.dm == nil {
		return nil, errors.New("direct messages are not running")
	}
	return n.dm.History(p, count)
}

// CommandInfo describes one slash command.
type CommandInfo struct {
	Name  string // without the slash
	Usage string // arguments, e.g. "PEER TEXT"
	Help  string
	// Secret commands carry a secret in their arguments: keep them out
	// of input history.
	Secret bool
}

// Commands lists the slash commands, sorted by name.
func (n *Node) Commands() []CommandInfo {
	out := make([]CommandInfo, len(n.order))
	for i, c := range n.order {
		out[i] = CommandInfo{Name: c.name, Usage: c.usage, Help: c.help, Secret: c.secret}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Transfers lists the file transfers the node knows, as /transfers does.
func (n *Node) Transfers() []transfer.Info {
	if n.transfer == nil {
		return nil
	}
	return n.transfer.List()
}
