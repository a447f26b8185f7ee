package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/rooms"
	"github.com/parley-chat/parley/rooms/pb"
)

// The targets for a member back after missing SyncMissed
// messages: all of them within SyncTargetTime on loopback, the sync's
// traffic under SyncTargetRatio times the messages' own (signed) size.
const (
	SyncTargetTime  = 3 * time.Second
	SyncTargetRatio = 2
	// syncMembers is the room: the members that stay, and the one away.
	syncMembers = 4
	// syncWait bounds each wait of the scenario.
	syncWait = 60 * time.Second
)

// syncNode is one member of the sync scenario.
type syncNode struct {
	idx int
	key crypto.PrivKey
	dir string

	h   host.Host
	db  *bolt.DB
	svc *rooms.Service

	mu   sync.Mutex
	seen map[string]int // message text -> times shown; guarded by mu
	// caughtUp counts messages shown marked caught up; guarded by mu.
	caughtUp int
	changed  chan struct{} // closed and replaced on each message; guarded by mu
}

func (n *syncNode) count(prefix string) (distinct, shown int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for t, k := range n.seen {
		if strings.HasPrefix(t, prefix) {
			distinct++
			shown += k
		}
	}
	return distinct, shown
}

// waitCount waits until n showed want distinct messages with prefix.
func (n *syncNode) waitCount(ctx context.Context, prefix string, want int) error {
	deadline := time.NewTimer(syncWait)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		ch := n.changed
		n.mu.Unlock()
		if got, _ := n.count(prefix); got >= want {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			got, _ := n.count(prefix)
			return fmt.Errorf("member %d has %d of %d messages after %v", n.idx, got, want, syncWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (n *syncNode) start(ctx context.Context, counter *byteCounter, first bool) error {
	h, err := newHost(ctx, hostSpec{key: n.key, bw: counter})
	if err != nil {
		return err
	}
	db, err := bolt.Open(n.dir+".db", 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true})
	if err != nil {
		_ = h.Close()
		return fmt.Errorf("open store: %w", err)
	}
	nick := fmt.Sprintf("member%d", n.idx)
	svc, err := rooms.New(ctx, rooms.Config{
		Host: h, DB: db, Logger: discard, Nick: func() string { return nick },
		// Every member uses the same limits; these let three members post
		// a thousand lines in a few seconds.
		RateLimit: rate.Limit(2000), RateBurst: 2000,
		Emitter: events.EmitterFunc(func(e events.Event) {
			if m, ok := e.(events.Message); ok {
				n.mu.Lock()
				n.seen[m.Text]++
				if m.CaughtUp {
					n.caughtUp++
				}
				close(n.changed)
				n.changed = make(chan struct{})
				n.mu.Unlock()
			}
		}),
	})
	if err != nil {
		_ = db.Close()
		_ = h.Close()
		return fmt.Errorf("start rooms: %w", err)
	}
	n.h, n.db, n.svc = h, db, svc
	if first {
		if err := svc.Join(ctx, benchRoom); err != nil {
			n.stop()
			return fmt.Errorf("join room: %w", err)
		}
	}
	return nil
}

func (n *syncNode) stop() {
	if n.svc != nil {
		_ = n.svc.Close()
		_ = n.db.Close()
		_ = n.h.Close()
		n.svc, n.db, n.h = nil, nil, nil
	}
}

// signedBytes sums the signed bytes the store of n keeps for the room's
// messages with prefix: the messages' own size, what a sync must carry.
func (n *syncNode) signedBytes(prefix string) (int64, error) {
	var total int64
	err := n.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("rooms/history"))
		if b != nil {
			b = b.Bucket([]byte(rooms.PublicTopicPrefix + benchRoom))
		}
		if b == nil {
			return errors.New("no history bucket")
		}
		return b.ForEach(func(_, v []byte) error {
			var rec pb.StoredMessage
			if err := proto.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode history record: %w", err)
			}
			if strings.HasPrefix(rec.Text, prefix) {
				total += int64(len(rec.Signed))
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("read store: %w", err)
	}
	return total, nil
}

// Sync measures a member coming back after missing SyncMissed messages
// of a room of syncMembers (real TCP hosts on loopback): the time until
// it shows them all, and the bytes every member sent meanwhile, on the
// room sync and on every protocol, against the messages' own size.
func Sync(ctx context.Context, c Config) ([]Result, error) {
	cfg := c.withDefaults()
	dir, cleanup, err := scenarioDir(&cfg, ScenarioSync)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	counter := &byteCounter{}
	ns := make([]*syncNode, syncMembers)
	for i := range ns {
		key, err := newKey()
		if err != nil {
			return nil, err
		}
		ns[i] = &syncNode{idx: i, key: key, dir: filepath.Join(dir, fmt.Sprintf("m%d", i)), seen: make(map[string]int), changed: make(chan struct{})}
	}
	defer func() {
		for _, n := range ns {
			n.stop()
		}
	}()
	for _, n := range ns {
		if err := n.start(ctx, counter, true); err != nil {
			return nil, fmt.Errorf("member %d: %w", n.idx, err)
		}
	}
	if err := connectSync(ctx, ns); err != nil {
		return nil, err
	}
	// The room works: a first line reaches everyone.
	if _, err := ns[0].svc.Send(ctx, benchRoom, "warm"); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	for _, n := range ns[1:] {
		if err := n.waitCount(ctx, "warm", 1); err != nil {
			return nil, err
		}
	}
	away := ns[len(ns)-1]
	away.stop()
	stay := ns[:len(ns)-1]
	const prefix = "missed "
	for i := range cfg.SyncMissed {
		text := fmt.Sprintf("%s%0*d ", prefix, seqDigits, i)
		text += strings.Repeat("x", max(0, cfg.PayloadSize-len(text)))
		if _, err := stay[i%len(stay)].svc.Send(ctx, benchRoom, text); err != nil {
			return nil, fmt.Errorf("send line %d: %w", i, err)
		}
	}
	for _, n := range stay {
		if err := n.waitCount(ctx, prefix, cfg.SyncMissed); err != nil {
			return nil, err
		}
	}
	own, err := stay[0].signedBytes(prefix)
	if err != nil {
		return nil, err
	}
	// Let the publishing traffic end (GossipSub's gossip of the last
	// lines lasts 3 heartbeats).
	if err := sleepCtx(ctx, cfg.settleOr(4*time.Second)); err != nil {
		return nil, err
	}
	sync0, all0, ps0 := counter.syncOut.Load(), counter.out.Load(), counter.pubsubOut.Load()
	start := time.Now()
	if err := away.start(ctx, counter, false); err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	if err := connectSync(ctx, ns); err != nil {
		return nil, err
	}
	if err := away.waitCount(ctx, prefix, cfg.SyncMissed); err != nil {
		return nil, err
	}
	took := time.Since(start)
	syncBytes, allBytes, psBytes := counter.syncOut.Load()-sync0, counter.out.Load()-all0, counter.pubsubOut.Load()-ps0
	distinct, shown := away.count(prefix)
	away.mu.Lock()
	caught := away.caughtUp
	away.mu.Unlock()
	logf(cfg.Log, "sync: %d missed lines back in %v; sync %.1f KB, all protocols %.1f KB, GossipSub %.1f KB; messages' own size %.1f KB; %d shown (%d distinct), %d caught up",
		cfg.SyncMissed, took.Round(time.Millisecond), float64(syncBytes)/1e3, float64(allBytes)/1e3, float64(psBytes)/1e3, float64(own)/1e3, shown, distinct, caught)
	sc := fmt.Sprintf("sync/missed=%d", cfg.SyncMissed)
	const ownSize = "the messages' own signed size"
	return []Result{
		row(sc, "time to caught up, ms", ms(took), "target", ms(SyncTargetTime)).
			withTarget(fmt.Sprintf("< %v", SyncTargetTime), took < SyncTargetTime && distinct == cfg.SyncMissed && shown == distinct).
			withNote("from the member's restart (new host, rooms rejoined from its store, dials %d members) until it showed all %d lines; %d shown once each, %d marked caught up (the rest came by GossipSub's gossip)",
				len(stay), cfg.SyncMissed, shown, caught),
		row(sc, "room sync KB sent, all members", float64(syncBytes)/1e3, ownSize, float64(own)/1e3).
			withTarget(fmt.Sprintf("< %dx", SyncTargetRatio), float64(syncBytes) < SyncTargetRatio*float64(own)).
			withNote("both directions, history and member-set sessions; %d-byte texts (%.1f KB of text)", cfg.PayloadSize, float64(cfg.SyncMissed*cfg.PayloadSize)/1e3),
		row(sc, "KB sent on every protocol, all members", float64(allBytes)/1e3, ownSize, float64(own)/1e3).
			withNote("GossipSub %.1f KB of it; identify and the like too", float64(psBytes)/1e3),
	}, ctx.Err()
}

// connectSync connects every pair of members that are up.
func connectSync(ctx context.Context, ns []*syncNode) error {
	for i, a := range ns {
		for _, b := range ns[i+1:] {
			if a.h == nil || b.h == nil || len(a.h.Network().ConnsToPeer(b.h.ID())) > 0 {
				continue
			}
			if err := connect(ctx, a.h, b.h, 0); err != nil {
				return err
			}
		}
	}
	return nil
}
