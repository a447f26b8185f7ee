package transfer

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
)

// swarmChunks is the size of the files of the swarm tests, in chunks.
const swarmChunks = 64

// heldLog records Config.Held calls.
type heldLog struct {
	mu    sync.Mutex
	calls []Share
	rooms []string
}

func (h *heldLog) held(room string, sh Share) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls, h.rooms = append(h.calls, sh), append(h.rooms, room)
}

func (h *heldLog) get() ([]Share, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Share(nil), h.calls...), append([]string(nil), h.rooms...)
}

// fetchAndWait makes n fetch sh as announced by every holder in from,
// all connected to n, and waits for the outcome.
func fetchAndWait(tb testing.TB, n *node, sh Share, from ...*node) (Result, error) {
	tb.Helper()
	for _, h := range from {
		testnet.Connect(tb, n.h, h.h)
		if err := n.svc.AddRemoteShare("team", h.h.ID(), sh); err != nil {
			tb.Fatal(err)
		}
	}
	if err := n.svc.Fetch(ctxT(tb), sh.ID); err != nil {
		tb.Fatal(err)
	}
	return n.svc.Wait(ctxT(tb), sh.ID)
}

// checkFile fails unless res is the whole of data.
func checkFile(tb testing.TB, res Result, sh Share, data []byte) {
	tb.Helper()
	got, err := os.ReadFile(res.Path)
	if err != nil {
		tb.Fatal(err)
	}
	if string(got) != string(data) || res.Hash != sh.Hash {
		tb.Fatal("fetched file differs")
	}
}

