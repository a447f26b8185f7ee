package rooms

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"golang.org/x/time/rate"
)

// swarmLinks are the neighbour offsets of the in-process swarm: node i is
// connected to i+1, i+2 and i+5 (mod n), so every node has six neighbours
// and most messages need more than one hop.
var swarmLinks = []int{1, 2, 5}

// arrivals records when each node delivered each message, keyed by text.
type arrivals struct {
	mu      sync.Mutex
	at      map[string]map[int]time.Time // guarded by mu
	done    map[string]chan struct{}     // guarded by mu
	changed chan struct{}                // guarded by mu; closed and replaced on every delivery
	want    int
}

func newArrivals(want int) *arrivals {
	return &arrivals{
		at:      make(map[string]map[int]time.Time),
		done:    make(map[string]chan struct{}),
		changed: make(chan struct{}),
		want:    want,
	}
}

// expect must be called before the message is sent; the channel closes
// when want receivers delivered it.
func (a *arrivals) expect(text string) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan struct{})
	a.done[text] = ch
	return ch
}

func (a *arrivals) record(node int, text string, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at[text] == nil {
		a.at[text] = make(map[int]time.Time)
	}
	a.at[text][node] = t
	close(a.changed)
	a.changed = make(chan struct{})
	if len(a.at[text]) == a.want {
		if ch, ok := a.done[text]; ok {
			close(ch)
		}
	}
}

// waitAll waits until every node delivered each of texts. It fails when
// no node delivers anything new for stall: a lost message shows as a
// stall, however long the whole takes, which grows with the number of
// deliveries and the machine's load. Each delivery restarts the bound,
// so the wait ends after at most want*len(texts) of them.
func (a *arrivals) waitAll(tb testing.TB, texts []string, stall time.Duration) {
	tb.Helper()
	timer := time.NewTimer(stall)
	defer timer.Stop()
	for {
		a.mu.Lock()
		missing := -1
		for i, text := range texts {
			if len(a.at[text]) < a.want {
				missing = i
				break
			}
		}
		ch := a.changed
		a.mu.Unlock()
		if missing < 0 {
			return
		}
		select {
		case <-ch:
			timer.Reset(stall)
		case <-timer.C:
			tb.Fatalf("no delivery for %v: message %d reached %d of %d members", stall, missing, len(a.times(texts[missing])), a.want)
		}
	}
}

func (a *arrivals) times(text string) map[int]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.at[text])
}

// meshWatch counts mesh peers per node from GRAFT and PRUNE traces.
type meshWatch struct {
	mu      sync.Mutex
	mesh    map[int]map[peer.ID]bool // guarded by mu
	changed chan struct{}            // guarded by mu
}

func newMeshWatch() *meshWatch {
	return &meshWatch{mesh: make(map[int]map[peer.ID]bool), changed: make(chan struct{})}
}

func (w *meshWatch) tracer(i int) *testTracer {
	set := func(p peer.ID, in bool) {
		w.mu.Lock()
		if w.mesh[i] == nil {
			w.mesh[i] = make(map[peer.ID]bool)
		}
		w.mesh[i][p] = in
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
	return &testTracer{
		onGraft: func(p peer.ID, _ string) { set(p, true) },
		onPrune: func(p peer.ID, _ string) { set(p, false) },
	}
}

// wait waits until each of n nodes has at least k mesh peers.
func (w *meshWatch) wait(tb testing.TB, n, k int) {
	tb.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ready := 0
		for i := range n {
			c := 0
			for _, in := range w.mesh[i] {
				if in {
					c++
				}
			}
			if c >= k {
				ready++
			}
		}
		ch := w.changed
		w.mu.Unlock()
		if ready == n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			tb.Fatalf("mesh not formed: %d of %d nodes have %d peers", ready, n, k)
		}
	}
}

