package node

import (
	"encoding/hex"
	"fmt"
	"math"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/rooms"
)

// Shown room messages. The rooms service commits a message to the room's
// history before it emits its event, and its transaction is not the
// node's to extend: so instead of a "not shown" mark written with the
// message, the node keeps the opposite, the IDs of the messages the user
// was shown, per room, and at start emits again every message of the
// history whose ID is not among them. The marks cost the delivery path
// nothing: they are written in batches by shownLog's goroutine (one
// transaction per batch, one key per message), and pruned at start to
// the messages the history still holds.
//
// A room is tracked from the moment it is joined (or, for the rooms
// joined before this version, from the first start with it): what its
// history holds then counts as shown, so an upgrade does not repeat a
// room's whole history.

// bucketShownRooms maps a room name to a nested bucket of the IDs (16
// bytes) of its messages the user was shown. A room without a nested
// bucket is not tracked yet.
var bucketShownRooms = []byte("node/shown-rooms")

// roomMarks keeps the shown marks of room messages.
type roomMarks struct {
	db *bolt.DB

	mu sync.Mutex
	// opened: rooms tracked and looked at this run; a room left and
	// joined again is not scanned twice (what it delivered before is in
	// the user interface's hands).
	opened map[string]bool // guarded by mu
}

func newRoomMarks(db *bolt.DB) (*roomMarks, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketShownRooms)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", bucketShownRooms, err)
	}
	return &roomMarks{db: db, opened: make(map[string]bool)}, nil
}

// open starts tracking a joined room, once per run, and returns the
// messages of its history the user was not shown (oldest first; none for
// a room tracked only now), and first: this call looked at the room (the
// first successful one of the run). Marks of messages the history no
// longer holds are deleted.
func (m *roomMarks) open(svc *rooms.Service, room string) (missed []events.Message, first bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.opened[room] {
		return nil, false, nil
	}
	hist, err := svc.History(room, math.MaxInt32)
	if err != nil {
		return nil, false, fmt.Errorf("read history of %s: %w", room, err)
	}
	err = m.db.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketShownRooms)
		b := top.Bucket([]byte(room))
		if b == nil {
			// Not tracked yet: everything it holds counts as shown.
			nb, err := top.CreateBucket([]byte(room))
			if err != nil {
				return err
			}
			for _, e := range hist {
				if id, ok := messageKey(e.ID); ok {
					if err := nb.Put(id, nil); err != nil {
						return err
					}
				}
			}
			return nil
		}
		keep := make(map[string]bool, len(hist))
		for _, e := range hist {
			id, ok := messageKey(e.ID)
			if !ok {
				continue
			}
			keep[string(id)] = true
			if b.Get(id) == nil {
				missed = append(missed, e)
			}
		}
		var stale [][]byte
		err := b.ForEach(func(k, _ []byte) error {
			if !keep[string(k)] {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("shown marks of %s: %w", room, err)
	}
	m.opened[room] = true
	return missed, true, nil
}

// mark records that the user was shown the room messages among evs, in
// one transaction.
func (m *roomMarks) mark(evs []events.Event) error {
	var n int
	for _, e := range evs {
		if _, ok := e.(events.Message); ok {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	err := m.db.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketShownRooms)
		var b *bolt.Bucket
		var room string
		for _, e := range evs {
			msg, ok := e.(events.Message)
			if !ok {
				continue
			}
			id, ok := messageKey(msg.ID)
			if !ok || msg.Room == "" {
				continue
			}
			if b == nil || msg.Room != room {
				var err error
				if b, err = top.CreateBucketIfNotExists([]byte(msg.Room)); err != nil {
					return err
				}
				room = msg.Room
			}
			if err := b.Put(id, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record shown room messages: %w", err)
	}
	return nil
}

// messageKey is the stored form of a message ID (32 hex digits).
func messageKey(id string) ([]byte, bool) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 16 || id == "" {
		return nil, false
	}
	return b, true
}
