package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/overlay"
)

// confirmer is a user interface that confirms every event it gets, as
// parley chat's writer does, and counts the room messages.
type confirmer struct {
	n    atomic.Pointer[Node]
	msgs atomic.Int64
	want int64
	done chan struct{}
}

func (c *confirmer) Emit(e events.Event) {
	if n := c.n.Load(); n != nil {
		n.Shown(e)
	}
	if _, ok := e.(events.Message); ok && c.msgs.Add(1) == c.want {
		close(c.done)
	}
}

// BenchmarkRoomMessageMarks passes b.N room messages through the node's
// event loop to a user interface that confirms each, until their shown
// marks are in the store (fsync included; ns/op), against the same
// without marks: what the marks cost a room's delivery. shown-ns/msg is
// the time until the interface got the last message (the marks are
// written on their own goroutine, in batches).
//
//	go test ./node -run XXX -bench RoomMessageMarks -benchtime 20000x
func BenchmarkRoomMessageMarks(b *testing.B) {
	for _, v := range []struct {
		name  string
		marks bool
	}{{"no-marks", false}, {"marks", true}} {
		b.Run(v.name, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "data")
			id, _, err := identity.LoadOrCreate(dir)
			if err != nil {
				b.Fatal(err)
			}
			c := &confirmer{want: int64(b.N), done: make(chan struct{})}
			n, err := New(context.Background(), Config{
				DataDir: dir, Identity: id, Nick: "me", Emitter: c, ConfirmShown: true, NoDefaultRoom: true,
				Logger:     slog.New(slog.DiscardHandler),
				EventQueue: b.N + 1024,
				Overlay: overlay.Config{
					ListenAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")},
					DHTMode:     overlay.DHTOff,
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = n.Close() })
			if !v.marks {
				n.shown.close(0)
				n.shown = newShownLog(func([]events.Event) error { return nil }, n.log)
			}
			c.n.Store(n)
			from, err := peer.IDFromPrivateKey(testnet.NewKey(b))
			if err != nil {
				b.Fatal(err)
			}
			msgs := make([]events.Message, b.N)
			for i := range msgs {
				var raw [16]byte
				_, _ = rand.Read(raw[:])
				msgs[i] = events.Message{Room: "bench", ID: hex.EncodeToString(raw[:]), From: from, Nick: "bob", Text: "a line of chat", SentAt: time.Now()}
			}
			b.ResetTimer()
			start := time.Now()
			for _, m := range msgs {
				n.internal.Emit(m)
			}
			<-c.done
			shown := time.Since(start)
			n.shown.flush() // the last batch, durable
			b.StopTimer()
			b.ReportMetric(float64(shown.Nanoseconds())/float64(b.N), "shown-ns/msg")
			if d := n.internal.Dropped(); d > 0 {
				b.Fatalf("%d events dropped", d)
			}
		})
	}
}
