package events

import (
	"encoding/json"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Message is a chat line delivered in a room, including the node's own
// lines (they come back through its own room subscription).
type Message struct {
	Room string `json:"room"`
	// ID is the message ID chosen by the author: 32 lowercase hex digits.
	ID string `json:"id"`
	// From is the author's peer ID, taken from the signed GossipSub
	// message, never from a field the author fills in.
	From peer.ID `json:"from"`
	// Nick is the author's display name; it identifies nothing.
	Nick string `json:"nick"`
	Text string `json:"text"`
	// SentAt is the author's clock at sending; its JSON form is
	// SentAtLayout (RFC 3339 in UTC, milliseconds).
	SentAt  time.Time `json:"sent_at"`
	Private bool      `json:"private"`
	// Fingerprint is the short fingerprint of From
	// (identity.ShortFingerprint), to show next to a shared nick.
	Fingerprint string `json:"fingerprint"`
	// NickShared is true when another current member of the room used the
	// same nick (identity.SameNick) when the message arrived.
	NickShared bool `json:"nick_shared"`
	// CaughtUp is true when the message arrived by the room sync, after
	// it was sent while this node was away, rather than live.
	CaughtUp bool `json:"caught_up,omitempty"`
}

// Joined is reported when the node joins (or, at start, rejoins) a room.
type Joined struct {
	Room string `json:"room"`
}

// Left is reported when the node leaves a room.
type Left struct {
	Room string `json:"room"`
}

// Presence is reported when another member of a room comes online, changes
// nick, leaves or stops announcing itself (Online false).
type Presence struct {
	Room   string  `json:"room"`
	PeerID peer.ID `json:"peer_id"`
	Nick   string  `json:"nick"`
	Online bool    `json:"online"`
}

func (Message) Type() string { return "message" }

// SentAtLayout is the RFC 3339 layout of a message's sent_at in JSON: UTC
// with exactly three fractional digits.
const SentAtLayout = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes the contract form of a message (sent_at in
// SentAtLayout); this is the one place the typed message becomes text.
func (m Message) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Room        string  `json:"room"`
		ID          string  `json:"id"`
		From        peer.ID `json:"from"`
		Nick        string  `json:"nick"`
		Text        string  `json:"text"`
		SentAt      string  `json:"sent_at"`
		Private     bool    `json:"private"`
		Fingerprint string  `json:"fingerprint"`
		NickShared  bool    `json:"nick_shared"`
	}{m.Room, m.ID, m.From, m.Nick, m.Text, m.SentAt.UTC().Format(SentAtLayout), m.Private, m.Fingerprint, m.NickShared})
}

func (Joined) Type() string   { return "joined" }
func (Left) Type() string     { return "left" }
func (Presence) Type() string { return "presence" }

// Membership is reported for each change of a private room's membership
// log that this node accepts (its own included): who (By, an admin)
// created the log, added a member or an admin, removed a member, or
// rotated the room's key. Remove and rotate start a new epoch.
type Membership struct {
	Room string `json:"room"`
	// Op is "create", "add", "add_admin", "remove" or "rotate".
	Op string `json:"op"`
	// By is the admin who signed the change.
	By peer.ID `json:"by"`
	// Subject is the peer added or removed (the creator for "create");
	// empty for "rotate".
	Subject peer.ID `json:"subject,omitempty"`
	// Epoch is the room's epoch after the change; Seq its place in the log.
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// Self is true when the subject is this node.
	Self bool `json:"self,omitempty"`
}

func (Membership) Type() string { return "membership" }
