package transfer

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/transfer/safename"
)

// Holding across restarts. A share this node fetched and serves (swarm.go)
// is stored in bucketHeld: its id, announcement, room, the file's name in
// the downloads dir with the size and modification time it had when it
// was verified, and the manifest's chunk hashes. New restores it when the
// file is still as it was, and AnnounceHeld announces it again.

// bucketHeld holds the fetched shares this node serves (heldRecord JSON,
// keyed by share id).
var bucketHeld = []byte("transfer/held")

// maxHeld bounds the fetched shares served and stored: as many as the
// announced shares remembered; the most recently fetched are kept.
const maxHeld = maxRemoteShares

// heldRecord is the stored form of a held share.
type heldRecord struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Hash      string `json:"hash"`
	Room      string `json:"room"`
	Final     string `json:"final"` // name inside the downloads dir
	ModTime   int64  `json:"mod_time"`
	ChunkSize int64  `json:"chunk_size"`
	CVs       []byte `json:"cvs"`   // the manifest's chunk hashes
	Added     int64  `json:"added"` // Unix ms
}

// addHeld starts serving h, dropping the oldest held shares beyond
// maxHeld, and stores it.
func (s *Service) addHeld(h *transfer, final string) {
	s.mu.Lock()
	old := s.held[h.id]
	s.held[h.id] = h
	var dropped []*transfer
	for len(s.held) > maxHeld {
		var oldest *transfer
		for _, o := range s.held {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(s.held, oldest.id)
		dropped = append(dropped, oldest)
	}
	rec := heldRecord{ID: h.id, Name: h.name, Size: h.size, Hash: hex.EncodeToString(h.hash[:]), Room: h.room,
		Final: final, ModTime: h.modTime, ChunkSize: h.man.chunkSize, CVs: h.man.cvs, Added: h.created.UnixMilli()}
	s.mu.Unlock()
	if old != nil {
		old.cancel()
	}
	for _, o := range dropped {
		o.cancel()
	}
	v, err := json.Marshal(rec)
	if err == nil {
		err = s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketHeld)
			for _, o := range dropped {
				if err := b.Delete([]byte(o.id)); err != nil {
					return err
				}
			}
			return b.Put([]byte(rec.ID), v)
		})
	}
	if err != nil {
		s.log.Warn("transfer: store a held share; it is served until the node stops", "id", h.id, "err", err)
	}
}

// deleteHeld forgets the stored held share id.
func (s *Service) deleteHeld(id string) {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketHeld).Delete([]byte(id)) })
	if err != nil {
		s.log.Warn("transfer: forget a held share", "id", id, "err", err)
	}
}

// loadHeld restores the stored held shares whose file is still as it was
// into s.held; the others, and records that do not check, are deleted.
func (s *Service) loadHeld() error {
	recs, bad, err := readRecords[heldRecord](s.db, bucketHeld)
	if err != nil {
		return fmt.Errorf("load held shares: %w", err)
	}
	if len(recs) > maxHeld {
		for _, r := range recs[:len(recs)-maxHeld] {
			bad = append(bad, []byte(r.ID))
		}
		recs = recs[len(recs)-maxHeld:]
	}
	for _, r := range recs {
		h, err := s.heldFrom(r)
		if err != nil {
			s.log.Info("transfer: a fetched share is no longer served", "id", r.ID, "err", err)
			bad = append(bad, []byte(r.ID))
			continue
		}
		s.held[h.id] = h
	}
	if err := deleteKeys(s.db, bucketHeld, bad); err != nil {
		return fmt.Errorf("drop stale held shares: %w", err)
	}
	return nil
}

// heldFrom checks a stored held share and its file, and returns the share
// record to serve it with.
func (s *Service) heldFrom(r heldRecord) (*transfer, error) {
	raw, err := hex.DecodeString(r.ID)
	if err != nil || len(raw) != idLen {
		return nil, fmt.Errorf("%w: share id", ErrProtocol)
	}
	hash, err := hex.DecodeString(r.Hash)
	if err != nil || len(hash) != HashSize {
		return nil, fmt.Errorf("%w: share hash", ErrProtocol)
	}
	if r.Size < 0 || r.Size > s.cfg.MaxFileSize || !validLayout(r.Size, r.ChunkSize) {
		return nil, fmt.Errorf("%w: size %d, chunk size %d", ErrProtocol, r.Size, r.ChunkSize)
	}
	if _, err := safename.Sanitize(r.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadName, err)
	}
	if !filepath.IsLocal(r.Final) || filepath.Base(r.Final) != r.Final {
		return nil, fmt.Errorf("%w: file name %q", ErrProtocol, r.Final)
	}
	man := &manifest{size: r.Size, chunkSize: r.ChunkSize, cvs: r.CVs}
	copy(man.hash[:], hash)
	if err := man.check(r.Size, man.hash); err != nil {
		return nil, err
	}
	fi, err := s.root.Stat(r.Final)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFileChanged, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != r.Size || fi.ModTime().UnixNano() != r.ModTime {
		return nil, fmt.Errorf("%w: %s", ErrFileChanged, r.Final)
	}
	h := newTransfer(s.ctx, raw)
	h.dir, h.share, h.name, h.size, h.hash, h.room = Send, true, r.Name, r.Size, man.hash, r.Room
	h.src, h.modTime, h.man, h.state = filepath.Join(s.dir, r.Final), r.ModTime, man, StateShared
	h.created = time.UnixMilli(r.Added)
	close(h.ready)
	return h, nil
}

// AnnounceHeld calls Config.Held for every fetched share this node serves,
// oldest first: after a restart, so that the node announces again in
// their rooms what it restored (the node calls it once its rooms are
// joined).
func (s *Service) AnnounceHeld() {
	if s.cfg.Held == nil {
		return
	}
	s.mu.Lock()
	hs := make([]*transfer, 0, len(s.held))
	for _, h := range s.held {
		hs = append(hs, h)
	}
	s.mu.Unlock()
	slices.SortFunc(hs, func(a, b *transfer) int { return a.created.Compare(b.created) })
	for _, h := range hs {
		s.cfg.Held(h.room, Share{ID: h.id, Name: h.name, Size: h.size, Hash: hex.EncodeToString(h.hash[:])})
	}
}

// unholdByUser stops serving the fetched share id (an id or a unique
// prefix of at least 4 digits) for good: Cancel of a share this node
// fetched. Its uploads end, its record is deleted and the file stays.
// It reports whether id named a held share.
func (s *Service) unholdByUser(id string) bool {
	id = strings.ToLower(strings.TrimSpace(id))
	s.mu.Lock()
	h := s.held[id]
	if h == nil && len(id) >= 4 {
		for k, o := range s.held {
			if strings.HasPrefix(k, id) {
				if h != nil { // ambiguous
					h = nil
					break
				}
				h = o
			}
		}
	}
	if h != nil {
		delete(s.held, h.id)
	}
	s.mu.Unlock()
	if h == nil {
		return false
	}
	h.cancel()
	s.cancelUploads(h.id)
	s.deleteHeld(h.id)
	s.log.Info("transfer: fetched share no longer served: cancelled", "id", h.id)
	return true
}
