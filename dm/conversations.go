package dm

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
)

// Conversation is a peer with stored messages and the time of the last.
type Conversation struct {
	Peer peer.ID
	Last time.Time
}

// Conversations returns the peers this node has stored messages with,
// the most recent conversation first, at most limit (user interfaces
// list them again after a restart). Damaged records are skipped.
func (s *Service) Conversations(limit int) ([]Conversation, error) {
	if limit <= 0 {
		return nil, nil
	}
	last := make(map[peer.ID]time.Time)
	note := func(k []byte, at time.Time) {
		if len(k) == 0 || int(k[0]) > len(k)-1 || k[0] == 0 {
			return
		}
		p := peer.ID(k[1 : 1+int(k[0])])
		if at.After(last[p]) {
			last[p] = at
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, bucket := range []string{bucketSent, bucketOutbox} {
			err := tx.Bucket([]byte(bucket)).ForEach(func(k, v []byte) error {
				var r pb.OutboxRecord
				if decodeRecord(v, &r) == nil {
					note(k, time.UnixMilli(r.CreatedMs))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bucketInbox)).ForEach(func(k, v []byte) error {
			var r pb.InboxRecord
			if decodeRecord(v, &r) == nil {
				note(k, time.UnixMilli(r.SentAtMs))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	out := make([]Conversation, 0, len(last))
	for p, t := range last {
		if p.Validate() == nil {
			out = append(out, Conversation{Peer: p, Last: t.UTC()})
		}
	}
	slices.SortFunc(out, func(a, b Conversation) int {
		if c := b.Last.Compare(a.Last); c != 0 {
			return c
		}
		return cmp.Compare(a.Peer, b.Peer)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