// swarmOf shares a file of swarmChunks chunks from a new node and makes
// extra more nodes holders by fetching it. opts[i] configures holder i
// (0: the sharer).
func swarmOf(t *testing.T, extra int, opts ...func(*Config)) ([]*node, Share, []byte, []*heldLog) {
	t.Helper()
	nodes := make([]*node, extra+1)
	logs := make([]*heldLog, extra+1)
	for i := range nodes {
		logs[i] = new(heldLog)
		o := []func(*Config){func(c *Config) { c.Held = logs[i].held }}
		if i < len(opts) && opts[i] != nil {
			o = append(o, opts[i])
		}
		nodes[i] = newNode(t, o...)
	}
	path, data := writeFile(t, t.TempDir(), "swarm.bin", swarmChunks*MinChunkSize-3)
	sh, err := nodes[0].svc.Share(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes[1:] {
		res, err := fetchAndWait(t, n, sh, nodes[0])
		if err != nil {
			t.Fatalf("holder %d: %v", i+1, err)
		}
		checkFile(t, res, sh, data)
		calls, rooms := logs[i+1].get()
		if len(calls) != 1 || calls[0] != sh || rooms[0] != "team" {
			t.Fatalf("holder %d: Held calls %v in %v, want %v in team", i+1, calls, rooms, sh)
		}
	}
	return nodes, sh, data, logs
}

// barrier holds every holder's first chunk for a fetch until each holder has
// been asked for one, so that the fetch is seen to use them all; bounded
// by waitTimeout.
type barrier struct {
	all  chan struct{}
	left atomic.Int32
	once []sync.Once
}

func newBarrier(n int) *barrier {
	g := &barrier{all: make(chan struct{}), once: make([]sync.Once, n)}
	g.left.Store(int32(n))
	return g
}

func (g *barrier) hook(k int) func(string, int, []byte) error {
	return func(string, int, []byte) error {
		g.once[k].Do(func() {
			if g.left.Add(-1) == 0 {
				close(g.all)
			}
		})
		select {
		case <-g.all:
		case <-time.After(waitTimeout):
		}
		return nil
	}
}

// A share is pulled from every holder at once: the sharer and two members
// that fetched it before; each serves chunks, and the file verifies.
func TestSwarmFetchesFromEveryHolder(t *testing.T) {
	var armed atomic.Pointer[barrier]
	opt := func(k int) func(*Config) {
		return func(c *Config) {
			c.hooks.beforeChunk = func(id string, i int, data []byte) error {
				if g := armed.Load(); g != nil {
					return g.hook(k)(id, i, data)
				}
				return nil
			}
		}
	}
	nodes, sh, data, _ := swarmOf(t, 2, opt(0), opt(1), opt(2))
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		before[i] = n.svc.chunksSent.Load()
	}
	armed.Store(newBarrier(len(nodes)))
	d := newNode(t)
	res, err := fetchAndWait(t, d, sh, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res, sh, data)
	total := int64(0)
	for i, n := range nodes {
		sent := n.svc.chunksSent.Load() - before[i]
		if sent == 0 {
			t.Errorf("holder %d served no chunk", i)
		}
		total += sent
	}
	// Each chunk once, but for endgame copies: a holder that looked slow
	// (this machine's load) may have had a chunk asked of another too.
	if total < swarmChunks || total > swarmChunks+swarmChunks/4 {
		t.Errorf("holders sent %d chunks in all, want %d (up to a quarter more in the endgame)", total, swarmChunks)
	}
	// Progress events said how many holders were serving.
	most := 0
	for _, ev := range testnet.Events(d.rec.Recorder, func(ev events.FileProgress) bool { return ev.TransferID == sh.ID }) {
		most = max(most, ev.Holders)
	}
	if most != len(nodes) {
		t.Errorf("file_progress holders reached %d, want %d", most, len(nodes))
	}
	// The new holder's announcement adds no offer at a member that holds
	// the share; one with other contents is refused.
	b := nodes[1]
	if err := b.svc.AddRemoteShare("team", d.h.ID(), sh); err != nil {
		t.Fatal(err)
	}
	if n := len(testnet.Events(b.rec.Recorder, func(ev events.FileOffer) bool { return ev.TransferID == sh.ID })); n != 1 {
		t.Errorf("%d file_offer events at a holder, want 1", n)
	}
	other := sh
	other.Size++
	if err := b.svc.AddRemoteShare("team", d.h.ID(), other); !errors.Is(err, ErrConflict) {
		t.Errorf("conflicting announcement = %v, want ErrConflict", err)
	}
	if err := b.svc.AddRemoteShare("elsewhere", d.h.ID(), sh); !errors.Is(err, ErrConflict) {
		t.Errorf("announcement in another room = %v, want ErrConflict", err)
	}
}

// A holder that leaves mid-way costs only its share: its chunks come
// from the others and the fetch completes.
func TestSwarmHolderLeavesMidway(t *testing.T) {
	var (
		armed   atomic.Bool
		sent    atomic.Int32
		reached = make(chan struct{})
		release = make(chan struct{})
	)
	leaver := func(c *Config) {
		c.hooks.beforeChunk = func(string, int, []byte) error {
			if !armed.Load() || sent.Add(1) != 3 {
				return nil
			}
			close(reached)
			select {
			case <-release:
			case <-time.After(waitTimeout):
			}
			return errors.New("gone")
		}
	}
	nodes, sh, data, _ := swarmOf(t, 2, nil, nil, leaver)
	armed.Store(true)
	d := newNode(t)
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := fetchAndWait(t, d, sh, nodes...)
		done <- outcome{res, err}
	}()
	select {
	case <-reached:
	case <-time.After(waitTimeout):
		t.Fatal("the leaving holder was never asked for 3 chunks")
	}
	c := nodes[2]
	if err := c.h.Close(); err != nil {
		t.Fatal(err)
	}
	close(release)
	var o outcome
	select {
	case o = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("fetch did not end")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	checkFile(t, o.res, sh, data)
}

