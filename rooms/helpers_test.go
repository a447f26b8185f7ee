package rooms

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 15 * time.Second

// broadcastLog is an append-only log whose readers can wait for an entry
// (testnet.Log, waits bounded by waitTimeout).
type broadcastLog[T any] struct{ *testnet.Log[T] }

func newLog[T any]() *broadcastLog[T] {
	return &broadcastLog[T]{testnet.NewLog[T](waitTimeout)}
}

func (l *broadcastLog[T]) add(v T) { l.Add(v) }

func (l *broadcastLog[T]) all() []T { return l.All() }

// wait returns the first entry matching pred, waiting at most waitTimeout.
func (l *broadcastLog[T]) wait(t testing.TB, what string, pred func(T) bool) T {
	t.Helper()
	return l.Wait(t, what, pred)
}

// waitCount waits until at least k entries match pred.
func (l *broadcastLog[T]) waitCount(t testing.TB, what string, k int, pred func(T) bool) {
	t.Helper()
	l.WaitCount(t, what, k, pred)
}

func (l *broadcastLog[T]) count(pred func(T) bool) int { return l.Count(pred) }

type verdictEntry struct {
	topic string
	from  peer.ID
	v     verdict
}

// tnode is one test node: a loopback host, a database and a service.
type tnode struct {
	t        testing.TB
	key      crypto.PrivKey
	h        host.Host
	dbPath   string
	db       *bolt.DB
	svc      *Service
	events   *broadcastLog[events.Event]
	verdicts *broadcastLog[verdictEntry]
	nick     atomic.Pointer[string]
	cfg      Config
	shares   *broadcastLog[FileShare]
	// ctx is passed to New; nil means context.Background().
	ctx context.Context
}

var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// testConfig shortens the timers.
func testConfig() Config {
	return Config{
		PresenceInterval: 300 * time.Millisecond,
		PresenceTimeout:  5 * time.Second,
		MeshWait:         3 * time.Second,
		Logger:           testLogger,
	}
}

func newNode(t testing.TB, nick string, mod func(*Config)) *tnode {
	t.Helper()
	return newNodeCtx(t, nil, nick, mod)
}

// newNodeCtx is newNode with the context given to New (nil:
// context.Background()).
func newNodeCtx(t testing.TB, ctx context.Context, nick string, mod func(*Config)) *tnode {
	t.Helper()
	key := testnet.NewKey(t)
	n := &tnode{
		t:        t,
		key:      key,
		dbPath:   filepath.Join(t.TempDir(), "parley.db"),
		events:   newLog[events.Event](),
		verdicts: newLog[verdictEntry](),
		shares:   newLog[FileShare](),
		cfg:      testConfig(),
		ctx:      ctx,
	}
	n.setNick(nick)
	if mod != nil {
		mod(&n.cfg)
	}
	n.h = testnet.NewHost(t, libp2p.Identity(key))
	n.openDB()
	n.start()
	return n
}

func (n *tnode) setNick(nick string) { n.nick.Store(&nick) }

func (n *tnode) id() peer.ID { return n.h.ID() }

func (n *tnode) openDB() {
	n.db = testnet.OpenDB(n.t, n.dbPath)
}

func (n *tnode) start() {
	n.t.Helper()
	cfg := n.cfg
	cfg.Host, cfg.DB = n.h, n.db
	cfg.Emitter = events.EmitterFunc(func(e events.Event) {
		if fs, ok := e.(FileShared); ok {
			n.shares.add(fs.Share)
			return
		}
		n.events.add(e)
	})
	cfg.Nick = func() string { return *n.nick.Load() }
	cfg.testHookVerdict = func(topic string, from peer.ID, v verdict) {
		n.verdicts.add(verdictEntry{topic, from, v})
	}
	ctx := n.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	svc, err := New(ctx, cfg)
	if err != nil {
		n.t.Fatalf("new service: %v", err)
	}
	n.svc = svc
	n.t.Cleanup(func() { _ = svc.Close() })
}

