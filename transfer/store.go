package transfer

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/transfer/pb"
)

// Buckets of the node's database that this package owns. Keys are
// transfer ids (32 hex digits).
var (
	bucketRecords   = []byte("transfer/records")   // JSON record
	bucketManifests = []byte("transfer/manifests") // chunk hashes, HashSize bytes each
	bucketBitmaps   = []byte("transfer/bitmaps")   // receive: verified-chunk bitmap
)

// noticeTTL is how long a notice for a finished transfer waits for its peer
// to come back before it is dropped.
const noticeTTL = 7 * 24 * time.Hour

// record is the persisted form of a transfer.
type record struct {
	ID        string    `json:"id"`
	Dir       Direction `json:"dir"`
	Peer      string    `json:"peer,omitempty"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	Hash      string    `json:"hash"`
	ChunkSize int64     `json:"chunk_size,omitempty"`
	Room      string    `json:"room,omitempty"`
	Share     bool      `json:"share,omitempty"`
	Src       string    `json:"src,omitempty"`
	ModTime   int64     `json:"mod_time,omitempty"`
	Part      string    `json:"part,omitempty"`
	Final     string    `json:"final,omitempty"`
	State     State     `json:"state"`
	Error     string    `json:"error,omitempty"`
	Notice    []byte    `json:"notice,omitempty"` // protobuf pb.Notice
	Created   time.Time `json:"created"`
}

func initBuckets(db *bolt.DB) error {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketManifests, bucketBitmaps, bucketRemote, bucketUnshown, bucketHeld} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create transfer buckets: %w", err)
	}
	return nil
}

// persistent reports whether t is stored (uploads of a share live only in
// memory).
func (t *transfer) persistent() bool { return !(t.dir == Send && t.share && t.peer != "") }

// save writes t's record, or deletes everything stored for t once it is
// terminal and has no notice left to deliver.
func (s *Service) save(t *transfer) { s.saveWith(t, nil) }

// saveWith is save that also records ev, the event of the offer or end it
// stores, as not shown (Config.ConfirmShown), in the same transaction.
func (s *Service) saveWith(t *transfer, ev events.Event) {
	if !t.persistent() {
		if ev != nil && s.cfg.ConfirmShown {
			if err := s.db.Update(func(tx *bolt.Tx) error { return s.putUnshown(tx, ev) }); err != nil {
				s.log.Warn("transfer: save state", "id", t.id, "err", err)
			}
		}
		return
	}
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	s.mu.Lock()
	rec := t.record()
	drop := t.state.Terminal() && t.notice == nil
	s.mu.Unlock()
	key := []byte(t.id)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.putUnshown(tx, ev); err != nil {
			return err
		}
		if drop {
			for _, b := range [][]byte{bucketRecords, bucketManifests, bucketBitmaps} {
				if err := tx.Bucket(b).Delete(key); err != nil {
					return err
				}
			}
			return nil
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRecords).Put(key, v)
	})
	if err != nil {
		s.log.Warn("transfer: save state", "id", t.id, "err", err)
	}
}

// record snapshots t. s.mu must be held.
func (t *transfer) record() record {
	r := record{
		ID: t.id, Dir: t.dir, Peer: t.peer.String(), Name: t.name, Size: t.size,
		Hash: hex.EncodeToString(t.hash[:]), Room: t.room, Share: t.share, Src: t.src,
		ModTime: t.modTime, Part: t.part, Final: t.final, State: t.state, Created: t.created,
	}
	if t.peer == "" {
		r.Peer = ""
	}
	if t.man != nil {
		r.ChunkSize = t.man.chunkSize
		if t.man.open { // the hash is not known yet
			r.Hash = ""
		}
	}
	if t.err != nil {
		r.Error = t.err.Error()
	}
	if t.notice != nil {
		r.Notice, _ = proto.Marshal(t.notice) // a Notice always encodes
	}
	return r
}

// saveWithManifest writes t's record and its manifest in one transaction.
func (s *Service) saveWithManifest(t *transfer) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	s.mu.Lock()
	rec := t.record()
	man := t.man
	ended := t.state.Terminal() && t.notice == nil
	s.mu.Unlock()
	if ended { // cancelled meanwhile: save deleted it, or will
		return nil
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketManifests).Put([]byte(t.id), man.cvs); err != nil {
			return err
		}
		return tx.Bucket(bucketRecords).Put([]byte(t.id), v)
	})
	if err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	return nil
}

// loadManifest reads t's stored manifest, nil when there is none.
func (s *Service) loadManifest(t *transfer, chunkSize int64) (*manifest, error) {
	cvs, err := s.loadHashes(t.id)
	if err != nil {
		return nil, err
	}
	if cvs == nil {
		return nil, nil
	}
	m := &manifest{size: t.size, chunkSize: chunkSize, hash: t.hash, cvs: cvs}
	if err := m.check(t.size, t.hash); err != nil {
		return nil, fmt.Errorf("stored manifest: %w", err)
	}
	return m, nil
}

// loadHashes reads the chunk hashes stored for id, nil when there are
// none.
func (s *Service) loadHashes(id string) ([]byte, error) {
	var cvs []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketManifests).Get([]byte(id)); v != nil {
			cvs = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	return cvs, nil
}

// openManifest restores the open manifest of transfer t (offered before
// it was hashed, not committed yet). A recipient gets back the chunk
// hashes it stored with its bitmap (see saveBitmap); a sender starts with
// none known and hashes again what it sends, or, at the commitment, what
// it sent before it stopped.
func (s *Service) openManifest(t *transfer, chunkSize int64) (*manifest, error) {
	if !validLayout(t.size, chunkSize) {
		return nil, fmt.Errorf("bad chunk size %d", chunkSize)
	}
	m := newOpenManifest(t.size, chunkSize)
	if t.dir == Send {
		return m, nil
	}
	m.sent = nil
	cvs, err := s.loadHashes(t.id)
	if err != nil {
		return nil, err
	}
	if len(cvs) == len(m.cvs) {
		m.cvs = cvs
	}
	return m, nil
}

// saveBitmap stores b while t's record exists (a cancelled transfer's
// record may already be gone), and with it cvs when not nil: the chunk
// hashes of an open manifest at the recipient, which the chunks in b
// matched.
func (s *Service) saveBitmap(id string, b bitmap, cvs []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRecords).Get([]byte(id)) == nil {
			return nil
		}
		if cvs != nil {
			if err := tx.Bucket(bucketManifests).Put([]byte(id), cvs); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketBitmaps).Put([]byte(id), b)
	})
	if err != nil {
		return fmt.Errorf("save bitmap: %w", err)
	}
	return nil
}

func (s *Service) loadBitmap(id string, n int) (bitmap, error) {
	b := newBitmap(n)
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBitmaps).Get([]byte(id)); len(v) == len(b) {
			copy(b, v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load bitmap: %w", err)
	}
	for i := n; i < len(b)*8; i++ {
		b.clear(i)
	}
	return b, nil
}

// loadAll reads every stored transfer. Records that do not parse, and
// notices older than noticeTTL, are dropped with a warning.
func (s *Service) loadAll() ([]*transfer, error) {
	type kv struct{ k, v []byte }
	var raw []kv
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			raw = append(raw, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load transfers: %w", err)
	}
	var out []*transfer
	var drop [][]byte
	for _, r := range raw {
		t, err := s.fromRecord(r.v)
		if err != nil {
			s.log.Warn("transfer: dropping unreadable record", "id", string(r.k), "err", err)
			drop = append(drop, r.k)
			continue
		}
		if t.state.Terminal() && time.Since(t.created) > noticeTTL {
			drop = append(drop, r.k)
			continue
		}
		if t.err == errHashingInterrupted {
			// Listed as failed until the node stops; nothing to keep.
			drop = append(drop, r.k)
		}
		out = append(out, t)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, k := range drop {
			for _, b := range [][]byte{bucketRecords, bucketManifests, bucketBitmaps} {
				if err := tx.Bucket(b).Delete(k); err != nil {
					return err
				}
			}
		}
		// Manifests and bitmaps without a record are left over from a
		// crash between two writes.
		for _, b := range [][]byte{bucketManifests, bucketBitmaps} {
			var orphans [][]byte
			err := tx.Bucket(b).ForEach(func(k, _ []byte) error {
				if tx.Bucket(bucketRecords).Get(k) == nil {
					orphans = append(orphans, append([]byte(nil), k...))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range orphans {
				if err := tx.Bucket(b).Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("clean transfer store: %w", err)
	}
	return out, nil
}

func (s *Service) fromRecord(v []byte) (*transfer, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	raw, err := hex.DecodeString(r.ID)
	if err != nil || len(raw) != idLen {
		return nil, errors.New("bad id")
	}
	hash, err := hex.DecodeString(r.Hash)
	open := r.Hash == "" && r.ChunkSize != 0 // offered before it was hashed; not committed yet
	if err != nil || (len(hash) != HashSize && !open) {
		return nil, errors.New("bad hash")
	}
	switch {
	case r.Dir != Send && r.Dir != Receive:
		return nil, fmt.Errorf("bad direction %q", r.Dir)
	case !validState(r.State):
		return nil, fmt.Errorf("bad state %q", r.State)
	case r.Size < 0 || r.Size > MaxSize:
		return nil, fmt.Errorf("bad size %d", r.Size)
	}
	t := newTransfer(s.ctx, raw)
	t.dir, t.name, t.size, t.room, t.share = r.Dir, r.Name, r.Size, r.Room, r.Share
	t.src, t.modTime, t.part, t.final, t.state, t.created = r.Src, r.ModTime, r.Part, r.Final, r.State, r.Created
	copy(t.hash[:], hash)
	if r.Peer != "" {
		if t.peer, err = peer.Decode(r.Peer); err != nil {
			return nil, fmt.Errorf("bad peer: %w", err)
		}
	}
	if r.Error != "" {
		t.err = errors.New(r.Error)
	}
	if r.Notice != nil {
		t.notice = new(pb.Notice)
		if err := proto.Unmarshal(r.Notice, t.notice); err != nil {
			return nil, fmt.Errorf("bad notice: %w", err)
		}
	}
	switch {
	case open:
		if t.man, err = s.openManifest(t, r.ChunkSize); err != nil {
			return nil, err
		}
	case r.ChunkSize != 0:
		if t.man, err = s.loadManifest(t, r.ChunkSize); err != nil {
			return nil, err
		}
	}
	if t.state == StateHashing {
		// The node stopped while hashing: no manifest was stored and no
		// offer or announcement went out. Fail it; the user offers again.
		t.state, t.err = StateFailed, errHashingInterrupted
	} else {
		close(t.ready)
	}
	if t.state.Terminal() {
		close(t.done)
		t.cancel()
	}
	return t, nil
}

// errHashingInterrupted ends a transfer restored in StateHashing.
var errHashingInterrupted = errors.New("the node stopped while hashing the file; offer it again")

func validState(st State) bool {
	switch st {
	case StateHashing, StateOffered, StateShared, StateQueued, StateActive, StateWaiting,
		StateDone, StateFailed, StateRejected, StateCancelled:
		return true
	}
	return false
}
