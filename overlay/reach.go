package overlay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
)

// Peer resolution (docs/OVERLAY.md, "Reaching a peer"): Reach turns a peer
// ID into a live connection by every way the node knows, in this order and
// overlapping where it helps:
//
//  1. an existing connection;
//  2. the addresses in the peerstore: those remembered from earlier runs
//     (PeerMemory), learned from fellow room members' signed peer records,
//     from mDNS on the LAN, or given with --peer;
//  3. the DHT's peer routing, when the node has a DHT (it waits for the
//     routing table to hold a peer, so a lookup right after start does not
//     fail on an empty table);
//  4. a relayed connection through a connected peer that offers circuit
//     relay v2 (serve nodes first, then chat nodes relaying for their own
//     people), which works when the target holds a reservation there.
//
// Later ways start after a head start of the earlier ones, so a peer with
// a working direct address never costs a DHT lookup or a relay circuit.
// The first connection wins and cancels the rest.
const (
	// reachDHTAfter is the head start of the known addresses over the DHT.
	reachDHTAfter = 500 * time.Millisecond
	// reachRelayAfter is the head start of addresses and DHT over relays.
	reachRelayAfter = 1500 * time.Millisecond
	// reachMaxRelays bounds the relays one Reach tries in parallel.
	reachMaxRelays = 4
	// reachTablePoll is how often a lookup waiting for the DHT's routing
	// table to fill looks again.
	reachTablePoll = 100 * time.Millisecond
	// reachTableWait bounds that wait: the bootstrap peers are dialled
	// at start, so an empty table after this long stays empty.
	reachTableWait = 5 * time.Second
)

// Ways of reaching a peer, as ReachError.Tried names them.
const (
	ReachAddrs = "known addresses"
	ReachDHT   = "DHT"
	ReachRelay = "relay"
)

// reachCall is one Reach in progress, shared by concurrent callers.
type reachCall struct {
	done chan struct{}
	err  error
}

// reachFlight deduplicates concurrent Reach calls per peer.
type reachFlight struct {
	mu    sync.Mutex
	calls map[peer.ID]*reachCall // guarded by mu
}

// connected reports whether o holds a connection to p (a limited, relayed
// one counts: the protocols that may use it opt in).
func (o *Host) connected(p peer.ID) bool {
	switch o.Network().Connectedness(p) {
	case network.Connected, network.Limited:
		return true
	}
	return false
}

// Reach returns once the node holds a connection to p, trying the ways
// above; ctx bounds the whole attempt. Concurrent calls for one peer share
// one attempt (each still bounded by its own ctx). The error is a
// *DialError naming the most telling failure, wrapped in a *ReachError
// that lists the ways tried.
func (o *Host) Reach(ctx context.Context, p peer.ID) error {
	if p == o.ID() {
		return fmt.Errorf("reach %s: %w", ShortPeer(p), ErrSelfDial)
	}
	if o.connected(p) {
		return nil
	}
	if o.ctx.Err() != nil {
		return ErrClosed
	}
	f := &o.flight
	f.mu.Lock()
	c, ok := f.calls[p]
	if !ok {
		if f.calls == nil {
			f.calls = make(map[peer.ID]*reachCall)
		}
		c = &reachCall{done: make(chan struct{})}
		f.calls[p] = c
		// The shared attempt runs on the host's context, bounded like
		// the longest dial a caller would wait for.
		dl, hasDL := ctx.Deadline()
		o.goroutine(func() {
			actx, cancel := context.WithTimeout(o.ctx, reachBudget(dl, hasDL))
			c.err = o.reachPeer(actx, p)
			cancel()
			f.mu.Lock()
			delete(f.calls, p)
			f.mu.Unlock()
			close(c.done)
		})
	}
	f.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		kind := DialTimedOut
		if len(o.Peerstore().Addrs(p)) == 0 {
			kind = DialNoAddress
		}
		return &DialError{Peer: p, Kind: kind, Cause: ctx.Err()}
	}
}