// newMockHosts starts n hosts with Ed25519 identities on a mock network,
// each on its own address, linked and connected as swarmLinks says.
func newMockHosts(tb testing.TB, n int) []host.Host {
	tb.Helper()
	mn := mocknet.New()
	tb.Cleanup(func() { _ = mn.Close() })
	hs := make([]host.Host, n)
	for i := range hs {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		addr := ma.StringCast(fmt.Sprintf("/ip4/10.0.%d.%d/tcp/4001", i/250, i%250+1))
		if hs[i], err = mn.AddPeer(k, addr); err != nil {
			tb.Fatal(err)
		}
	}
	if err := mn.LinkAll(); err != nil {
		tb.Fatal(err)
	}
	for i := range hs {
		for _, d := range swarmLinks {
			if _, err := mn.ConnectPeers(hs[i].ID(), hs[(i+d)%n].ID()); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return hs
}

// roomSwarm is n rooms services on a mock network, all joined to one room.
type roomSwarm struct {
	svcs []*Service
	arr  *arrivals
	room string
}

// newRoomSwarm starts the swarm; noSync opens the databases without fsync
// (to tell storage cost from the rest in benchmarks).
func newRoomSwarm(tb testing.TB, n int, private, noSync bool) *roomSwarm {
	tb.Helper()
	hs := newMockHosts(tb, n)
	sw := &roomSwarm{arr: newArrivals(n), room: "swarm"}
	watch := newMeshWatch()
	ctx := context.Background()
	invite, err := EncodeInvite("swarm", fixedKey)
	if err != nil {
		tb.Fatal(err)
	}
	for i, h := range hs {
		db := testnet.TempDB(tb)
		db.NoSync = noSync
		nick := fmt.Sprintf("node%d", i)
		svc, err := New(ctx, Config{
			Host:             h,
			DB:               db,
			Nick:             func() string { return nick },
			Logger:           testLogger,
			PresenceInterval: time.Minute,
			PresenceTimeout:  2 * time.Minute,
			RateLimit:        rate.Inf,
			Emitter: events.EmitterFunc(func(e events.Event) {
				if m, ok := e.(events.Message); ok {
					sw.arr.record(i, m.Text, time.Now())
				}
			}),
			PubSubOptions: []pubsub.Option{pubsub.WithRawTracer(watch.tracer(i))},
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = svc.Close() })
		if private {
			_, err = svc.JoinInvite(ctx, invite)
		} else {
			err = svc.Join(ctx, sw.room)
		}
		if err != nil {
			tb.Fatal(err)
		}
		sw.svcs = append(sw.svcs, svc)
	}
	watch.wait(tb, n, 4)
	return sw
}

// send publishes text from node i and waits until every node, the sender
// included, delivered it, or until timeout. It returns the latencies of
// the deliveries to the other nodes.
func (sw *roomSwarm) send(tb testing.TB, i int, text string, timeout time.Duration) []time.Duration {
	tb.Helper()
	return sendAndWait(tb, sw.arr, i, text, timeout, func(ctx context.Context) error {
		_, err := sw.svcs[i].Send(ctx, sw.room, text)
		return err
	})
}

func sendAndWait(tb testing.TB, arr *arrivals, i int, text string, timeout time.Duration, send func(context.Context) error) []time.Duration {
	tb.Helper()
	done := arr.expect(text)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	if err := send(ctx); err != nil {
		tb.Fatalf("send from %d: %v", i, err)
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	var lat []time.Duration
	for j, at := range arr.times(text) {
		if j != i {
			lat = append(lat, at.Sub(start))
		}
	}
	return lat
}

func TestSwarmEveryMemberGetsEveryMessage(t *testing.T) {
	const n = 20
	for _, private := range []bool{false, true} {
		t.Run(kindName(private), func(t *testing.T) {
			sw := newRoomSwarm(t, n, private, false)
			texts := make([]string, n)
			for i := range n {
				texts[i] = fmt.Sprintf("hello from %d", i)
			}
			// Each send has its own bound: under load one send takes
			// hundreds of milliseconds (the sender's GossipSub also
			// forwards and delivers everyone else's messages).
			for i, text := range texts {
				ctx := ctxT(t)
				if _, err := sw.svcs[i].Send(ctx, sw.room, text); err != nil {
					t.Fatal(err)
				}
			}
			// n*n deliveries: bounded by progress, not by a total that
			// a loaded machine (CI runs other packages' tests alongside)
			// can exceed without any message being lost.
			sw.arr.waitAll(t, texts, waitTimeout)
			for i, svc := range sw.svcs {
				hist, err := svc.History(sw.room, 100)
				if err != nil || len(hist) != n {
					t.Fatalf("node %d history: %d messages, %v", i, len(hist), err)
				}
			}
		})
	}
}
