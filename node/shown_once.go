package node

import "github.com/parley-chat/parley/events"

// Once per run. A room message reaches the event loop by two paths: live
// (or by the room's history sync), from the rooms service, right after it
// is stored in the history; and from reshow, which emits again the
// messages of the history the user was not shown (shown_rooms.go). The
// rooms service emits a message at most once (only when the history did
// not hold it), and reshow scans a room at most once per run, so a
// message comes twice only when it was stored before the scan read the
// history and was not marked shown yet: the live copy may then reach the
// loop before or after the scan's copy. The loop, which passes every
// event on, keeps the first and drops the second:
//
//   - until a room's scan has passed the loop (the scanned marker after
//     its messages), the IDs of the room's live messages are remembered,
//     and a scan's copy of one of them is dropped;
//   - the IDs the scan emitted are remembered, and a live copy arriving
//     after them is dropped (and forgotten: it comes at most once).
//
// Both sets are small: the first holds what arrives in the moment
// between a room's rejoin and its scan, and is dropped with the marker;
// the second holds the messages an earlier run did not show. Both are
// bounded (maxOnceEarly, maxOnceReshown): past a bound nothing more is
// remembered, and a repeat is possible again, as before this was added.
//
// DMs need none of this: the dm service emits the ones not shown before
// it registers its stream handler and before the mailbox starts, and
// emits a received message only when its inbox did not hold it yet
// (dm/shown.go, dm/store.go), so a dm event cannot come twice in a run.

// reshown is a room message emitted again by reshow.
type reshown struct{ msg events.Message }

func (reshown) Type() string { return "reshown" }

// scanned follows the messages reshow emitted for room: the scan of room
// has passed the loop.
type scanned struct{ room string }

func (scanned) Type() string { return "scanned" }

const (
	// maxOnceEarly bounds the live messages remembered, all rooms
	// together, while their rooms' scans are under way.
	maxOnceEarly = 1 << 14
	// maxOnceReshown bounds the messages remembered as emitted by scans.
	maxOnceReshown = 1 << 16
)

type msgKey struct{ room, id string }

// roomOnce drops the second copy of a room message within one run. It is
// owned by the event loop (no lock).
type roomOnce struct {
	// early: room -> IDs of live messages passed on before its scan
	// passed the loop.
	early  map[string]map[string]struct{}
	nEarly int
	// done: rooms whose scan passed the loop.
	done map[string]struct{}
	// again: messages a scan passed on, until their live copy comes.
	again map[msgKey]struct{}
}

func newRoomOnce() *roomOnce {
	return &roomOnce{early: map[string]map[string]struct{}{}, done: map[string]struct{}{}, again: map[msgKey]struct{}{}}
}

// filter reports the event to pass on for e, and false when e is to be
// dropped (a second copy) or was the loop's own (a scanned marker).
func (o *roomOnce) filter(e events.Event) (events.Event, bool) {
	switch e := e.(type) {
	case events.Message:
		return e, o.live(e)
	case reshown:
		return e.msg, o.reshown(e.msg)
	case scanned:
		o.scanned(e.room)
		return nil, false
	}
	return e, true
}

// live reports whether a live message is to be passed on.
func (o *roomOnce) live(m events.Message) bool {
	k := msgKey{m.Room, m.ID}
	if _, ok := o.again[k]; ok {
		delete(o.again, k)
		return false
	}
	if _, ok := o.done[m.Room]; ok || o.nEarly >= maxOnceEarly {
		return true
	}
	ids := o.early[m.Room]
	if ids == nil {
		ids = map[string]struct{}{}
		o.early[m.Room] = ids
	}
	if _, ok := ids[m.ID]; !ok {
		ids[m.ID] = struct{}{}
		o.nEarly++
	}
	return true
}

// reshown reports whether a message emitted again by a scan is to be
// passed on.
func (o *roomOnce) reshown(m events.Message) bool {
	if _, ok := o.early[m.Room][m.ID]; ok {
		return false
	}
	k := msgKey{m.Room, m.ID}
	if _, ok := o.again[k]; ok {
		return false
	}
	if len(o.again) < maxOnceReshown {
		o.again[k] = struct{}{}
	}
	return true
}

// scanned forgets the live messages remembered for room: its scan passed.
func (o *roomOnce) scanned(room string) {
	o.nEarly -= len(o.early[room])
	delete(o.early, room)
	o.done[room] = struct{}{}
}