// reachBudget is how long a shared attempt may run: the first caller's
// deadline, at least 5 s and at most a minute.
func reachBudget(dl time.Time, ok bool) time.Duration {
	if !ok {
		return time.Minute
	}
	return min(max(time.Until(dl), 5*time.Second), time.Minute)
}

// ReachError is a failed Reach: the ways tried and the most telling
// failure among them.
type ReachError struct {
	// Tried lists the ways tried, in order (ReachAddrs, ReachDHT,
	// "relay via 12D3…abcd").
	Tried []string
	// Dial is the most telling failure (never nil).
	Dial *DialError
}

// Error is one line: the failure, then what was tried.
func (e *ReachError) Error() string {
	if len(e.Tried) == 0 {
		return e.Dial.Error()
	}
	return fmt.Sprintf("%s (tried %s)", e.Dial.Error(), joinAnd(e.Tried))
}

// Unwrap returns the DialError, so ClassifyDial and errors.As see it.
func (e *ReachError) Unwrap() error { return e.Dial }

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := ""
	for i, x := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			out += " and "
		default:
			out += ", "
		}
		out += x
	}
	return out
}

// reachResult is the outcome of one way of reaching a peer.
type reachResult struct {
	way string
	err error
}

// reachPeer runs the ways of reaching p in parallel with their head starts.
func (o *Host) reachPeer(ctx context.Context, p peer.ID) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	haveAddrs := len(o.Peerstore().Addrs(p)) > 0
	type way struct {
		name  string
		after time.Duration
		run   func(context.Context) error
	}
	var ways []way
	if haveAddrs {
		ways = append(ways, way{ReachAddrs, 0, func(ctx context.Context) error { return o.dialKnown(ctx, p) }})
	}
	if o.dht != nil && (o.bootstrap || o.dht.RoutingTable().Size() > 0) {
		after := time.Duration(0)
		if haveAddrs {
			after = reachDHTAfter
		}
		ways = append(ways, way{ReachDHT, after, func(ctx context.Context) error { return o.dialViaDHT(ctx, p) }})
	}
	relayAfter := time.Duration(0)
	if len(ways) > 0 {
		relayAfter = reachRelayAfter
	}
	for _, r := range o.relayCandidates(p) {
		ways = append(ways, way{"relay via " + ShortPeer(r), relayAfter, func(ctx context.Context) error { return o.dialViaRelay(ctx, r, p) }})
	}
	if len(ways) == 0 {
		return &ReachError{Tried: nil, Dial: &DialError{Peer: p, Kind: DialNoAddress, Cause: errors.New("no address, no DHT and no relay")}}
	}
	results := make(chan reachResult, len(ways))
	for _, w := range ways {
		go func() {
			if w.after > 0 {
				t := time.NewTimer(w.after)
				select {
				case <-ctx.Done():
					t.Stop()
					results <- reachResult{w.name, ctx.Err()}
					return
				case <-t.C:
				}
			}
			if o.connected(p) {
				results <- reachResult{w.name, nil}
				return
			}
			results <- reachResult{w.name, w.run(ctx)}
		}()
	}
	var failed []reachResult
	for range ways {
		r := <-results
		if r.err == nil {
			cancel()
			o.log.Debug("reached peer", "peer", p, "via", r.way)
			return nil
		}
		failed = append(failed, r)
	}
	if o.connected(p) {
		return nil
	}
	return reachFailure(p, failed)
}

