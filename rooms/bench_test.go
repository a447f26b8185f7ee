package rooms

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
)

const (
	benchNodes   = 20
	benchTimeout = 5 * time.Second
)

// BenchmarkRoomDelivery sends b.N messages, one at a time from rotating
// senders, in a 20-node room on a mock network (six neighbours each), and
// reports the delivery latency to the other 19 members (p50, p99) and the
// share of deliveries that arrived within 5s. The baseline is plain
// GossipSub (StrictSign, no validator, no storage) on the same topology;
// rooms-public-nofsync opens the databases without fsync to show what
// storage costs.
//
//	go test ./rooms -run XXX -bench RoomDelivery -benchtime 200x
func BenchmarkRoomDelivery(b *testing.B) {
	b.Run("pubsub-baseline", func(b *testing.B) {
		hs := newMockHosts(b, benchNodes)
		arr := newArrivals(benchNodes)
		watch := newMeshWatch()
		ctx, cancel := context.WithCancel(context.Background())
		topics := make([]*pubsub.Topic, benchNodes)
		for i, h := range hs {
			ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
				pubsub.WithRawTracer(watch.tracer(i)))
			if err != nil {
				b.Fatal(err)
			}
			if topics[i], err = ps.Join("bench"); err != nil {
				b.Fatal(err)
			}
			sub, err := topics[i].Subscribe()
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				for {
					m, err := sub.Next(ctx)
					if err != nil {
						return
					}
					arr.record(i, string(m.Data), time.Now())
				}
			}()
		}
		b.Cleanup(cancel)
		watch.wait(b, benchNodes, 4)
		runDelivery(b, func(i int, text string) []time.Duration {
			return sendAndWait(b, arr, i, text, benchTimeout, func(ctx context.Context) error {
				return topics[i].Publish(ctx, []byte(text))
			})
		})
	})
	for _, v := range []struct {
		name            string
		private, noSync bool
	}{
		{"rooms-public-nofsync", false, true},
		{"rooms-public", false, false},
		{"rooms-private", true, false},
	} {
		b.Run(v.name, func(b *testing.B) {
			sw := newRoomSwarm(b, benchNodes, v.private, v.noSync)
			runDelivery(b, func(i int, text string) []time.Duration {
				return sw.send(b, i, text, benchTimeout)
			})
		})
	}
}

func runDelivery(b *testing.B, send func(i int, text string) []time.Duration) {
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		lat = append(lat, send(i%benchNodes, fmt.Sprintf("bench message %d", i))...)
	}
	b.StopTimer()
	want := b.N * (benchNodes - 1)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/float64(want), "delivered")
}