// restart closes the service, database and host, and starts them again
// with the same identity and database file, as a process restart would.
func (n *tnode) restart() {
	n.t.Helper()
	if err := n.svc.Close(); err != nil {
		n.t.Fatal(err)
	}
	if err := n.db.Close(); err != nil {
		n.t.Fatal(err)
	}
	_ = n.h.Close()
	n.h = testnet.NewHost(n.t, libp2p.Identity(n.key))
	n.openDB()
	n.start()
}

func (n *tnode) messages() []events.Message {
	var out []events.Message
	for _, e := range n.events.all() {
		if m, ok := e.(events.Message); ok {
			out = append(out, m)
		}
	}
	return out
}

func (n *tnode) waitMessage(text string) events.Message {
	n.t.Helper()
	e := n.events.wait(n.t, "message "+text, func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && m.Text == text
	})
	return e.(events.Message)
}

func (n *tnode) waitVerdict(what string, pred func(verdictEntry) bool) verdictEntry {
	n.t.Helper()
	return n.verdicts.wait(n.t, what, pred)
}

func (n *tnode) topicOf(room string) string {
	n.t.Helper()
	r, err := n.svc.joined(room)
	if err != nil {
		n.t.Fatal(err)
	}
	return r.topicName
}

// connect links every pair of nodes.
func connect(t testing.TB, ns ...*tnode) {
	t.Helper()
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			testnet.Connect(t, ns[i].h, ns[j].h)
		}
	}
}

// waitTopicPeers polls (nothing to await from outside the service) until
// every node sees every other node on room's topic.
func waitTopicPeers(t testing.TB, room string, ns ...*tnode) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for _, n := range ns {
		r, err := n.svc.joined(room)
		if err != nil {
			t.Fatal(err)
		}
		for len(r.topic.ListPeers()) < len(ns)-1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d peers on %s, want %d", n.id(), len(r.topic.ListPeers()), room, len(ns)-1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitPeerOnTopic polls until every node sees p on room's topic.
func waitPeerOnTopic(t testing.TB, p peer.ID, room string, ns ...*tnode) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for _, n := range ns {
		r, err := n.svc.joined(room)
		if err != nil {
			t.Fatal(err)
		}
		testnet.WaitTopicPeers(t, r.topic, time.Until(deadline), p)
	}
}

// rawTopic joins topic on n's pubsub without the rooms validator (as a
// non-member or an attacker would) and waits until peer is on it.
func rawTopic(t testing.TB, n *tnode, topic string, peers ...peer.ID) *pubsub.Topic {
	t.Helper()
	tp, err := n.svc.ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	testnet.WaitTopicPeers(t, tp, waitTimeout, peers...)
	return tp
}

// injectRPC writes raw pubsub messages to peer "to" on a fresh GossipSub
// stream from h, bypassing h's own pubsub (and its signing).
func injectRPC(t testing.TB, h host.Host, to peer.ID, msgs ...*pubsubpb.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, to, pubsub.GossipSubID_v11)
	if err != nil {
		t.Fatalf("open raw gossipsub stream: %v", err)
	}
	defer s.Close()
	b, err := proto.Marshal(&pubsubpb.RPC{Publish: msgs})
	if err != nil {
		t.Fatal(err)
	}
	if err := msgio.NewVarintWriter(s).WriteMsg(b); err != nil {
		t.Fatalf("write raw rpc: %v", err)
	}
}

// wireEnvelope builds envelope bytes for raw publishing.
func wireEnvelope(t testing.TB, mut func(*envelope)) []byte {
	t.Helper()
	e, err := newEnvelope(1, "mallory", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.text = "raw hello"
	if mut != nil {
		mut(&e)
	}
	b, err := e.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publishRaw(t testing.TB, tp *pubsub.Topic, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := tp.Publish(ctx, data); err != nil {
		t.Fatalf("raw publish: %v", err)
	}
}

// sameLine reports whether a and b are the same line with the same
// fields, whichever way each came: the room sync may bring a line before
// gossip does, and marks it caught_up.
func sameLine(a, b events.Message) bool {
	a.CaughtUp, b.CaughtUp = false, false
	return a == b
}
