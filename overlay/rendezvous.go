package overlay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/backoff"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// RendezvousPrefix is put before every namespace before it is hashed into
// a DHT key: a node advertising namespace ns provides the CID
// CIDv1(raw, sha2-256(RendezvousPrefix + ns)).
const RendezvousPrefix = "parley/rendezvous/v1/"

// MaxNamespaceLen bounds a rendezvous namespace.
const MaxNamespaceLen = 256

// Rendezvous configures how namespaces are advertised and searched.
type Rendezvous struct {
	// AdvertiseEvery is how often an advertisement is renewed (default
	// 10 min). A DHT server keeps it for its provider record lifetime
	// (48 h) but forgets it when it restarts, so renewing often bounds
	// how long a restarted serve node misses members.
	AdvertiseEvery time.Duration
	// FindMin and FindMax bound the interval between searches: the first
	// searches follow each other after FindMin, doubling up to FindMax
	// (defaults 2 s and 1 min). A network change starts over at FindMin.
	FindMin, FindMax time.Duration
	// MaxPeers bounds the peers taken from one search (default 64).
	MaxPeers int
}

func (r *Rendezvous) setDefaults() {
	if r.AdvertiseEvery <= 0 {
		r.AdvertiseEvery = 10 * time.Minute
	}
	if r.FindMin <= 0 {
		r.FindMin = 2 * time.Second
	}
	if r.FindMax <= 0 {
		r.FindMax = time.Minute
	}
	if r.FindMax < r.FindMin {
		r.FindMax = r.FindMin
	}
	if r.MaxPeers <= 0 {
		r.MaxPeers = 64
	}
}

func checkNamespace(ns string) error {
	if ns == "" || len(ns) > MaxNamespaceLen {
		return fmt.Errorf("namespace of %d bytes: %w", len(ns), ErrBadNamespace)
	}
	return nil
}

// prefixed adds RendezvousPrefix to every namespace of a discovery.
type prefixed struct{ d discovery.Discovery }

func (p prefixed) Advertise(ctx context.Context, ns string, opts ...discovery.Option) (time.Duration, error) {
	if err := checkNamespace(ns); err != nil {
		return 0, err
	}
	return p.d.Advertise(ctx, RendezvousPrefix+ns, opts...)
}

func (p prefixed) FindPeers(ctx context.Context, ns string, opts ...discovery.Option) (<-chan peer.AddrInfo, error) {
	if err := checkNamespace(ns); err != nil {
		return nil, err
	}
	return p.d.FindPeers(ctx, RendezvousPrefix+ns, opts...)
}

// rendezvous owns the namespaces the node keeps advertised.
type rendezvous struct {
	o    *Host
	cfg  Rendezvous
	sema chan struct{} // bounds concurrent dials to found peers

	mu     sync.Mutex
	joined map[string]*nsState // guarded by mu
}

type nsState struct {
	cancel context.CancelFunc
	done   chan struct{}
	reset  chan struct{} // capacity 1: search again soon
}

// rendezvousMaxDials bounds concurrent dials to found peers.
const rendezvousMaxDials = 8

func newRendezvous(o *Host, cfg Rendezvous) *rendezvous {
	return &rendezvous{o: o, cfg: cfg, sema: make(chan struct{}, rendezvousMaxDials), joined: make(map[string]*nsState)}
}

func (o *Host) routingDiscovery() (discovery.Discovery, error) {
	if o.dht == nil {
		return nil, ErrNoDHT
	}
	return prefixed{drouting.NewRoutingDiscovery(o.dht)}, nil
}

// Advertise announces once, through the DHT, that this node is a member of
// namespace ns, and returns how long the announcement lasts. Most callers
// want Join, which renews it.
func (o *Host) Advertise(ctx context.Context, ns string) (time.Duration, error) {
	d, err := o.routingDiscovery()
	if err != nil {
		return 0, err
	}
	ttl, err := d.Advertise(ctx, ns, discovery.TTL(o.rv.cfg.AdvertiseEvery))
	if err != nil {
		return 0, fmt.Errorf("advertise namespace: %w", err)
	}
	return ttl, nil
}

// FindPeers looks up, through the DHT, the peers that advertised namespace
// ns, up to limit of them (0: the configured MaxPeers). It does not
// connect to them and leaves this node out.
func (o *Host) FindPeers(ctx context.Context, ns string, limit int) ([]peer.AddrInfo, error) {
	d, err := o.routingDiscovery()
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = o.rv.cfg.MaxPeers
	}
	ch, err := d.FindPeers(ctx, ns, discovery.Limit(limit))
	if err != nil {
		return nil, fmt.Errorf("find peers in namespace: %w", err)
	}
	var out []peer.AddrInfo
	for ai := range ch {
		if ai.ID != o.ID() && ai.ID != "" {
			out = append(out, ai)
		}
	}
	if err := ctx.Err(); err != nil && len(out) == 0 {
		return nil, fmt.Errorf("find peers in namespace: %w", err)
	}
	return out, nil
}

