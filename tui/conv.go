package tui

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits on what the UI keeps in memory, whatever peers send.
const (
	// maxEntries is the scrollback of one conversation; older entries
	// are dropped (rooms keep their history in the store: /history).
	maxEntries = 1000
	// maxDMConvs bounds the private conversations in the sidebar; the
	// one idle longest goes first.
	maxDMConvs = 200
	// maxRestoredDMs bounds the private conversations listed again at
	// start (restoreDMs), each with its last historyOnOpen messages.
	maxRestoredDMs = 20
	// historyOnOpen is how many stored messages a conversation shows
	// when it opens.
	historyOnOpen = 50
)

type convKind int

const (
	convStatus convKind = iota // node events, logs, answers typed there
	convRoom                   // a joined room
	convDM                     // private messages with one peer
)

// statusKey is the key of the status conversation.
const statusKey = "status"

// conv is one conversation in the sidebar: the status window, a room or a
// private conversation.
type conv struct {
	key  string // statusKey, "#"+room or "@"+peer ID
	kind convKind
	// name is the room name or the peer ID, as the node knows it; peer
	// is the peer of a private conversation.
	name string
	peer peer.ID

	entries []*entry
	ids     map[string]*entry // message id -> entry, for dedup and delivery marks
	unread  int
	// scroll is how many wrapped lines the view is above the bottom;
	// below counts entries that arrived while scrolled up.
	scroll int
	below  int
	// seq orders private conversations in the sidebar (opening order);
	// lastActive picks the one to evict.
	seq        int
	lastActive time.Time
	// waiting says why own messages of a private conversation wait (the
	// detail of the latest dm_status with a reason), cleaned; empty once
	// one is delivered.
	waiting string
}

func roomKey(room string) string { return "#" + room }
func dmKey(p peer.ID) string     { return "@" + p.String() }

func newConv(key string, kind convKind, name string) *conv {
	return &conv{key: key, kind: kind, name: name, ids: make(map[string]*entry)}
}

type entryKind int

const (
	entryMessage entryKind = iota // a room message or a private message
	entrySystem                   // joined, presence, info answers
	entryError                    // a failed command
	entryWarning                  // a trust warning
	entryLog                      // a log record
)

// entry is one line (or block) of a conversation. Text fields hold
// cleaned text only.
type entry struct {
	kind entryKind
	at   time.Time
	id   string // message id, "" for system lines
	// from is the author's peer ID (for its colour); nick the cleaned
	// display nick, with the fingerprint when shared.
	from peer.ID
	nick string
	self bool
	text string
	// state and errText are the delivery state of an own private
	// message: queued, sent, delivered or failed (with its reason).
	state   string
	errText string

	// rendered caches the wrapped lines for width w.
	w        int
	rendered []string
}

// add appends e, dropping the oldest entry past maxEntries. It reports
// false (and adds nothing) when e's id is already there.
func (c *conv) add(e *entry) bool {
	if e.id != "" {
		if _, dup := c.ids[e.id]; dup {
			return false
		}
		c.ids[e.id] = e
	}
	if len(c.entries) >= maxEntries {
		old := c.entries[0]
		c.entries[0] = nil
		c.entries = c.entries[1:]
		if old.id != "" {
			delete(c.ids, old.id)
		}
	}
	c.entries = append(c.entries, e)
	return true
}