// A holder that sends chunks that do not match is dropped, its chunks
// come from the others, and the file verifies.
func TestSwarmLyingHolderDropped(t *testing.T) {
	var armed atomic.Bool
	liar := func(c *Config) {
		c.hooks.beforeChunk = func(_ string, _ int, data []byte) error {
			if armed.Load() {
				data[0] ^= 0xff
			}
			return nil
		}
	}
	nodes, sh, data, _ := swarmOf(t, 2, nil, liar, nil)
	armed.Store(true)
	d := newNode(t)
	res, err := fetchAndWait(t, d, sh, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res, sh, data)
	tr, err := d.svc.resolve(sh.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.svc.mu.Lock()
	liars := tr.liars
	d.svc.mu.Unlock()
	if !liars[nodes[1].h.ID()] || len(liars) != 1 {
		t.Fatalf("liars = %v, want only holder 1 (%s)", liars, nodes[1].h.ID())
	}
	// Once every holder lies, the fetch fails: nothing unverified counts.
	e := newNode(t)
	_, err = fetchAndWait(t, e, sh, nodes[1])
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("fetch from a liar only = %v, want ErrVerify", err)
	}
	pollUntil(t, "part file removed", func() bool { return len(e.downloads()) == 0 })
}

// addHolder keeps the sharer and the most recent others.
func TestAddHolderBounded(t *testing.T) {
	rs := remoteShare{holders: []peer.ID{"sharer"}}
	for i := range maxHolders + 5 {
		addHolder(&rs, peer.ID(rune('a'+i)))
	}
	if len(rs.holders) != maxHolders || rs.holders[0] != "sharer" || rs.holders[maxHolders-1] != peer.ID(rune('a'+maxHolders+4)) {
		t.Fatalf("holders = %v", rs.holders)
	}
	if addHolder(&rs, "sharer") {
		t.Fatal("sharer added twice")
	}
}

// A holder's upload progress counts the bytes it sent to the fetcher:
// a holder serving part of a swarm fetch shows that part, never the
// whole file at once.
func TestSwarmUploadProgressCountsSent(t *testing.T) {
	var armed atomic.Pointer[barrier]
	var mu sync.Mutex
	sentBy := make([]int64, 3) // bytes each holder sent while armed
	opt := func(k int) func(*Config) {
		return func(c *Config) {
			c.hooks.beforeChunk = func(id string, i int, data []byte) error {
				g := armed.Load()
				if g == nil {
					return nil
				}
				mu.Lock()
				sentBy[k] += int64(len(data))
				mu.Unlock()
				return g.hook(k)(id, i, data)
			}
		}
	}
	nodes, sh, data, _ := swarmOf(t, 2, opt(0), opt(1), opt(2))
	armed.Store(newBarrier(len(nodes)))
	d := newNode(t)
	res, err := fetchAndWait(t, d, sh, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res, sh, data)
	mu.Lock()
	defer mu.Unlock()
	total := int64(0)
	for k, n := range nodes {
		sent := sentBy[k]
		total += sent
		if sent == 0 || sent >= sh.Size {
			t.Errorf("holder %d sent %d of %d bytes, want a part", k, sent, sh.Size)
		}
		n.svc.mu.Lock()
		u := n.svc.uploads[uploadKey{sh.ID, d.h.ID()}]
		var got int64
		if u != nil {
			got = u.bytes
		}
		n.svc.mu.Unlock()
		if u == nil || got != sent {
			t.Errorf("holder %d: upload progress %d, want the %d bytes it sent", k, got, sent)
		}
		for _, ev := range testnet.Events(n.rec.Recorder, func(ev events.FileProgress) bool {
			return ev.TransferID == sh.ID && ev.Peer == d.h.ID() && ev.Direction == string(Send)
		}) {
			if ev.Bytes > sent || ev.Size != sh.Size {
				t.Errorf("holder %d: file_progress %d/%d, more than the %d bytes it sent", k, ev.Bytes, ev.Size, sent)
			}
		}
	}
	if total < sh.Size || total > sh.Size+sh.Size/4 {
		t.Errorf("holders sent %d bytes in all, want %d (up to a quarter more in the endgame)", total, sh.Size)
	}
}

