package rooms

import (
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/rooms/pb"
)

// Messages this node cannot judge yet.
//
// An admin's ROTATE or REMOVE reaches the members by the members exchange
// (members.go), while the lines sealed in the new epoch go out on the
// topic at once: a member often gets the first of them before the key of
// their epoch, or a newcomer's first line before the ADD that lets it
// write. The validator ignores such a message (its verdict depends on
// this node's log), GossipSub does not hand it again, and the history
// sync that follows the new key can run before the message's author
// stored it, so the line would be lost. A private room therefore keeps
// these messages a while, bounded, and validates them again when an
// exchange brings new keys or log changes; what passes then is delivered
// as if it had just arrived.
const (
	// holdMax bounds the messages a room keeps.
	holdMax = 128
	// holdMaxBytes bounds their data.
	holdMaxBytes = 1 << 20
	// holdPerAuthor bounds one author's share of them, so that a member
	// spraying messages of epochs to come cannot push out the others'.
	holdPerAuthor = 16
	// holdAhead bounds how far past the newest epoch in this node's log
	// (or the newest key held) a kept message may name: further ones
	// cannot be a rotation this node is about to learn of.
	holdAhead = 4
	// holdTTL is how long a message is kept.
	holdTTL = 2 * time.Minute
)

// heldMsg is a message kept for a later verdict.
type heldMsg struct {
	msg    *pubsub.Message
	author peer.ID
	at     time.Time
}

// epochHold is a private room's kept messages, in the order they came.
type epochHold struct {
	mu    sync.Mutex
	msgs  []heldMsg
	bytes int // the data of msgs
}

// keep records msg, which the validator ignored for reason, when it may
// pass later: sealed in an epoch after the newest key this node holds (and
// at most holdAhead past what it knows), or from an author this node's
// log does not let write yet.
func (s *Service) keep(r *room, msg *pubsub.Message, reason string, now time.Time) {
	m := r.membership
	if m == nil || (reason != reasonEpochKey && reason != reasonNotMember) {
		return
	}
	if reason == reasonEpochKey {
		var w pb.Sealed
		if proto.Unmarshal(msg.Data, &w) != nil {
			return
		}
		m.mu.Lock()
		var top uint64 // the newest key held
		for e := range m.keys {
			top = max(top, e)
		}
		known := max(top, m.log.epoch)
		m.mu.Unlock()
		if w.Epoch <= top || w.Epoch > known+holdAhead {
			return // an old epoch's key past its grace, or no rotation to come
		}
	}
	h := &m.hold
	size := len(msg.Data)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(now)
	from := msg.GetFrom()
	mine := 0
	for _, x := range h.msgs {
		if x.author == from {
			mine++
		}
	}
	if mine >= holdPerAuthor {
		h.drop(from)
	}
	for len(h.msgs) > 0 && (len(h.msgs) >= holdMax || h.bytes+size > holdMaxBytes) {
		h.drop(h.biggest())
	}
	h.msgs = append(h.msgs, heldMsg{msg: msg, author: from, at: now})
	h.bytes += size
}

// biggest returns the author with the most kept messages; h.mu is held.
func (h *epochHold) biggest() peer.ID {
	counts := make(map[peer.ID]int, len(h.msgs))
	var top peer.ID
	for _, x := range h.msgs {
		counts[x.author]++
		if counts[x.author] > counts[top] {
			top = x.author
		}
	}
	return top
}

// drop removes the oldest kept message of author; h.mu is held.
func (h *epochHold) drop(author peer.ID) {
	for i, x := range h.msgs {
		if x.author == author {
			h.bytes -= len(x.msg.Data)
			h.msgs = slices.Delete(h.msgs, i, i+1)
			return
		}
	}
}

// expire drops the messages kept longer than holdTTL; h.mu is held.
func (h *epochHold) expire(now time.Time) {
	h.msgs = slices.DeleteFunc(h.msgs, func(x heldMsg) bool {
		if now.Sub(x.at) > holdTTL {
			h.bytes -= len(x.msg.Data)
			return true
		}
		return false
	})
}

// take removes and returns the kept messages.
func (h *epochHold) take(now time.Time) []heldMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(now)
	out := h.msgs
	h.msgs, h.bytes = nil, 0
	return out
}

// release validates r's kept messages again, after an exchange brought
// keys or log changes, and delivers those that pass. Those still
// undecided are kept again (until holdTTL from their arrival).
func (s *Service) release(r *room) {
	m := r.membership
	if m == nil {
		return
	}
	now := time.Now()
	for _, x := range m.hold.take(now) {
		// A copy: the validator sets ValidatorData, and GossipSub's own
		// message must not change under it.
		msg := &pubsub.Message{Message: x.msg.Message, ID: x.msg.ID, ReceivedFrom: x.msg.ReceivedFrom}
		v := s.validate(r, msg, nil)
		if v.result != pubsub.ValidationAccept {
			if v.reason == reasonEpochKey || v.reason == reasonNotMember {
				m.hold.put(x)
			}
			continue
		}
		if !s.toInbox(r, msg) {
			return
		}
	}
}

// put keeps x again, within the bounds.
func (h *epochHold) put(x heldMsg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if size := len(x.msg.Data); len(h.msgs) < holdMax && h.bytes+size <= holdMaxBytes {
		h.msgs = append(h.msgs, x)
		h.bytes += size
	}
}
