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
	// same nick (identity.SameNick) when the message arrived, or the nick
	// is pinned (trust) to another key.
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
		CaughtUp    bool    `json:"caught_up,omitempty"`
	}{m.Room, m.ID, m.From, m.Nick, m.Text, m.SentAt.UTC().Format(SentAtLayout), m.Private, m.Fingerprint, m.NickShared, m.CaughtUp})
}

func (Joined) Type() string   { return "joined" }
func (Left) Type() string     { return "left" }
func (Presence) Type() string { return "presence" }

// Membership is reported for each change of a private room's membership
// log that this node accepts (its own included): who (By, an admin)
// created the log, added a member or an admin, removed a member, or
// rotated the room's key, issued or revoked a limited invite. Remove and
// rotate start a new epoch.
type Membership struct {
	Room string `json:"room"`
	// Op is "create", "add", "add_admin", "remove", "rotate", "invite" or
	// "revoke_invite".
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
	// Invite is the ID (16 hex digits) of the limited invite issued or
	// revoked ("invite", "revoke_invite"), or through which the subject
	// was added ("add"); empty otherwise.
	Invite string `json:"invite,omitempty"`
}

func (Membership) Type() string { return "membership" }

// Room sync states (RoomSync.State).
const (
	// SyncWaiting: no member of the room is connected to sync with (the
	// node just joined, or was cut off from every member).
	SyncWaiting = "waiting"
	// SyncSyncing: a history session runs.
	SyncSyncing = "syncing"
	// SyncComplete: the history was reconciled with a member; every
	// message sent since Since that it holds is here.
	SyncComplete = "complete"
	// SyncGaps: some messages could not be fetched (Gaps says where).
	SyncGaps = "gaps"
)

// RoomSync is reported when the state of a room's history sync changes
// (docs/PROTOCOL.md §13), so a user knows whether the view is whole.
type RoomSync struct {
	Room  string
	State string // SyncWaiting, SyncSyncing, SyncComplete or SyncGaps
	// Since is the start of the window reconciled (complete and gaps);
	// zero otherwise.
	Since time.Time
	// Peers counts the members whose history was reconciled, and CaughtUp
	// the messages the sync brought, since the room last had no member
	// connected.
	Peers    int
	CaughtUp int
	// Gaps are the spans of sent time where messages are missing
	// (SyncGaps only).
	Gaps []SyncGap
}

// SyncGap is a span of sent time in which the sync could not fetch some
// messages. Missing is how many a member listed but did not hand over;
// 0 when no member could be reconciled with at all (the whole span may
// lack messages).
type SyncGap struct {
	From, To time.Time
	Missing  int
}

func (RoomSync) Type() string { return "room_sync" }

// MarshalJSON writes the contract form of a room_sync event (times in
// SentAtLayout; since and gaps only when set).
func (e RoomSync) MarshalJSON() ([]byte, error) {
	type gap struct {
		From    string `json:"from"`
		To      string `json:"to"`
		Missing int    `json:"missing"`
	}
	var gaps []gap
	for _, g := range e.Gaps {
		gaps = append(gaps, gap{g.From.UTC().Format(SentAtLayout), g.To.UTC().Format(SentAtLayout), g.Missing})
	}
	since := ""
	if !e.Since.IsZero() {
		since = e.Since.UTC().Format(SentAtLayout)
	}
	return json.Marshal(struct {
		Room     string `json:"room"`
		State    string `json:"state"`
		Since    string `json:"since,omitempty"`
		Peers    int    `json:"peers"`
		CaughtUp int    `json:"caught_up"`
		Gaps     []gap  `json:"gaps,omitempty"`
	}{e.Room, e.State, since, e.Peers, e.CaughtUp, gaps})
}
