package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/rooms"
	"github.com/parley-chat/parley/store"
)

// shownNode starts a node in dir, in room "shown", with ConfirmShown.
func shownNode(t *testing.T, dir string, id *identity.Identity) (*Node, *testnet.Recorder) {
	t.Helper()
	rec := testnet.NewRecorder(10 * time.Second)
	n, err := New(context.Background(), Config{
		DataDir: dir, Identity: id, Nick: "me", Emitter: rec, ConfirmShown: true,
		Rooms:       []string{"shown"},
		RoomsConfig: rooms.Config{MeshWait: time.Millisecond},
		Overlay: overlay.Config{
			ListenAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")},
			DHTMode:     overlay.DHTOff,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n, rec
}

// TestRoomMessagesNotShownComeBack: the room messages the user interface
// did not confirm are emitted again at the next start, the same events,
// once, before New returns; the confirmed ones are not; and a room whose
// history predates the marks (an upgrade) repeats nothing.
func TestRoomMessagesNotShownComeBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	id, _, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	n, rec := shownNode(t, dir, id)
	for i := range 4 {
		if _, err := n.Say(ctx, "shown", fmt.Sprintf("line %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitCount(t, "4 messages", 4, func(e events.Event) bool { _, ok := e.(events.Message); return ok })
	first := testnet.Events[events.Message](rec, nil)
	// The interface showed the first and the third only.
	n.Shown(first[0])
	n.Shown(first[2])
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n, rec = shownNode(t, dir, id)
	again := testnet.Events[events.Message](rec, nil) // emitted before New returned
	if want := []events.Message{first[1], first[3]}; !reflect.DeepEqual(again, want) {
		t.Fatalf("after a restart: %+v\nwant the messages not shown: %+v", again, want)
	}
	for _, e := range again {
		n.Shown(e)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n, rec = shownNode(t, dir, id)
	if got := testnet.Events[events.Message](rec, nil); len(got) != 0 {
		t.Fatalf("after everything was shown: %+v", got)
	}
	if _, err := n.Say(ctx, "shown", "not shown, marks lost"); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, "the new message", 1, func(e events.Event) bool { _, ok := e.(events.Message); return ok })
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// A store from before the marks: the history counts as shown.
	st, err := store.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DB().Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketShownRooms) }); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, rec = shownNode(t, dir, id)
	if got := testnet.Events[events.Message](rec, nil); len(got) != 0 {
		t.Fatalf("after an upgrade: %+v, want no history repeated", got)
	}
}

// TestShownLogStopWaiting: once the user interface ended (Node.UIDone),
// Close does not wait for confirmations that cannot come.
func TestShownLogStopWaiting(t *testing.T) {
	l := newShownLog(func([]events.Event) error { return nil }, slog.New(slog.DiscardHandler))
	l.expect()
	l.stopWaiting()
	l.expect()
	done := make(chan struct{})
	go func() {
		l.close(time.Hour)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("close waited for confirmations after stopWaiting")
	}
}
