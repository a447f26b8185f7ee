package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/rooms"
)

// InviteLimits are the limits of a limited invite (docs/PROTOCOL.md §14).
type InviteLimits = rooms.InviteLimits

// InviteRow is one limited invite of a private room (/invite, /invites).
type InviteRow struct {
	Room string `json:"room"`
	// Private is always true (the /invite answer's shape).
	Private bool `json:"private"`
	// Invite is the code; only in the answer that issued it.
	Invite string `json:"invite,omitempty"`
	// InviteID is the invite's ID (16 hex digits), for /invite --revoke.
	InviteID string    `json:"invite_id"`
	By       peer.ID   `json:"by"`
	IssuedAt time.Time `json:"issued_at"`
	// ExpiresAt is absent for an invite that does not expire.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Uses is how many peers it admits (absent: unlimited); Used how many
	// it admitted.
	Uses    uint32 `json:"uses,omitempty"`
	Used    uint32 `json:"used"`
	Revoked bool   `json:"revoked,omitempty"`
}

func inviteRow(room string, i rooms.InviteInfo) InviteRow {
	row := InviteRow{
		Room: room, Private: true, Invite: i.Code, InviteID: i.ID, By: i.By, IssuedAt: i.IssuedAt.UTC(),
		Uses: i.Uses, Used: i.Used, Revoked: i.Revoked,
	}
	if !i.Expires.IsZero() {
		t := i.Expires.UTC()
		row.ExpiresAt = &t
	}
	return row
}

// CreateInvite issues a limited invite to a private room: single use
// (Uses 1) and/or expiring. This node must be an admin; a room still open
// (epoch 0) gets a new key first.
func (n *Node) CreateInvite(ctx context.Context, room string, lim InviteLimits) (InviteRow, error) {
	name, err := n.Room(room)
	if err != nil {
		return InviteRow{}, err
	}
	i, err := n.rooms.CreateInvite(ctx, name, lim)
	if err != nil {
		return InviteRow{}, err
	}
	return inviteRow(name, i), nil
}

// RevokeInvite revokes a limited invite of a private room by its ID (or
// an unambiguous prefix of at least 8 hex digits). This node must be an
// admin.
func (n *Node) RevokeInvite(ctx context.Context, room, id string) error {
	name, err := n.Room(room)
	if err != nil {
		return err
	}
	return n.rooms.RevokeInvite(ctx, name, id)
}

// Invites lists the limited invites of a private room, in log order.
func (n *Node) Invites(room string) ([]InviteRow, error) {
	name, err := n.Room(room)
	if err != nil {
		return nil, err
	}
	is, err := n.rooms.Invites(name)
	if err != nil {
		return nil, err
	}
	out := make([]InviteRow, 0, len(is))
	for _, i := range is {
		out = append(out, inviteRow(name, i))
	}
	return out, nil
}
