package dm

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
)

// Unshown events (with Config.ConfirmShown). A dm event, or a dm_status
// state change, is written to the store in the transaction that stores the message or its new state,
// as "not shown yet"; MarkShown clears the mark once the user interface
// says it has shown the event. New emits again, before anything else,
// every event still marked: so a message the user was never shown, because
// the process died between committing it and writing the event out, is
// shown after the restart. A crash between writing an event out and
// MarkShown shows it twice; consumers that must not see that dedupe by id.
const (
	// bucketUnshownIn: sender, id -> empty; a received message whose dm
	// event was not shown.
	bucketUnshownIn = "dm/unshown-in"
	// bucketUnshownOut: recipient, id -> one byte, the set of states
	// (1 << pb.State) whose dm_status event was not shown.
	bucketUnshownOut = "dm/unshown-out"
)

func stateBit(st pb.State) byte {
	if st <= pb.State_STATE_UNSPECIFIED || st > pb.State_STATE_FAILED {
		return 0
	}
	return 1 << st
}

// markUnshownOut adds st to the states of key not shown yet (with
// Config.ConfirmShown). Called in the transaction that records st.
func (s *Service) markUnshownOut(tx *bolt.Tx, key []byte, st pb.State) error {
	if !s.cfg.ConfirmShown {
		return nil
	}
	b := tx.Bucket([]byte(bucketUnshownOut))
	var bits byte
	if v := b.Get(key); len(v) == 1 {
		bits = v[0]
	}
	if err := b.Put(key, []byte{bits | stateBit(st)}); err != nil {
		return fmt.Errorf("mark %s not shown: %w", stateNames[st], err)
	}
	return nil
}

// MarkShown records that the user interface has shown evs: dm events and
// dm_status state changes (the others, and events with a Reason, are
// ignored). It writes one transaction, and works after Close as long as
// the database is open, so a node can record what its interface wrote
// while it shut down.
func (s *Service) MarkShown(evs []events.Event) error {
	type mark struct {
		in  bool
		key []byte
		bit byte
	}
	var marks []mark
	for _, e := range evs {
		switch e := e.(type) {
		case events.DM:
			if id, err := hex.DecodeString(e.ID); err == nil && len(e.From) <= maxPeerIDLen {
				marks = append(marks, mark{in: true, key: recordKey(e.From, id)})
			}
		case events.DMStatus:
			if e.Reason != "" {
				continue
			}
			if id, err := hex.DecodeString(e.ID); err == nil && len(e.To) <= maxPeerIDLen {
				marks = append(marks, mark{key: recordKey(e.To, id), bit: stateBit(stateValues[e.State])})
			}
		}
	}
	if len(marks) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		in, out := tx.Bucket([]byte(bucketUnshownIn)), tx.Bucket([]byte(bucketUnshownOut))
		for _, m := range marks {
			if m.in {
				if err := in.Delete(m.key); err != nil {
					return err
				}
				continue
			}
			v := out.Get(m.key)
			if len(v) != 1 {
				continue
			}
			var err error
			if left := v[0] &^ m.bit; left == 0 {
				err = out.Delete(m.key)
			} else {
				err = out.Put(m.key, []byte{left})
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dm: record shown events: %w", err)
	}
	return nil
}

var stateValues = map[string]pb.State{
	events.DMQueued:    pb.State_STATE_QUEUED,
	events.DMSent:      pb.State_STATE_SENT,
	events.DMDelivered: pb.State_STATE_DELIVERED,
	events.DMFailed:    pb.State_STATE_FAILED,
}

// unshown returns (with Config.ConfirmShown) the events not marked
// shown: dm events in the order the
// messages arrived, then the dm_status events of each outgoing message in
// the order the messages were queued. Marks whose record is gone or
// unreadable are dropped.
func (s *Service) unshown() ([]events.Event, error) {
	if !s.cfg.ConfirmShown {
		return nil, nil
	}
	var ins []*pb.InboxRecord
	var outs []*pb.OutboxRecord
	bitsOf := map[string]byte{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		var stale [][]byte
		inbox := tx.Bucket([]byte(bucketInbox))
		err := tx.Bucket([]byte(bucketUnshownIn)).ForEach(func(k, _ []byte) error {
			rec := new(pb.InboxRecord)
			if v := inbox.Get(k); v == nil || decodeRecord(v, rec) != nil || len(rec.Id) != IDLen {
				stale = append(stale, bytes.Clone(k))
				return nil
			}
			ins = append(ins, rec)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := tx.Bucket([]byte(bucketUnshownIn)).Delete(k); err != nil {
				return err
			}
		}
		stale = stale[:0]
		outbox, sent := tx.Bucket([]byte(bucketOutbox)), tx.Bucket([]byte(bucketSent))
		err = tx.Bucket([]byte(bucketUnshownOut)).ForEach(func(k, v []byte) error {
			rec := new(pb.OutboxRecord)
			rv := outbox.Get(k)
			if rv == nil {
				rv = sent.Get(k)
			}
			if rv == nil || len(v) != 1 || decodeRecord(rv, rec) != nil || len(rec.Id) != IDLen {
				stale = append(stale, bytes.Clone(k))
				return nil
			}
			outs = append(outs, rec)
			bitsOf[string(k)] = v[0]
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := tx.Bucket([]byte(bucketUnshownOut)).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load events not shown: %w", err)
	}
	sort.SliceStable(ins, func(i, j int) bool { return ins[i].ReceivedMs < ins[j].ReceivedMs })
	sortByCreated(outs)
	var evs []events.Event
	for _, r := range ins {
		evs = append(evs, events.DM{ID: msgID(r.Id), From: peer.ID(r.From), Nick: r.Nick, Text: r.Text,
			SentAt: time.UnixMilli(r.SentAtMs).UTC()})
	}
	for _, r := range outs {
		bits := bitsOf[string(recordKey(peer.ID(r.To), r.Id))]
		for _, st := range []pb.State{pb.State_STATE_QUEUED, pb.State_STATE_SENT, pb.State_STATE_DELIVERED, pb.State_STATE_FAILED} {
			if bits&stateBit(st) == 0 {
				continue
			}
			e := events.DMStatus{ID: msgID(r.Id), To: peer.ID(r.To), State: stateNames[st]}
			if st == pb.State_STATE_FAILED {
				e.Error = r.Error
			}
			evs = append(evs, e)
		}
	}
	return evs, nil
}
