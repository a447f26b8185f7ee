package transfer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
)

// Unshown outcomes (with Config.ConfirmShown). A received offer
// (file_offer) and a transfer's end (file_done, file_failed,
// file_rejected) are written to the store as "not shown", in the
// transaction that records the offer or the end, with the event itself:
// an ended transfer's record is deleted once nothing is left to deliver,
// and the event must outlive it. MarkShown deletes the entry once the
// user interface says it showed the event; New emits the ones left, so a
// crash between recording an outcome and writing its event out does not
// keep it from the user. Entries older than noticeTTL are dropped.

// bucketUnshown maps type/transfer id/peer to 8 bytes (Unix ms, big
// endian, when the event was recorded) followed by the event's JSON.
var bucketUnshown = []byte("transfer/unshown")

// shownKey is the store key of an outcome event; ok is false for the
// other events.
func shownKey(e events.Event) (key []byte, ok bool) {
	var id string
	var p peer.ID
	switch e := e.(type) {
	case events.FileOffer:
		id, p = e.TransferID, e.From
	case events.FileDone:
		id, p = e.TransferID, e.Peer
	case events.FileFailed:
		id, p = e.TransferID, e.Peer
	case events.FileRejected:
		id, p = e.TransferID, e.Peer
	default:
		return nil, false
	}
	k := append([]byte(e.Type()), '/')
	k = append(k, id...)
	k = append(k, '/')
	return append(k, p...), true
}

// putUnshown records e as not shown yet, in tx (with Config.ConfirmShown;
// e nil or not an outcome does nothing).
func (s *Service) putUnshown(tx *bolt.Tx, e events.Event) error {
	if !s.cfg.ConfirmShown || e == nil {
		return nil
	}
	k, ok := shownKey(e)
	if !ok {
		return nil
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", e.Type(), err)
	}
	at := binary.BigEndian.AppendUint64(nil, uint64(max(time.Now().UnixMilli(), 0))) // #nosec G115 -- not negative
	if err := tx.Bucket(bucketUnshown).Put(k, append(at, v...)); err != nil {
		return fmt.Errorf("mark %s not shown: %w", e.Type(), err)
	}
	return nil
}

// MarkShown records that the user interface has shown evs: file_offer,
// file_done, file_failed and file_rejected events (the others are
// ignored), in one transaction. It works after Close as long as the
// database is open.
func (s *Service) MarkShown(evs []events.Event) error {
	var keys [][]byte
	for _, e := range evs {
		if k, ok := shownKey(e); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUnshown)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("transfer: record shown events: %w", err)
	}
	return nil
}

// unshown returns (with Config.ConfirmShown) the outcome events not
// marked shown, oldest first, and deletes the entries that are too old or
// do not decode.
func (s *Service) unshown(now time.Time) ([]events.Event, error) {
	if !s.cfg.ConfirmShown {
		return nil, nil
	}
	type entry struct {
		at int64
		e  events.Event
	}
	var out []entry
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUnshown)
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			e, at, err := decodeUnshown(k, v)
			if err != nil || now.Sub(time.UnixMilli(at)) > noticeTTL {
				stale = append(stale, bytes.Clone(k))
				return nil
			}
			out = append(out, entry{at: at, e: e})
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
		return nil, fmt.Errorf("load events not shown: %w", err)
	}
	slices.SortStableFunc(out, func(a, b entry) int { return int(min(max(a.at-b.at, -1), 1)) })
	evs := make([]events.Event, len(out))
	for i, x := range out {
		evs[i] = x.e
	}
	return evs, nil
}

// decodeUnshown decodes an entry of bucketUnshown.
func decodeUnshown(k, v []byte) (events.Event, int64, error) {
	if len(v) < 8 {
		return nil, 0, fmt.Errorf("entry of %d bytes", len(v))
	}
	at := int64(binary.BigEndian.Uint64(v)) // #nosec G115 -- written from a non-negative int64
	typ, _, _ := bytes.Cut(k, []byte("/"))
	var e events.Event
	var err error
	switch string(typ) {
	case "file_offer":
		e, err = decodeAs[events.FileOffer](v[8:])
	case "file_done":
		e, err = decodeAs[events.FileDone](v[8:])
	case "file_failed":
		e, err = decodeAs[events.FileFailed](v[8:])
	case "file_rejected":
		e, err = decodeAs[events.FileRejected](v[8:])
	default:
		err = fmt.Errorf("unknown event type %q", typ)
	}
	if err != nil {
		return nil, 0, err
	}
	if k2, _ := shownKey(e); !bytes.Equal(k, k2) {
		return nil, 0, fmt.Errorf("entry does not match its key")
	}
	return e, at, nil
}

func decodeAs[T events.Event](v []byte) (events.Event, error) {
	var e T
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, err
	}
	return e, nil
}