// A member that fetched a share serves it again after a restart, and
// announces it again (AnnounceHeld), while the file is as it was; a file
// changed while the node was stopped is no longer served.
func TestSwarmHoldingSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change bool
	}{
		{"unchanged", false},
		{"changed while stopped", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, sh, data, logs := swarmOf(t, 1)
			b := nodes[1]
			names := b.downloads()
			if len(names) != 1 {
				t.Fatalf("downloads %v, want the fetched file", names)
			}
			b.stop()
			if tc.change {
				f, err := os.OpenFile(filepath.Join(b.dir, names[0]), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write([]byte("more")); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			b.start()
			b.svc.AnnounceHeld()
			calls, rooms := logs[1].get()
			raw, _ := hex.DecodeString(sh.ID)
			if tc.change {
				if len(calls) != 1 || b.svc.heldShare(raw) != nil {
					t.Fatalf("a changed file is served again (Held calls %v)", calls)
				}
				var stored int
				if err := b.db.View(func(tx *bolt.Tx) error { stored = tx.Bucket(bucketHeld).Stats().KeyN; return nil }); err != nil {
					t.Fatal(err)
				}
				if stored != 0 {
					t.Fatalf("%d held shares stored, want 0", stored)
				}
				return
			}
			if len(calls) != 2 || calls[1] != sh || rooms[1] != "team" {
				t.Fatalf("Held calls %v in %v after the restart, want %v in team again", calls, rooms, sh)
			}
			listed := 0
			for _, in := range b.svc.List() {
				if in.ID == sh.ID {
					listed++
					t.Logf("listed after the restart: %+v", in)
				}
			}
			if listed != 1 {
				t.Errorf("List shows the held share %d times, want once", listed)
			}
			nodes[0].stop() // the sharer is gone: only the restarted holder serves
			before := b.svc.chunksSent.Load()
			d := newNode(t)
			res, err := fetchAndWait(t, d, sh, b)
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, res, sh, data)
			if sent := b.svc.chunksSent.Load() - before; sent != swarmChunks {
				t.Errorf("the restarted holder sent %d chunks, want %d", sent, swarmChunks)
			}
		})
	}
}

