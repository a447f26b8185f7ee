package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
)

// The targets for one idle node.
const (
	CostTargetRSS   = 40 << 20
	CostTargetReady = 500 * time.Millisecond
)

// costSettle is how long a started host is left alone before it is
// measured (identify, the first presence announcement, pings).
const costSettle = time.Second

// footprint is what the process holds at one moment.
type footprint struct {
	goroutines int
	heap       uint64 // live heap after a full GC
	rss        uint64 // resident set (Linux; 0 elsewhere)
}

// snapshot collects garbage, returns freed memory to the OS and measures.
func snapshot() footprint {
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	var heap uint64
	if s[0].Value.Kind() == metrics.KindUint64 {
		heap = s[0].Value.Uint64()
	}
	return footprint{goroutines: runtime.NumGoroutine(), heap: heap, rss: residentBytes()}
}

func (f footprint) minus(g footprint) (goroutines, heap, rss float64) {
	return float64(f.goroutines - g.goroutines), float64(f.heap) - float64(g.heap), float64(f.rss) - float64(g.rss)
}

// costSubject is what is measured: a full node or a bare libp2p host.
type costSubject struct {
	name  string
	start func(ctx context.Context, dir string) (host.Host, func() error, error)
}

var (
	subjectBare = costSubject{name: "bare libp2p host", start: func(context.Context, string) (host.Host, func() error, error) {
		h, err := bareHost(loopTCP, loopQUIC)
		if err != nil {
			return nil, nil, err
		}
		return h, h.Close, nil
	}}
	subjectNode = costSubject{name: "node", start: startNode}
)

// startNode starts a node as `parley chat` does (a new identity, the
// store, the host and every service, joined to the lobby), listening on
// loopback TCP and QUIC, without mDNS and without DHT peers.
func startNode(ctx context.Context, dir string) (host.Host, func() error, error) {
	id, _, err := identity.LoadOrCreate(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	listen := []ma.Multiaddr{ma.StringCast(loopTCP), ma.StringCast(loopQUIC)}
	n, err := node.New(ctx, node.Config{
		DataDir: dir, Identity: id, Nick: "bench", Version: "bench",
		Overlay: overlay.Config{ListenAddrs: listen},
		Emitter: events.Discard, Logger: discard,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("start node: %w", err)
	}
	return n.Host(), n.Close, nil
}

// idleCost starts subj, waits settle and measures it against the
// process before.
func idleCost(ctx context.Context, subj costSubject, dir string, settle time.Duration) (ready time.Duration, delta, total footprint, err error) {
	before := snapshot()
	t0 := time.Now()
	_, closeFn, err := subj.start(ctx, dir)
	if err != nil {
		return 0, footprint{}, footprint{}, err
	}
	ready = time.Since(t0)
	defer func() { err = errors.Join(err, closeFn()) }()
	if err := sleepCtx(ctx, settle); err != nil {
		return 0, footprint{}, footprint{}, err
	}
	total = snapshot()
	g, hp, rss := total.minus(before)
	return ready, footprint{goroutines: int(g), heap: uint64(max(hp, 0)), rss: uint64(max(rss, 0))}, total, nil
}

// peerCost starts subj, connects peers to it and returns the growth per
// peer. Both ends of each connection live in this process, so the figures
// hold the peer's side too.
func peerCost(ctx context.Context, subj costSubject, dir string, peers []host.Host, settle time.Duration) (goroutines, heap float64, err error) {
	h, closeFn, err := subj.start(ctx, dir)
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, closeFn()) }()
	if err := sleepCtx(ctx, settle); err != nil {
		return 0, 0, err
	}
	before := snapshot()
	for _, p := range peers {
		if err := connect(ctx, p, h, ma.P_TCP); err != nil {
			return 0, 0, err
		}
	}
	if err := sleepCtx(ctx, settle); err != nil {
		return 0, 0, err
	}
	after := snapshot()
	g, hp, _ := after.minus(before)
	k := float64(len(peers))
	return g / k, hp / k, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Cost measures, in this process, one idle node (as `parley chat` starts
// it) next to a bare libp2p host: the time from start to ready, and the
// goroutines, live heap and resident memory it adds; then the growth per
// connected peer. Run it first in a fresh process: the resident figures
// include whatever the process held before.
func Cost(ctx context.Context, c Config) ([]Result, error) {
	cfg := c.withDefaults()
	dir, cleanup, err := scenarioDir(&cfg, "cost")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	type idle struct {
		ready        time.Duration
		delta, total footprint
	}
	got := make(map[string]idle)
	for _, subj := range []costSubject{subjectBare, subjectNode} {
		d := filepath.Join(dir, "idle-"+subj.name)
		if err := mkdir(d); err != nil {
			return nil, err
		}
		ready, delta, total, err := idleCost(ctx, subj, d, cfg.settleOr(costSettle))
		if err != nil {
			return nil, fmt.Errorf("idle %s: %w", subj.name, err)
		}
		got[subj.name] = idle{ready, delta, total}
		logf(cfg.Log, "cost: %s ready in %v, +%d goroutines, +%.1f MiB live heap, process RSS %.1f MiB",
			subj.name, ready.Round(time.Millisecond), delta.goroutines, mib(delta.heap), mib(total.rss))
	}
	peers := make([]host.Host, cfg.CostPeers)
	for i := range peers {
		if peers[i], err = bareHost(); err != nil {
			return nil, err
		}
		defer func() { _ = peers[i].Close() }()
	}
	type perPeer struct{ goroutines, heap float64 }
	pp := make(map[string]perPeer)
	for _, subj := range []costSubject{subjectBare, subjectNode} {
		d := filepath.Join(dir, "peers-"+subj.name)
		if err := mkdir(d); err != nil {
			return nil, err
		}
		g, hp, err := peerCost(ctx, subj, d, peers, cfg.settleOr(costSettle))
		if err != nil {
			return nil, fmt.Errorf("%s with %d peers: %w", subj.name, len(peers), err)
		}
		pp[subj.name] = perPeer{g, hp}
		logf(cfg.Log, "cost: %s per connected peer: %.1f goroutines, %.1f KiB live heap", subj.name, g, hp/1024)
	}
	n, b := got[subjectNode.name], got[subjectBare.name]
	const sc = "cost"
	base := subjectBare.name
	out := []Result{
		row(sc, "start to ready, ms", ms(n.ready), base, ms(b.ready)).
			withTarget(fmt.Sprintf("< %d ms", CostTargetReady.Milliseconds()), n.ready < CostTargetReady).
			withNote("in process: new identity, store, host, services, lobby joined; `go test -bench BinaryCost ./bench` times the real binary"),
		row(sc, "goroutines, idle", float64(n.delta.goroutines), base, float64(b.delta.goroutines)),
		row(sc, "live heap, idle, MiB", mib(n.delta.heap), base, mib(b.delta.heap)),
	}
	rss := row(sc, "process RSS with it idle, MiB", mib(n.total.rss), base, mib(b.total.rss))
	if n.total.rss > 0 {
		rss = rss.withTarget(fmt.Sprintf("< %d MiB", CostTargetRSS>>20), n.total.rss < CostTargetRSS).
			withNote("the whole parley bench process after a GC; see BinaryCost for `parley chat`")
	}
	np, bp := pp[subjectNode.name], pp[subjectBare.name]
	return append(out, rss,
		row(sc, "goroutines per connected peer", np.goroutines, base, bp.goroutines).
			withNote("%d peers (bare hosts in this process: both ends counted)", len(peers)),
		row(sc, "live heap per connected peer, KiB", np.heap/1024, base, bp.heap/1024),
	), nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
