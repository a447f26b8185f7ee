package transfer

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 30 * time.Second

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testLogger logs to stderr at debug level when PARLEY_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") == "" {
		return discardLogger()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// recorder is an Emitter that keeps every event.
type recorder struct{ *testnet.Recorder }

func newRecorder() *recorder { return &recorder{testnet.NewRecorder(waitTimeout)} }

// wait returns the first event (ever recorded) that matches.
func (r *recorder) wait(tb testing.TB, what string, match func(events.Event) bool) events.Event {
	tb.Helper()
	return r.Wait(tb, what, match)
}

// find returns the first recorded event of type T for transfer id.
func find[T events.Event](r *recorder, id string) (T, bool) {
	evs := testnet.Events(r.Recorder, func(ev T) bool { return eventID(ev) == id })
	if len(evs) == 0 {
		var zero T
		return zero, false
	}
	return evs[0], true
}

func waitFor[T events.Event](tb testing.TB, r *recorder, id string) T {
	tb.Helper()
	return testnet.WaitEvent(tb, r.Recorder, func(ev T) bool { return eventID(ev) == id })
}

func eventID(e events.Event) string {
	switch ev := e.(type) {
	case events.FileOffer:
		return ev.TransferID
	case events.FileProgress:
		return ev.TransferID
	case events.FileDone:
		return ev.TransferID
	case events.FileFailed:
		return ev.TransferID
	case events.FileRejected:
		return ev.TransferID
	}
	return ""
}

// node is one Parley node for transfer tests: a loopback host, a store
// and a Service, which restart keeps the key, store and directories of.
type node struct {
	tb       testing.TB
	key      crypto.PrivKey
	dbPath   string
	dir      string // downloads
	opts     []func(*Config)
	hostOpts []libp2p.Option
	rec      *recorder

	h   host.Host
	db  *bolt.DB
	svc *Service
}

func newNode(tb testing.TB, opts ...func(*Config)) *node {
	tb.Helper()
	return newNodeWith(tb, nil, opts...)
}

// newNodeWith is newNode with extra host options (for example QUIC).
func newNodeWith(tb testing.TB, hostOpts []libp2p.Option, opts ...func(*Config)) *node {
	tb.Helper()
	return newNodeIn(tb, tb.TempDir(), hostOpts, opts...)
}

// newNodeIn is newNodeWith keeping the store and downloads under base.
func newNodeIn(tb testing.TB, base string, hostOpts []libp2p.Option, opts ...func(*Config)) *node {
	tb.Helper()
	n := &node{tb: tb, key: testnet.NewKey(tb), dbPath: filepath.Join(base, "parley.db"),
		dir: filepath.Join(base, "downloads"), opts: opts, hostOpts: hostOpts, rec: newRecorder()}
	n.start()
	return n
}

func (n *node) start() {
	n.tb.Helper()
	n.h = testnet.NewHost(n.tb, append([]libp2p.Option{libp2p.Identity(n.key)}, n.hostOpts...)...)
	n.db = testnet.OpenDB(n.tb, n.dbPath)
	cfg := Config{
		Host: n.h, DB: n.db, Emitter: n.rec, Logger: testLogger(), DownloadDir: n.dir,
		ChunkSize: MinChunkSize, RetryBackoff: 20 * time.Millisecond,
		ProgressInterval: minProgressInterval, IdleTimeout: 10 * time.Second, ControlTimeout: 5 * time.Second,
	}
	for _, o := range n.opts {
		o(&cfg)
	}
	svc, err := New(context.Background(), cfg)
	if err != nil {
		n.tb.Fatal(err)
	}
	n.svc = svc
	n.tb.Cleanup(n.stop) // after each start: runs before that start's db is closed
}

// stop closes the service, the host and the store, like a process exit.
func (n *node) stop() {
	if n.svc == nil {
		return
	}
	if err := n.svc.Close(); err != nil {
		n.tb.Errorf("close service: %v", err)
	}
	_ = n.h.Close()
	if err := n.db.Close(); err != nil {
		n.tb.Errorf("close db: %v", err)
	}
	n.svc = nil
}

// info returns the List entry of transfer id (not a share record).
func (n *node) info(id string) Info {
	for _, in := range n.svc.List() {
		if in.ID == id && in.State != StateShared {
			return in
		}
	}
	return Info{}
}

// downloads lists the names in the downloads dir.
func (n *node) downloads() []string {
	ents, err := os.ReadDir(n.dir)
	if err != nil {
		n.tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// writeFile creates a file of size pseudo-random bytes.
func writeFile(tb testing.TB, dir, name string, size int64) (string, []byte) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(uint64(size), uint64(len(name))))
	data := make([]byte, size)
	for i := 0; i+8 <= len(data); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(data) &^ 7; i < len(data); i++ {
		data[i] = byte(rng.Uint32())
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path, data
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// pollUntil polls cond until it holds or waitTimeout passes; only for
// conditions no event announces.
func pollUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	testnet.Eventually(tb, waitTimeout, what, cond)
}

// noPartFiles fails when a .part file is left in dir.
func noPartFiles(tb testing.TB, n *node) {
	tb.Helper()
	for _, name := range n.downloads() {
		if strings.HasSuffix(name, partSuffix) {
			tb.Fatalf("part file left behind: %s (all: %v)", name, n.downloads())
		}
	}
}

// chunkCounter counts chunks written by a sender, per index.
type chunkCounter struct {
	mu    sync.Mutex
	count map[int]int
}

func (c *chunkCounter) add(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.count == nil {
		c.count = map[int]int{}
	}
	c.count[i]++
}

func (c *chunkCounter) get(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[i]
}

func (c *chunkCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.count {
		n += v
	}
	return n
}
