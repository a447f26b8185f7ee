package mailbox

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

const waitFor = 15 * time.Second

// chatPeer is a chat node for tests: key, database, and while running a
// loopback host with the dm service and a courier, wired like package
// node wires them.
type chatPeer struct {
	name   string
	key    crypto.PrivKey
	id     peer.ID
	dbPath string
	rec    *testnet.Recorder
	// eligible picks the holders of the peer's mailbox (default: all).
	eligible func(peer.ID) bool
	// peerRate, when set, is the dm service's PeerRate (and burst).
	peerRate float64

	db  *bolt.DB
	h   host.Host
	dm  *dm.Service
	cou *Courier
}

// forward passes events to the recorder and to the courier, as the
// node's event loop does.
type forward struct {
	rec *testnet.Recorder
	cou atomic.Pointer[Courier]
}

func (f *forward) Emit(e events.Event) {
	if c := f.cou.Load(); c != nil {
		c.Observe(e)
	}
	f.rec.Emit(e)
}

func newChatPeer(t testing.TB, name string) *chatPeer {
	key := testnet.NewKey(t)
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &chatPeer{name: name, key: key, id: id, dbPath: filepath.Join(t.TempDir(), "parley.db")}
}

func (c *chatPeer) start(t testing.TB) {
	t.Helper()
	c.db = testnet.OpenDB(t, c.dbPath)
	c.h = testnet.NewHost(t, libp2p.Identity(c.key))
	c.rec = testnet.NewRecorder(waitFor)
	fw := &forward{rec: c.rec}
	eligible := c.eligible
	if eligible == nil {
		eligible = func(peer.ID) bool { return true }
	}
	svc, err := dm.New(context.Background(), dm.Config{Host: c.h, DB: c.db, Emitter: fw,
		Logger: slog.New(slog.DiscardHandler), Nick: func() string { return c.name },
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second, DialTimeout: 2 * time.Second,
		PeerRate: c.peerRate, PeerBurst: int(c.peerRate)})
	if err != nil {
		t.Fatal(err)
	}
	c.dm = svc
	cou, err := New(context.Background(), Config{Host: c.h, DB: c.db, Key: c.key, Outbox: svc, Emitter: fw,
		Logger: slog.New(slog.DiscardHandler), Nick: func() string { return c.name },
		Eligible: eligible, RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		DialTimeout: 2 * time.Second, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.cou = cou
	fw.cou.Store(cou)
	t.Cleanup(func() { c.stop(t) })
}

func (c *chatPeer) stop(t testing.TB) {
	t.Helper()
	if c.cou != nil {
		_ = c.cou.Close()
		c.cou = nil
	}
	if c.dm != nil {
		_ = c.dm.Close()
		c.dm = nil
	}
	if c.h != nil {
		_ = c.h.Close()
		c.h = nil
	}
	if c.db != nil {
		_ = c.db.Close()
		c.db = nil
	}
}

// connectTo connects c to holder hh and waits until c's record names it.
func (c *chatPeer) connectTo(t testing.TB, hh host.Host) {
	t.Helper()
	testnet.Connect(t, c.h, hh)
	testnet.Eventually(t, waitFor, c.name+" names the holder", func() bool { return c.cou.isHolder(hh.ID()) })
}

func dmsFrom(r *testnet.Recorder, from peer.ID) []events.DM {
	return testnet.Events(r, func(e events.DM) bool { return e.From == from })
}

func TestOfflineDeliveryThroughHolder(t *testing.T) {
	hs, hh := startHolder(t, nil)
	alice, carol := newChatPeer(t, "alice"), newChatPeer(t, "carol")
	// Carol was online once with the holder: it keeps her record.
	carol.start(t)
	carol.connectTo(t, hh)
	testnet.Eventually(t, waitFor, "carol's record at the holder", func() bool { return hs.owner(carol.id) != nil })
	carol.stop(t)

	alice.start(t)
	alice.connectTo(t, hh)
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		id, err := alice.dm.Send(context.Background(), carol.id, fmt.Sprintf("note %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	alice.rec.WaitCount(t, "deposited", n, func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.Reason == events.DMWaitDeposited && s.Via == hh.ID().String()
	})
	alice.stop(t)

	carol.start(t)
	testnet.Connect(t, carol.h, hh)
	carol.rec.WaitCount(t, "dm", n, func(e events.Event) bool { _, ok := e.(events.DM); return ok })
	got := dmsFrom(carol.rec, alice.id)
	if len(got) != n {
		t.Fatalf("carol shows %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if m.ID != ids[i] || m.Text != fmt.Sprintf("note %d", i) || m.Via != hh.ID().String() || m.Nick != "alice" {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	testnet.Eventually(t, waitFor, "carol's deposits deleted", func() bool { return hs.Counters().Deleted >= n })

	// Alice comes back: the receipts mark every message delivered via the holder.
	alice.start(t)
	testnet.Connect(t, alice.h, hh)
	alice.rec.WaitCount(t, "delivered", n, func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.State == events.DMDelivered && s.Via == hh.ID().String()
	})
	if alice.dm.Pending() != 0 {
		t.Fatalf("%d messages still pending", alice.dm.Pending())
	}
	testnet.Eventually(t, waitFor, "the receipts are picked up", func() bool { c, _ := hs.Held(); return c == 0 })
}

func TestPickedUpThenDirectShowsOnce(t *testing.T) {
	hs, hh := startHolder(t, nil)
	alice, carol := newChatPeer(t, "alice"), newChatPeer(t, "carol")
	carol.start(t)
	carol.connectTo(t, hh)
	testnet.Eventually(t, waitFor, "carol's record at the holder", func() bool { return hs.owner(carol.id) != nil })
	carol.stop(t)
	alice.start(t)
	alice.connectTo(t, hh)
	const n = 5
	for i := range n {
		if _, err := alice.dm.Send(context.Background(), carol.id, fmt.Sprintf("note %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	alice.rec.WaitCount(t, "deposited", n, func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.Reason == events.DMWaitDeposited
	})
	// Alice stays; carol comes back connected to the holder, then alice
	// reaches her directly and retransmits: carol shows each message once,
	// alice sees each delivered once (directly or by receipt).
	carol.start(t)
	testnet.Connect(t, carol.h, hh)
	carol.rec.WaitCount(t, "dm", n, func(e events.Event) bool { _, ok := e.(events.DM); return ok })
	testnet.Connect(t, alice.h, carol.h)
	alice.rec.WaitCount(t, "delivered", n, func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.State == events.DMDelivered
	})
	testnet.Eventually(t, waitFor, "nothing pending", func() bool { return alice.dm.Pending() == 0 })
	if got := len(dmsFrom(carol.rec, alice.id)); got != n {
		t.Fatalf("carol shows %d messages, want %d", got, n)
	}
	delivered := map[string]int{}
	for _, s := range testnet.Events(alice.rec, func(s events.DMStatus) bool { return s.State == events.DMDelivered }) {
		delivered[s.ID]++
	}
	for id, k := range delivered {
		if k != 1 {
			t.Fatalf("%s delivered %d times", id, k)
		}
	}
}
