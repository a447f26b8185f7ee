package transfer

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/transfer/safename"
)

// bucketRemote holds the shares other peers announced (remoteRecord JSON,
// keyed by share id), so that /fetch still works after a restart. At most
// maxRemoteShares are kept, the most recently announced.
var bucketRemote = []byte("transfer/remote-shares")

// remoteRecord is the stored form of a remoteShare.
type remoteRecord struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	Hash  string `json:"hash"`
	From  string `json:"from"`
	Room  string `json:"room"`
	Added int64  `json:"added"` // Unix ms of the latest announcement
	// Holders: the members announced to hold the file (swarm.go), the
	// sharer first; absent in records stored before swarming.
	Holders []string `json:"holders,omitempty"`
}

// saveRemote stores rs and deletes the announcements that fell out of
// the kept set (dropped), and records offer, when not nil, as not shown
// (shown.go). A store error is logged: the share stays fetchable until
// the node stops.
func (s *Service) saveRemote(rs remoteShare, dropped []string, offer events.Event) {
	holders := make([]string, len(rs.holders))
	for i, h := range rs.holders {
		holders[i] = h.String()
	}
	v, err := json.Marshal(remoteRecord{ID: rs.ID, Name: rs.Name, Size: rs.Size, Hash: rs.Hash,
		From: rs.from.String(), Room: rs.room, Added: time.Now().UnixMilli(), Holders: holders})
	if err == nil {
		err = s.db.Update(func(tx *bolt.Tx) error {
			if err := s.putUnshown(tx, offer); err != nil {
				return err
			}
			b := tx.Bucket(bucketRemote)
			for _, id := range dropped {
				if err := b.Delete([]byte(id)); err != nil {
					return err
				}
			}
			return b.Put([]byte(rs.ID), v)
		})
	}
	if err != nil {
		s.log.Warn("transfer: store an announced share", "id", rs.ID, "err", err)
	}
}

// loadRemotes restores the stored announcements, oldest first, into
// s.remote and s.remoteOrder. Records that do not decode or validate (a
// store written by something else) are skipped and deleted.
func (s *Service) loadRemotes() error {
	recs, bad, err := readRecords[remoteRecord](s.db, bucketRemote)
	if err != nil {
		return fmt.Errorf("load announced shares: %w", err)
	}
	for _, r := range recs {
		rs, err := r.share(s.cfg.MaxFileSize)
		if err != nil {
			bad = append(bad, []byte(r.ID))
			continue
		}
		s.remote[rs.ID] = rs
		s.remoteOrder = append(s.remoteOrder, rs.ID)
	}
	for len(s.remoteOrder) > maxRemoteShares {
		bad = append(bad, []byte(s.remoteOrder[0]))
		delete(s.remote, s.remoteOrder[0])
		s.remoteOrder = s.remoteOrder[1:]
	}
	if err := deleteKeys(s.db, bucketRemote, bad); err != nil {
		return fmt.Errorf("drop stale announced shares: %w", err)
	}
	return nil
}

// share checks a stored record as AddRemoteShare checks an announcement.
func (r remoteRecord) share(maxSize int64) (remoteShare, error) {
	raw, err := hex.DecodeString(r.ID)
	if err != nil || len(raw) != idLen {
		return remoteShare{}, fmt.Errorf("%w: share id %q", ErrProtocol, r.ID)
	}
	hash, err := hex.DecodeString(r.Hash)
	if err != nil || len(hash) != HashSize {
		return remoteShare{}, fmt.Errorf("%w: share hash", ErrProtocol)
	}
	from, err := peer.Decode(r.From)
	if err != nil {
		return remoteShare{}, fmt.Errorf("%w: share peer: %w", ErrProtocol, err)
	}
	if r.Size < 0 || r.Size > maxSize {
		return remoteShare{}, fmt.Errorf("%w: share of %d bytes (limit %d)", ErrTooLarge, r.Size, maxSize)
	}
	name, err := safename.Sanitize(r.Name)
	if err != nil {
		return remoteShare{}, fmt.Errorf("%w: %w", ErrBadName, err)
	}
	rs := remoteShare{Share: Share{ID: hex.EncodeToString(raw), Name: name, Size: r.Size, Hash: r.Hash}, from: from, room: r.Room}
	copy(rs.hash[:], hash)
	rs.holders = []peer.ID{from}
	for _, h := range r.Holders {
		if p, err := peer.Decode(h); err == nil {
			addHolder(&rs, p)
		}
	}
	return rs, nil
}
