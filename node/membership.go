package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
)

// RoleRow is one peer of a private room's membership log (/members).
type RoleRow struct {
	PeerID peer.ID `json:"peer_id"`
	// Nick is the nick this node last saw the peer use ("" if none).
	Nick string `json:"nick"`
	// Role is "admin", "member" or "removed".
	Role string `json:"role"`
	// Since is the epoch the peer was added in; Until, for a removed
	// member, the first epoch it is not in.
	Since uint64 `json:"since"`
	Until uint64 `json:"until,omitempty"`
	Self  bool   `json:"self"`
}

// RolesInfo is the membership of a private room: its epoch and roles.
type RolesInfo struct {
	Room  string    `json:"room"`
	Epoch uint64    `json:"epoch"`
	Roles []RoleRow `json:"roles"`
}

// Kick removes the member named who (peer ID, fingerprint, nick#FP or
// unambiguous nick) from a private room and starts a new epoch whose key
// only the remaining members get. This node must be an admin.
func (n *Node) Kick(ctx context.Context, room, who string) (peer.ID, error) {
	name, err := n.Room(room)
	if err != nil {
		return "", err
	}
	p, err := n.ResolvePeer(who)
	if err != nil {
		return "", err
	}
	return p, n.rooms.Kick(ctx, name, p)
}

// Rotate starts a new epoch of a private room with a fresh key for the
// current members. This node must be an admin.
func (n *Node) Rotate(ctx context.Context, room string) error {
	name, err := n.Room(room)
	if err != nil {
		return err
	}
	return n.rooms.Rotate(ctx, name)
}

// AddMember adds the peer named who to a private room, as an admin when
// admin is set. This node must be an admin.
func (n *Node) AddMember(ctx context.Context, room, who string, admin bool) (peer.ID, error) {
	name, err := n.Room(room)
	if err != nil {
		return "", err
	}
	p, err := n.ResolvePeer(who)
	if err != nil {
		return "", err
	}
	return p, n.rooms.AddMember(ctx, name, p, admin)
}

// Roles returns the membership log of a private room as roles.
func (n *Node) Roles(room string) (RolesInfo, error) {
	name, err := n.Room(room)
	if err != nil {
		return RolesInfo{}, err
	}
	rs, epoch, err := n.rooms.Roles(name)
	if err != nil {
		return RolesInfo{}, err
	}
	info := RolesInfo{Room: name, Epoch: epoch, Roles: make([]RoleRow, 0, len(rs))}
	for _, r := range rs {
		info.Roles = append(info.Roles, RoleRow{
			PeerID: r.PeerID, Nick: n.PeerName(r.PeerID), Role: r.Role.String(),
			Since: r.Since, Until: r.Until, Self: r.PeerID == n.host.ID(),
		})
	}
	return info, nil
}