// reachFailure picks the most telling failure: a direct address's answer
// (refused, wrong peer) over a lookup's "not found" over a relay's refusal.
func reachFailure(p peer.ID, rs []reachResult) *ReachError {
	rank := func(r reachResult) int {
		switch r.way {
		case ReachAddrs:
			return 3
		case ReachDHT:
			return 2
		}
		return 1
	}
	best := rs[0]
	tried := make([]string, 0, len(rs))
	for _, r := range rs {
		tried = append(tried, r.way)
		if rank(r) > rank(best) {
			best = r
		}
	}
	de := ClassifyDial(p, best.err)
	if best.way != ReachAddrs && (de.Kind == DialFailed || de.Kind == DialTimedOut) {
		// A lookup or relay that failed means nobody knew a way.
		de = &DialError{Peer: p, Kind: DialNoAddress, Cause: best.err}
	}
	slices.Sort(tried)
	return &ReachError{Tried: tried, Dial: de}
}

// dialKnown dials the addresses in the peerstore, bypassing the DHT.
func (o *Host) dialKnown(ctx context.Context, p peer.ID) error {
	_, err := o.Network().DialPeer(ctx, p)
	return err
}

// dialViaDHT looks p up in the DHT and dials what it finds.
func (o *Host) dialViaDHT(ctx context.Context, p peer.ID) error {
	t := time.NewTicker(reachTablePoll)
	defer t.Stop()
	give := time.After(reachTableWait)
	for o.dht.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("DHT lookup of %s: no DHT peer connected: %w", ShortPeer(p), ctx.Err())
		case <-give:
			return fmt.Errorf("DHT lookup of %s: no DHT peer connected after %v", ShortPeer(p), reachTableWait)
		case <-t.C:
		}
	}
	ai, err := o.dht.FindPeer(ctx, p)
	if err != nil {
		return fmt.Errorf("DHT lookup of %s: %w", ShortPeer(p), err)
	}
	if o.connected(p) {
		return nil
	}
	if len(ai.Addrs) > 0 {
		o.Peerstore().AddAddrs(p, ai.Addrs, time.Hour)
	}
	_, err = o.Network().DialPeer(ctx, p)
	return err
}

// relayCandidates are the connected peers other than p that offer circuit
// relay v2: configured relays (serve nodes) first, at most reachMaxRelays.
func (o *Host) relayCandidates(p peer.ID) []peer.ID {
	var static, others []peer.ID
	for _, r := range o.Network().Peers() {
		if r == p || o.Network().Connectedness(r) != network.Connected {
			continue
		}
		if ok, _ := o.Peerstore().SupportsProtocols(r, proto.ProtoIDv2Hop); len(ok) == 0 {
			continue
		}
		if o.relays != nil && o.relays.has(r) {
			static = append(static, r)
		} else {
			others = append(others, r)
		}
	}
	slices.Sort(static)
	slices.Sort(others)
	out := append(static, others...)
	if len(out) > reachMaxRelays {
		out = out[:reachMaxRelays]
	}
	return out
}

// dialViaRelay dials p through relay r (p must hold a reservation there).
func (o *Host) dialViaRelay(ctx context.Context, r, p peer.ID) error {
	circuit, err := ma.NewMultiaddr("/p2p/" + r.String() + "/p2p-circuit")
	if err != nil {
		return fmt.Errorf("relay address via %s: %w", ShortPeer(r), err)
	}
	o.Peerstore().AddAddr(p, circuit, 10*time.Minute)
	_, err = o.Network().DialPeer(network.WithAllowLimitedConn(ctx, "parley reach"), p)
	if err != nil {
		return fmt.Errorf("relay via %s: %w", ShortPeer(r), err)
	}
	return nil
}

// NewStream opens a stream to p like the libp2p host's NewStream, but
// reaches p first (Reach) when no connection is open, unless ctx forbids
// dialling (network.WithNoDial). Services built on the overlay host (DMs,
// file transfer) get peer resolution this way.
func (o *Host) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if nodial, _ := network.GetNoDial(ctx); !nodial && !o.connected(p) {
		if err := o.Reach(ctx, p); err != nil {
			return nil, err
		}
	}
	return o.Host.NewStream(ctx, p, pids...)
}
