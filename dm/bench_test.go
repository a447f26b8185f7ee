package dm

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/internal/testnet"
)

// deliveries is an Emitter that passes the ids of delivered messages on.
type deliveries chan string

func (d deliveries) Emit(e events.Event) {
	if s, ok := e.(events.DMStatus); ok && s.State == events.DMDelivered {
		select {
		case d <- s.ID:
		default:
			panic("benchmark deliveries channel full")
		}
	}
}

// benchPair starts two connected dm services on loopback. With noSync the
// databases skip fsync, which isolates the protocol's own cost.
func benchPair(b *testing.B, noSync bool, capacity int) (*Service, *Service, deliveries) {
	b.Helper()
	hs := testnet.NewHosts(b, 2)
	testnet.Connect(b, hs[0], hs[1])
	done := make(deliveries, capacity)
	svc := func(h host.Host, em events.Emitter) *Service {
		db := testnet.TempDB(b)
		db.NoSync = noSync
		s, err := New(context.Background(), Config{
			Host: h, DB: db, Emitter: em, Logger: slog.New(slog.DiscardHandler),
			MaxPending: capacity + 1, PeerRate: 1e9, PeerBurst: 1 << 30,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s
	}
	return svc(hs[0], done), svc(hs[1], events.Discard), done
}

func waitDelivered(b *testing.B, done deliveries, n int) {
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for range n {
		select {
		case <-done:
		case <-timeout.C:
			b.Fatal("timed out waiting for deliveries")
		}
	}
}

// BenchmarkRoundTrip measures Send to acknowledged delivery of one
// message at a time (queue, sent and delivered are each one bbolt commit
// at the sender, the store one at the recipient).
func BenchmarkRoundTrip(b *testing.B) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(mode.name, func(b *testing.B) {
			a, r, done := benchPair(b, mode.noSync, 1)
			to := r.h.ID()
			for b.Loop() {
				if _, err := a.Send(context.Background(), to, "ping"); err != nil {
					b.Fatal(err)
				}
				waitDelivered(b, done, 1)
			}
		})
	}
}

// BenchmarkThroughput queues b.N messages at once and measures until all
// are acknowledged.
func BenchmarkThroughput(b *testing.B) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(mode.name, func(b *testing.B) {
			a, r, done := benchPair(b, mode.noSync, max(b.N, 1))
			to := r.h.ID()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if _, err := a.Send(context.Background(), to, fmt.Sprintf("message %d", i)); err != nil {
					b.Fatal(err)
				}
			}
			waitDelivered(b, done, b.N)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkBaselineStreamRoundTrip is the floor under RoundTrip: the same
// frames on a fresh stream to a handler that answers without storing.
func BenchmarkBaselineStreamRoundTrip(b *testing.B) {
	hs := testnet.NewHosts(b, 2)
	testnet.Connect(b, hs[0], hs[1])
	const proto = "/parley/dm-bench/0"
	hs[1].SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		var m pb.Message
		if err := pbframe.Read(bufio.NewReader(s), MaxFrameSize, &m); err != nil {
			_ = s.Reset()
			return
		}
		_ = pbframe.Write(s, &pb.Ack{Id: m.Id, Status: pb.Ack_STATUS_STORED})
	})
	msg := &pb.Message{Id: make([]byte, IDLen), Text: "ping", Nick: "bench", SentAtMs: time.Now().UnixMilli()}
	for b.Loop() {
		s, err := hs[0].NewStream(context.Background(), hs[1].ID(), proto)
		if err != nil {
			b.Fatal(err)
		}
		if err := pbframe.Write(s, msg); err != nil {
			b.Fatal(err)
		}
		var ack pb.Ack
		if err := pbframe.Read(bufio.NewReader(s), MaxAckSize, &ack); err != nil {
			b.Fatal(err)
		}
		_ = s.Close()
	}
}

// BenchmarkBaselineCommit is one fsynced bbolt commit on the same disk,
// the unit of the storage cost in RoundTrip/fsync.
func BenchmarkBaselineCommit(b *testing.B) {
	db := testnet.TempDB(b)
	key := []byte("k")
	for b.Loop() {
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("bench"))
			if err != nil {
				return err
			}
			return bk.Put(key, []byte("value"))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
