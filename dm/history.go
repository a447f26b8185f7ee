package dm

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
)

// Entry is one message of a conversation, as kept in the store.
type Entry struct {
	ID string `json:"id"`
	// Peer is the other side of the conversation.
	Peer     peer.ID `json:"peer"`
	Outgoing bool    `json:"outgoing"`
	// Nick is the nick the sender claimed (incoming messages only).
	Nick   string    `json:"nick,omitempty"`
	Text   string    `json:"text"`
	SentAt time.Time `json:"sent_at"`
	// State and Error describe outgoing messages: queued, sent,
	// delivered or failed.
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
}

var stateNames = map[pb.State]string{
	pb.State_STATE_QUEUED:    events.DMQueued,
	pb.State_STATE_SENT:      events.DMSent,
	pb.State_STATE_DELIVERED: events.DMDelivered,
	pb.State_STATE_FAILED:    events.DMFailed,
}

// History returns the last limit messages exchanged with p (both
// directions), oldest first. Messages are kept for Config.MaxMessageAge.
func (s *Service) History(p peer.ID, limit int) ([]Entry, error) {
	if limit <= 0 || len(p) > maxPeerIDLen {
		// No record can exist for a longer peer ID (Send refuses it).
		return nil, nil
	}
	var out []Entry
	prefix := peerPrefix(p)
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, bucket := range []string{bucketSent, bucketOutbox} {
			c := tx.Bucket([]byte(bucket)).Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				var r pb.OutboxRecord
				if decodeRecord(v, &r) != nil {
					continue
				}
				out = append(out, Entry{ID: msgID(r.Id), Peer: p, Outgoing: true, Text: r.Text,
					SentAt: time.UnixMilli(r.CreatedMs).UTC(), State: stateNames[r.State], Error: r.Error})
			}
		}
		c := tx.Bucket([]byte(bucketInbox)).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r pb.InboxRecord
			if decodeRecord(v, &r) != nil {
				continue
			}
			out = append(out, Entry{ID: msgID(r.Id), Peer: p, Nick: r.Nick, Text: r.Text,
				SentAt: time.UnixMilli(r.SentAtMs).UTC()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read history with %s: %w", p, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].SentAt.Before(out[j].SentAt) })
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}
