package node

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/rooms"
)

// TestRoomMessageLiveDuringScanShownOnce: a message that arrives live
// after the rooms are rejoined at start but before the scan of the
// messages not shown reads the history (and is not confirmed shown yet,
// so the scan finds it unmarked) is emitted once, not twice.
func TestRoomMessageLiveDuringScanShownOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	id, _, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := shownNode(t, dir, id) // joins and tracks "shown"
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	rec := testnet.NewRecorder(10 * time.Second)
	var live events.Message
	var inject sync.Once
	n, err = New(ctx, Config{
		DataDir: dir, Identity: id, Nick: "me", Emitter: rec, ConfirmShown: true,
		Rooms:       []string{"shown"},
		RoomsConfig: rooms.Config{MeshWait: time.Millisecond},
		Overlay: overlay.Config{
			ListenAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")},
			DHTMode:     overlay.DHTOff,
		},
		// Called by startRooms and by the event loop (for the joined
		// event of the rejoin), whichever comes first; sync.Once holds
		// back the other call, so no scan runs before the line is stored.
		beforeScan: func(n *Node, room string) {
			inject.Do(func() { live = sayStored(t, n, room, "between rejoin and scan") })
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if live.ID == "" {
		t.Fatal("the hook did not deliver a line before the scan")
	}
	// New returned after the loop passed on what the scan emitted.
	got := testnet.Events[events.Message](rec, func(m events.Message) bool { return m.ID == live.ID })
	if len(got) != 1 {
		t.Fatalf("the line was emitted %d times, want once: %+v", len(got), got)
	}
	// It was not shown: the next start shows it again, once.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, rec = shownNode(t, dir, id)
	if again := testnet.Events[events.Message](rec, nil); len(again) != 1 || again[0].ID != live.ID {
		t.Fatalf("after a restart: %+v, want the line not confirmed, once", again)
	}
}

// sayStored says text in room and waits until the room's history holds
// it (not for its event: the caller may be the event loop).
func sayStored(t *testing.T, n *Node, room, text string) events.Message {
	t.Helper()
	m, err := n.Say(context.Background(), room, text)
	if err != nil {
		t.Error(err)
		return events.Message{}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for range 2000 {
		hist, err := n.rooms.History(room, 100)
		if err != nil {
			t.Error(err)
			return events.Message{}
		}
		for _, h := range hist {
			if h.ID == m.ID {
				return h
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Errorf("%q not in the history of %s after 10s", text, room)
			return events.Message{}
		}
	}
	t.Errorf("%q not in the history of %s", text, room)
	return events.Message{}
}

// TestRoomOnce: the event loop's filter keeps the first copy of a room
// message in a run, whichever path it came by, and forgets what it no
// longer needs.
func TestRoomOnce(t *testing.T) {
	msg := func(room, id string) events.Message { return events.Message{Room: room, ID: id} }
	type step struct {
		e    events.Event
		pass bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"live, then the scan's copy", []step{
			{msg("a", "1"), true}, {reshown{msg("a", "1")}, false}, {scanned{"a"}, false},
		}},
		{"the scan's copy, then live", []step{
			{reshown{msg("a", "1")}, true}, {scanned{"a"}, false}, {msg("a", "1"), false},
		}},
		{"the scan's copy before its marker, then live", []step{
			{reshown{msg("a", "1")}, true}, {msg("a", "1"), false}, {scanned{"a"}, false},
		}},
		{"same id, other room", []step{
			{msg("a", "1"), true}, {reshown{msg("b", "1")}, true}, {msg("b", "2"), true},
		}},
		{"different messages all pass", []step{
			{msg("a", "1"), true}, {reshown{msg("a", "2")}, true}, {scanned{"a"}, false}, {msg("a", "3"), true},
		}},
		{"other events pass", []step{
			{events.Joined{Room: "a"}, true}, {events.DM{ID: "1"}, true}, {events.DM{ID: "1"}, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newRoomOnce()
			for i, s := range tc.steps {
				out, pass := o.filter(s.e)
				if pass != s.pass {
					t.Fatalf("step %d (%T %+v): passed %v, want %v", i, s.e, s.e, pass, s.pass)
				}
				if r, ok := s.e.(reshown); ok && pass && out != events.Event(r.msg) {
					t.Fatalf("step %d: passed %+v, want the message %+v", i, out, r.msg)
				}
			}
		})
	}

	o := newRoomOnce()
	o.filter(msg("a", "1"))
	o.filter(msg("a", "2"))
	o.filter(scanned{"a"})
	o.filter(msg("a", "3")) // after the scan: nothing remembered
	if len(o.early) != 0 || o.nEarly != 0 {
		t.Fatalf("after the scan passed: early %v (%d), want none", o.early, o.nEarly)
	}
	o.filter(reshown{msg("b", "1")})
	o.filter(msg("b", "1"))
	if len(o.again) != 0 {
		t.Fatalf("after the live copy came: again %v, want none", o.again)
	}

	// Bounded: past maxOnceEarly nothing more is remembered.
	o = newRoomOnce()
	for i := range maxOnceEarly + 10 {
		o.filter(msg("a", strconv.Itoa(i)))
	}
	if o.nEarly != maxOnceEarly {
		t.Fatalf("remembered %d live messages, want the bound %d", o.nEarly, maxOnceEarly)
	}
}
