package dm

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/internal/testnet"
)

const waitFor = 15 * time.Second

// recorder is an Emitter that keeps every event for the test to inspect.
type recorder struct{ *testnet.Recorder }

func newRecorder() *recorder { return &recorder{testnet.NewRecorder(waitFor)} }

// all returns the events matching keep.
func (r *recorder) all(keep func(events.Event) bool) []events.Event { return r.Filter(keep) }

// wait returns the first event matching keep, waiting up to waitFor.
func (r *recorder) wait(t testing.TB, what string, keep func(events.Event) bool) events.Event {
	t.Helper()
	return r.Wait(t, what, keep)
}

func dms(r *recorder) []events.DM { return testnet.Events[events.DM](r.Recorder, nil) }

func isDM(e events.Event) bool { _, ok := e.(events.DM); return ok }

func status(id, state string) func(events.Event) bool {
	return func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.ID == id && s.State == state
	}
}

// statesOf returns the states a message went through: its dm_status
// events, without the ones that only say why it waits (Reason set, the
// state repeated).
func statesOf(r *recorder, id string) []string {
	var out []string
	for _, s := range testnet.Events(r.Recorder, func(s events.DMStatus) bool { return s.ID == id && s.Reason == "" }) {
		out = append(out, s.State)
	}
	return out
}

// node is a Parley peer for tests: a key, a database file, and (while
// running) a loopback host with a dm service. It can be stopped and
// started again with the same key and database.
type node struct {
	name   string
	key    crypto.PrivKey
	id     peer.ID
	dbPath string
	cfg    Config // template; Host, DB, Emitter are filled by start
	rec    *recorder

	db  *bolt.DB
	h   host.Host
	svc *Service
}

func testConfig() Config {
	return Config{
		RetryMin:      50 * time.Millisecond,
		RetryMax:      500 * time.Millisecond,
		DialTimeout:   3 * time.Second,
		StreamTimeout: 3 * time.Second,
		Logger:        slog.New(slog.DiscardHandler),
	}
}

func newNode(t testing.TB, name string, cfg Config) *node {
	t.Helper()
	sk := testnet.NewKey(t)
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Nick == nil {
		cfg.Nick = func() string { return name }
	}
	return &node{name: name, key: sk, id: id, dbPath: filepath.Join(t.TempDir(), "parley.db"), cfg: cfg}
}

// startHost starts the node's host (same key each time) and opens its
// database, without the dm service.
func (n *node) startHost(t testing.TB, opts ...libp2p.Option) {
	t.Helper()
	n.db = testnet.OpenDB(t, n.dbPath)
	n.h = testnet.NewHost(t, append([]libp2p.Option{libp2p.Identity(n.key)}, opts...)...)
	t.Cleanup(func() { n.stop(t) })
}

// startService starts the dm service on the running host; every start
// gets a fresh event recorder.
func (n *node) startService(t testing.TB) {
	t.Helper()
	cfg := n.cfg
	cfg.Host, cfg.DB = n.h, n.db
	n.rec = newRecorder()
	cfg.Emitter = n.rec
	svc, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%s: start dm service: %v", n.name, err)
	}
	n.svc = svc
}

func (n *node) start(t testing.TB, opts ...libp2p.Option) {
	t.Helper()
	n.startHost(t, opts...)
	n.startService(t)
}

// stop closes the service, the host and the database, in that order.
func (n *node) stop(t testing.TB) {
	t.Helper()
	if n.svc != nil {
		if err := n.svc.Close(); err != nil {
			t.Errorf("%s: close service: %v", n.name, err)
		}
		n.svc = nil
	}
	if n.h != nil {
		if err := n.h.Close(); err != nil {
			t.Errorf("%s: close host: %v", n.name, err)
		}
		n.h = nil
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			t.Errorf("%s: close db: %v", n.name, err)
		}
		n.db = nil
	}
}

func (n *node) send(t testing.TB, to *node, text string) string {
	t.Helper()
	id, err := n.svc.Send(context.Background(), to.id, text)
	if err != nil {
		t.Fatalf("%s: send to %s: %v", n.name, to.name, err)
	}
	return id
}

// eventually polls cond until it holds, for state that has no event.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testnet.Eventually(t, waitFor, what, cond)
}

// rawStream opens a dm stream from h to p, for playing a misbehaving or
// hand-written peer.
func rawStream(t testing.TB, h host.Host, p peer.ID) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		t.Fatalf("open raw stream: %v", err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	return s
}

// exchange writes m on s and reads the ack.
func exchange(t testing.TB, s network.Stream, br *bufio.Reader, m *pb.Message) *pb.Ack {
	t.Helper()
	_ = s.SetDeadline(time.Now().Add(waitFor))
	if err := pbframe.Write(s, m); err != nil {
		t.Fatalf("write message: %v", err)
	}
	var ack pb.Ack
	if err := pbframe.Read(br, MaxAckSize, &ack); err != nil {
		t.Fatalf("read ack: %v", err)
	}
	return &ack
}

// expectReset waits until the remote resets s (a read fails with
// something other than a clean end of stream).
func expectReset(t testing.TB, s network.Stream) {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(waitFor))
	_, err := io.Copy(io.Discard, s)
	if err == nil || errors.Is(err, io.EOF) || isTimeout(err) {
		t.Fatalf("stream not reset: err = %v", err)
	}
}

func newMsgID(t testing.TB) []byte {
	t.Helper()
	id := make([]byte, IDLen)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return id
}

func validMsg(t testing.TB, text string) *pb.Message {
	return &pb.Message{Id: newMsgID(t), Text: text, Nick: "raw", SentAtMs: time.Now().UnixMilli()}
}
