package rooms

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

func TestReplayGuard(t *testing.T) {
	g := newReplayGuard(2)
	now := time.Now()
	k1 := replayKey{author: "a", id: [idSize]byte{1}}
	k2 := replayKey{author: "b", id: [idSize]byte{1}} // same id, other author
	k3 := replayKey{author: "a", id: [idSize]byte{3}}
	if ok, _ := g.mark(k1, now.Add(time.Minute), now); !ok {
		t.Fatal("first mark refused")
	}
	if ok, reason := g.mark(k1, now.Add(time.Minute), now); ok || reason != reasonReplay {
		t.Fatalf("duplicate: %v %s", ok, reason)
	}
	if !g.has(k1) || g.has(k2) {
		t.Fatal("has")
	}
	if ok, _ := g.mark(k2, now.Add(time.Second), now); !ok {
		t.Fatal("other author refused")
	}
	if ok, reason := g.mark(k3, now.Add(time.Minute), now); ok || reason != reasonReplayFull {
		t.Fatalf("full: %v %s", ok, reason)
	}
	// Once k2 expires there is room again.
	later := now.Add(2 * time.Second)
	if ok, _ := g.mark(k3, later.Add(time.Minute), later); !ok {
		t.Fatal("mark after expiry refused")
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
	if l.allow("t", b, false, now) {
		t.Fatal("limiter map over its bound accepted a new author")
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
