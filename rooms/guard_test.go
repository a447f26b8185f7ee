package rooms

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/internal/testnet"
)

func TestReplayGuard(t *testing.T) {
	g := newReplayGuard(2)
	now := time.Now()
	k1 := replayKey{author: "a", id: [idSize]byte{1}}
	k2 := replayKey{author: "b", id: [idSize]byte{1}} // same id, other author
	k3 := replayKey{author: "a", id: [idSize]byte{3}}
	if ok, _ := g.mark(k1, "t", now.Add(time.Minute), now); !ok {
		t.Fatal("first mark refused")
	}
	if ok, reason := g.mark(k1, "t", now.Add(time.Minute), now); ok || reason != reasonReplay {
		t.Fatalf("duplicate: %v %s", ok, reason)
	}
	if !g.has(k1) || g.has(k2) {
		t.Fatal("has")
	}
	if ok, _ := g.mark(k2, "t", now.Add(time.Second), now); !ok {
		t.Fatal("other author refused")
	}
	if ok, reason := g.mark(k3, "t", now.Add(time.Minute), now); ok || reason != reasonReplayFull {
		t.Fatalf("full: %v %s", ok, reason)
	}
	// Once k2 expires there is room again.
	later := now.Add(2 * time.Second)
	if ok, _ := g.mark(k3, "t", later.Add(time.Minute), later); !ok {
		t.Fatal("mark after expiry refused")
	}
	// The bound is per topic: a full topic leaves the others alone, and a
	// pair stays unique across topics.
	k4 := replayKey{author: "c", id: [idSize]byte{4}}
	if ok, reason := g.mark(k4, "t", later.Add(time.Minute), later); ok || reason != reasonReplayFull {
		t.Fatalf("full topic: %v %s", ok, reason)
	}
	if ok, reason := g.mark(k4, "other", later.Add(time.Minute), later); !ok {
		t.Fatalf("other topic refused while t is full: %s", reason)
	}
	if ok, reason := g.mark(k1, "other", later.Add(time.Minute), later); ok || reason != reasonReplay {
		t.Fatalf("pair seen on t accepted on other: %v %s", ok, reason)
	}
	if n := g.prune(now.Add(time.Hour)); n != 0 {
		t.Fatalf("%d records after prune", n)
	}
}

func TestLimiters(t *testing.T) {
	l := newLimiters(rate.Limit(1), 2, 3)
	now := time.Now()
	a, b := peer.ID("a"), peer.ID("b")
	for i, want := range []bool{true, true, false} {
		if got := l.allow("t", a, false, now); got != want {
			t.Fatalf("chat %d: %v", i, got)
		}
	}
	if !l.allow("t", a, true, now) || !l.allow("t2", a, false, now) {
		t.Fatal("presence or other room shares the chat bucket")
	}
	if !l.allow("t", "c", false, now) { // t's third bucket: its bound
		t.Fatal("third author in t refused")
	}
	if l.allow("t", b, false, now) {
		t.Fatal("limiter map over its bound accepted a new author")
	}
	if !l.allow("t3", b, false, now) {
		t.Fatal("a full topic refused a new author in another topic")
	}
	if !l.allow("t", a, false, now.Add(time.Second)) {
		t.Fatal("no refill")
	}
	l.prune(now.Add(time.Hour))
	if !l.allow("t", b, false, now.Add(time.Hour)) {
		t.Fatal("pruned map still full")
	}
}

func TestConfigDefaults(t *testing.T) {
	base := Config{Host: nil}
	if _, err := base.withDefaults(); err == nil {
		t.Fatal("missing host accepted")
	}
	n := newNode(t, "x", nil)
	good := Config{Host: n.h, DB: n.db, Nick: func() string { return "x" }}
	c, err := good.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.PresenceInterval != DefaultPresenceInterval || c.RateBurst != DefaultRateBurst || c.Emitter == nil || c.Logger == nil {
		t.Fatalf("defaults not applied: %+v", c)
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.PresenceInterval = -time.Second },
		func(c *Config) { c.PresenceTimeout = time.Second; c.PresenceInterval = time.Minute },
		func(c *Config) { c.RateBurst = -1 },
		func(c *Config) { c.DB = nil },
		func(c *Config) { c.Nick = nil },
	} {
		bad := good
		mod(&bad)
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// Replay records keep their topic in the store; records from before the
// topic was kept (8-byte values) still load; pruning the store keeps
// unexpired records of both forms.
func TestReplayStoreFormats(t *testing.T) {
	db := testnet.TempDB(t)
	if err := ensureBuckets(db); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	kNew := replayKey{author: "a", id: [idSize]byte{1}}
	kOld := replayKey{author: "b", id: [idSize]byte{2}}
	kGone := replayKey{author: "c", id: [idSize]byte{3}}
	err := db.Update(func(tx *bolt.Tx) error {
		if err := putReplay(tx, kNew, "parley/room/1/public/x", now.Add(time.Minute)); err != nil {
			return err
		}
		if err := putReplay(tx, kGone, "parley/room/1/public/x", now.Add(-time.Minute)); err != nil {
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(now.Add(time.Minute).UnixMilli()))
		return tx.Bucket(bucketReplay).Put(replayStoreKey(kOld), v[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pruneReplayStore(db, now); err != nil {
		t.Fatal(err)
	}
	g := newReplayGuard(10)
	if err := loadReplay(db, g, now); err != nil {
		t.Fatal(err)
	}
	if !g.has(kNew) || !g.has(kOld) || g.has(kGone) {
		t.Fatalf("loaded new=%v old=%v expired=%v", g.has(kNew), g.has(kOld), g.has(kGone))
	}
	if g.count["parley/room/1/public/x"] != 1 || g.count[""] != 1 {
		t.Fatalf("per-topic counts %v", g.count)
	}
}