// The held shares are bounded, in memory and in the store: the most
// recently fetched are kept.
func TestHeldBounded(t *testing.T) {
	n := newNode(t)
	ids := make([]string, maxHeld+2)
	start := time.Now()
	for i := range ids {
		raw := make([]byte, idLen)
		raw[0], raw[1] = byte(i>>8), byte(i)
		h := newTransfer(n.svc.ctx, raw)
		h.dir, h.share, h.name, h.room, h.state = Send, true, "f", "team", StateShared
		h.man = &manifest{chunkSize: MinChunkSize}
		h.created = start.Add(time.Duration(i) * time.Millisecond)
		n.svc.addHeld(h, "f")
		ids[i] = h.id
	}
	var stored int
	if err := n.db.View(func(tx *bolt.Tx) error { stored = tx.Bucket(bucketHeld).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	n.svc.mu.Lock()
	held, first, last := len(n.svc.held), n.svc.held[ids[1]], n.svc.held[ids[len(ids)-1]]
	n.svc.mu.Unlock()
	if held != maxHeld || stored != maxHeld || first != nil || last == nil {
		t.Fatalf("%d held, %d stored (want %d); oldest kept %v, newest kept %v", held, stored, maxHeld, first != nil, last != nil)
	}
}

// Cancel of a share this node fetched stops serving it, also across a
// restart; the file stays.
func TestCancelStopsHolding(t *testing.T) {
	nodes, sh, data, _ := swarmOf(t, 1)
	b := nodes[1]
	if err := b.svc.Cancel(sh.ID[:8]); err != nil {
		t.Fatalf("cancel a held share: %v", err)
	}
	raw, _ := hex.DecodeString(sh.ID)
	if b.svc.heldShare(raw) != nil {
		t.Fatal("still served after Cancel")
	}
	if err := b.svc.Cancel(sh.ID); !errors.Is(err, ErrState) {
		t.Fatalf("second Cancel = %v, want ErrState", err)
	}
	b.stop()
	b.start()
	if b.svc.heldShare(raw) != nil {
		t.Fatal("served again after a restart")
	}
	if len(b.downloads()) != 1 {
		t.Fatalf("downloads %v, want the fetched file kept", b.downloads())
	}
	before := b.svc.chunksSent.Load()
	d := newNode(t)
	res, err := fetchAndWait(t, d, sh, nodes[0], b)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res, sh, data)
	if sent := b.svc.chunksSent.Load() - before; sent != 0 {
		t.Errorf("a member that cancelled holding sent %d chunks", sent)
	}
}

// A holder that stalls (it keeps its stream open and sends nothing, well
// within the idle timeout) does not hold up the end of a fetch: once
// every chunk is asked for, the other holders are asked for its chunks
// again (the endgame), and the fetch completes and verifies while the
// stalled holder still has not sent a byte.
func TestSwarmStalledHolderEndgame(t *testing.T) {
	stall := make(chan struct{})
	var armed atomic.Bool
	var stalledSent atomic.Int64
	slow := func(c *Config) {
		c.hooks.beforeChunk = func(_ string, _ int, data []byte) error {
			if armed.Load() {
				<-stall
				stalledSent.Add(int64(len(data)))
			}
			return nil
		}
	}
	nodes, sh, data, _ := swarmOf(t, 2, nil, nil, slow)
	t.Cleanup(func() { close(stall) })
	armed.Store(true)
	// The fetcher would wait for the stalled holder for 10 minutes.
	d := newNode(t, func(c *Config) { c.IdleTimeout = 10 * time.Minute })
	res, err := fetchAndWait(t, d, sh, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, res, sh, data)
	if n := stalledSent.Load(); n != 0 {
		t.Errorf("the stalled holder sent %d bytes before the fetch completed", n)
	}
}

// The first verified copy of a chunk is the one in the part file: pieces
// of another copy (a holder that was slow, then sends garbage) are not
// written once an endgame copy was verified and written.
func TestSwarmGuardKeepsVerifiedChunk(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "part"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	n := newNode(t)
	man := &manifest{size: 4 * MinChunkSize, chunkSize: MinChunkSize}
	sw := &swarm{s: n.svc, t: newTransfer(n.svc.ctx, make([]byte, idLen)), f: f, man: man,
		bm: newBitmap(4), taken: make([]bool, 4), owner: make([]peer.ID, 4), dup: make([]bool, 4),
		missing: 4, served: make(map[peer.ID]int), changed: make(chan struct{}), allIn: func() {},
		lastFrom: make(map[peer.ID]time.Time), owed: make(map[peer.ID]int), conns: make(map[peer.ID]*holderConn)}
	good := make([]byte, MinChunkSize)
	for i := range good {
		good[i] = 'g'
	}
	wrote := false
	piece := func() error {
		wrote = true
		_, err := f.WriteAt([]byte("garbage"), MinChunkSize)
		return err
	}
	if err := sw.guard(1, piece); err != nil || !wrote {
		t.Fatalf("a piece of an unverified chunk: written %v, err %v", wrote, err)
	}
	if err := sw.install("fast", 1, good); err != nil {
		t.Fatal(err)
	}
	wrote = false
	if err := sw.guard(1, piece); err != nil || wrote {
		t.Fatalf("a piece of a verified chunk: written %v, err %v", wrote, err)
	}
	got := make([]byte, MinChunkSize)
	if _, err := f.ReadAt(got, MinChunkSize); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(good) || !sw.bm.has(1) || sw.served["fast"] != 1 {
		t.Fatal("the verified copy is not what the part file holds")
	}
	if err := sw.install("late", 1, make([]byte, MinChunkSize)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(got, MinChunkSize); err != nil || string(got) != string(good) {
		t.Fatal("a second verified copy was written over the first")
	}
}