// Discovery returns a discovery.Discovery over the DHT, with Parley's
// namespace prefix and exponential backoff between searches of the same
// namespace, e.g. for pubsub.WithDiscovery. It is nil without a DHT.
func (o *Host) Discovery() discovery.Discovery {
	d, err := o.routingDiscovery()
	if err != nil {
		return nil
	}
	b, err := backoff.NewBackoffDiscovery(d, backoff.NewExponentialBackoff(
		o.rv.cfg.FindMin, o.rv.cfg.FindMax, backoff.FullJitter, time.Second, 2, 0, nil))
	if err != nil {
		return d
	}
	return b
}

// Join keeps namespace ns advertised and connects to the peers found in
// it, in the background, until Leave(ns) or Close. Joining a namespace
// twice is a no-op.
func (o *Host) Join(ns string) error {
	if err := checkNamespace(ns); err != nil {
		return err
	}
	if o.dht == nil {
		return ErrNoDHT
	}
	return o.rv.join(ns)
}

// Leave stops advertising and searching namespace ns. Existing
// connections stay; the advertisement expires on the DHT servers by
// itself.
func (o *Host) Leave(ns string) {
	o.rv.leave(ns)
}

// Namespaces returns the joined namespaces.
func (o *Host) Namespaces() []string {
	o.rv.mu.Lock()
	defer o.rv.mu.Unlock()
	out := make([]string, 0, len(o.rv.joined))
	for ns := range o.rv.joined {
		out = append(out, ns)
	}
	return out
}

func (r *rendezvous) join(ns string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.o.ctx.Err() != nil {
		return ErrClosed
	}
	if _, ok := r.joined[ns]; ok {
		return nil
	}
	ctx, cancel := context.WithCancel(r.o.ctx)
	st := &nsState{cancel: cancel, done: make(chan struct{}), reset: make(chan struct{}, 1)}
	r.joined[ns] = st
	r.o.goroutine(func() {
		defer close(st.done)
		r.run(ctx, ns, st)
	})
	return nil
}

func (r *rendezvous) leave(ns string) {
	r.mu.Lock()
	st, ok := r.joined[ns]
	delete(r.joined, ns)
	r.mu.Unlock()
	if ok {
		st.cancel()
		<-st.done
	}
}

// again makes every joined namespace search again soon (after a network
// change or when a DHT server comes back).
func (r *rendezvous) again() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.joined {
		select {
		case st.reset <- struct{}{}:
		default:
		}
	}
}

// run advertises ns and searches it until ctx ends.
func (r *rendezvous) run(ctx context.Context, ns string, st *nsState) {
	var advertisedAt time.Time
	var advWait time.Duration   // backoff of failed advertisements
	var emptyWait time.Duration // backoff while the DHT knows no server
	find := r.cfg.FindMin
	for {
		if r.o.dht.RoutingTable().Size() == 0 {
			// No DHT server known yet (bootstrap peer not connected or
			// not identified): asking would fail, so look again soon.
			emptyWait = min(max(2*emptyWait, 50*time.Millisecond), r.cfg.FindMax)
			reset, ok := r.sleep(ctx, st, emptyWait)
			if !ok {
				return
			}
			if reset {
				advertisedAt = time.Time{}
			}
			continue
		}
		emptyWait = 0
		now := time.Now()
		if advertisedAt.IsZero() || now.Sub(advertisedAt) >= r.cfg.AdvertiseEvery {
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			_, err := r.o.Advertise(actx, ns)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				advWait = r.backoff().next(advWait)
				r.o.log.Debug("rendezvous: advertise failed", "err", err, "retry", advWait)
			} else {
				advWait = 0
				advertisedAt = time.Now()
			}
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		found, err := r.o.FindPeers(fctx, ns, 0)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.o.log.Debug("rendezvous: search failed", "err", err)
		}
		r.connectAll(ctx, found)
		wait := find
		if advWait > 0 && advWait < wait {
			wait = advWait
		}
		find = min(find*2, r.cfg.FindMax)
		if !advertisedAt.IsZero() {
			wait = min(wait, time.Until(advertisedAt.Add(r.cfg.AdvertiseEvery)))
		}
		reset, ok := r.sleep(ctx, st, jitter(max(wait, 100*time.Millisecond)))
		if !ok {
			return
		}
		if reset {
			find = r.cfg.FindMin
			advertisedAt = time.Time{} // a DHT server may have restarted
		}
	}
}

// sleep waits d, or less when the namespace is asked to search again
// (reset). ok is false when ctx ends.
func (r *rendezvous) sleep(ctx context.Context, st *nsState, d time.Duration) (reset, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, false
	case <-st.reset:
		return true, true
	case <-t.C:
		return false, true
	}
}

func (r *rendezvous) backoff() Backoff {
	return Backoff{Min: r.cfg.FindMin, Max: r.cfg.FindMax}
}

// connectAll dials found peers that are not connected, a few at a time,
// and waits for the dials.
func (r *rendezvous) connectAll(ctx context.Context, found []peer.AddrInfo) {
	var wg sync.WaitGroup
	for _, ai := range found {
		if ai.ID == r.o.ID() || r.o.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		select {
		case r.sema <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-r.sema }()
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := r.o.Connect(dctx, ai); err != nil {
				r.o.log.Debug("rendezvous: dial found peer", "peer", ai.ID, "err", err)
				return
			}
			r.o.log.Debug("rendezvous: connected to found peer", "peer", ai.ID)
		}()
	}
	wg.Wait()
}
