package overlay

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/parley-chat/parley/events"
)

// Liveness configures the ping-based liveness check. Every connected peer
// is pinged every Interval; a ping that gets no answer within Timeout is a
// failure, and a failed ping is retried at once. After MaxFailures failures
// in a row the peer's connections are closed and it is reported
// disconnected. A peer that stops answering is therefore reported within
// Window() = Interval + MaxFailures*Timeout (13 s with the defaults).
type Liveness struct {
	Interval    time.Duration // default 5 s
	Timeout     time.Duration // default 4 s
	MaxFailures int           // default 2
}

func (l *Liveness) setDefaults() {
	if l.Interval <= 0 {
		l.Interval = 5 * time.Second
	}
	if l.Timeout <= 0 {
		l.Timeout = 4 * time.Second
	}
	if l.MaxFailures <= 0 {
		l.MaxFailures = 2
	}
}

// Window is the longest time between a peer going silent and its being
// reported disconnected.
func (l Liveness) Window() time.Duration {
	l.setDefaults()
	return l.Interval + time.Duration(l.MaxFailures)*l.Timeout
}

// PeerInfo describes a connected peer.
type PeerInfo struct {
	ID        peer.ID
	Addr      string // remote multiaddr of the first connection
	Direction string // "inbound" or "outbound"
	Relayed   bool   // the connection goes through a circuit relay
	Since     time.Time
	RTT       time.Duration // last ping round trip, 0 before the first
}

// peerTable tracks connected peers, reports connection events and runs one
// liveness goroutine per connected peer.
type peerTable struct {
	o   *Host
	cfg Liveness

	mu    sync.Mutex
	peers map[peer.ID]*peerState // guarded by mu
	sub   event.Subscription
}

type peerState struct {
	info   PeerInfo
	cancel context.CancelFunc
	// dropped is set when the liveness check closed the peer, so that the
	// disconnection is reported with reason "liveness".
	dropped bool
}

func newPeerTable(o *Host, cfg Liveness) *peerTable {
	return &peerTable{o: o, cfg: cfg, peers: make(map[peer.ID]*peerState)}
}

func (t *peerTable) start() error {
	sub, err := t.o.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("subscribe to connection events: %w", err)
	}
	t.sub = sub
	// Peers that connected before the subscription (none in practice,
	// the host was just built) are picked up here.
	for _, p := range t.o.Network().Peers() {
		t.connected(p)
	}
	t.o.goroutine(t.loop)
	return nil
}

func (t *peerTable) stop() {
	if t.sub != nil {
		_ = t.sub.Close()
	}
}

func (t *peerTable) loop() {
	for {
		select {
		case <-t.o.ctx.Done():
			return
		case e, ok := <-t.sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			switch ev.Connectedness {
			case network.Connected, network.Limited:
				t.connected(ev.Peer)
			case network.NotConnected:
				t.disconnected(ev.Peer)
			}
		}
	}
}

func (t *peerTable) connected(p peer.ID) {
	conns := t.o.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		return
	}
	t.mu.Lock()
	if _, ok := t.peers[p]; ok {
		t.mu.Unlock()
		return
	}
	c := conns[0]
	ctx, cancel := context.WithCancel(t.o.ctx)
	st := &peerState{
		info: PeerInfo{
			ID:        p,
			Addr:      c.RemoteMultiaddr().String(),
			Direction: c.Stat().Direction.String(),
			Relayed:   c.Stat().Limited || isRelayed(c.RemoteMultiaddr().String()),
			Since:     time.Now(),
		},
		cancel: cancel,
	}
	t.peers[p] = st
	t.mu.Unlock()

	t.o.log.Debug("peer connected", "peer", p, "addr", st.info.Addr)
	t.o.emit.Emit(events.PeerConnected{PeerID: p, Addr: st.info.Addr})
	t.o.goroutine(func() { t.watch(ctx, p) })
}

func (t *peerTable) disconnected(p peer.ID) {
	t.mu.Lock()
	st, ok := t.peers[p]
	if ok {
		delete(t.peers, p)
	}
	t.mu.Unlock()
	if !ok {
		return
	}
	st.cancel()
	t.o.keeper.disconnected(p)
	reason := "closed"
	if st.dropped {
		reason = "liveness"
	}
	t.o.log.Debug("peer disconnected", "peer", p, "reason", reason)
	t.o.emit.Emit(events.PeerDisconnected{PeerID: p, Addr: st.info.Addr, Reason: reason})
}

// watch pings p until ctx ends, and closes p's connections after
// MaxFailures failed pings in a row.
func (t *peerTable) watch(ctx context.Context, p peer.ID) {
	timer := time.NewTimer(t.cfg.Interval)
	defer timer.Stop()
	failures := 0
	for {
		if failures == 0 {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		rtt, err := t.ping(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			t.setRTT(p, rtt)
			timer.Reset(t.cfg.Interval)
			continue
		}
		failures++
		t.o.log.Debug("ping failed", "peer", p, "failures", failures, "err", err)
		if failures >= t.cfg.MaxFailures {
			t.drop(p, err)
			return
		}
	}
}

func (t *peerTable) ping(ctx context.Context, p peer.ID) (time.Duration, error) {
	pctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	select {
	case res, ok := <-ping.Ping(pctx, t.o.Host, p):
		if !ok {
			return 0, fmt.Errorf("ping %s: %w", p, pctx.Err())
		}
		if res.Error != nil {
			return 0, fmt.Errorf("ping %s: %w", p, res.Error)
		}
		return res.RTT, nil
	case <-pctx.Done():
		return 0, fmt.Errorf("ping %s: %w", p, pctx.Err())
	}
}

func (t *peerTable) setRTT(p peer.ID, rtt time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st, ok := t.peers[p]; ok {
		st.info.RTT = rtt
	}
}

func (t *peerTable) drop(p peer.ID, cause error) {
	t.mu.Lock()
	if st, ok := t.peers[p]; ok {
		st.dropped = true
	}
	t.mu.Unlock()
	t.o.log.Info("peer stopped answering pings; closing its connections", "peer", p, "err", cause)
	if err := t.o.Network().ClosePeer(p); err != nil {
		t.o.log.Warn("close unresponsive peer", "peer", p, "err", err)
	}
}

func (t *peerTable) list() []PeerInfo {
	t.mu.Lock()
	out := make([]PeerInfo, 0, len(t.peers))
	for _, st := range t.peers {
		out = append(out, st.info)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}

// Peers lists the connected peers, oldest connection first.
func (o *Host) Peers() []PeerInfo { return o.peers.list() }

func isRelayed(addr string) bool {
	return containsComponent(addr, "/p2p-circuit")
}

func containsComponent(addr, comp string) bool {
	for i := 0; i+len(comp) <= len(addr); i++ {
		if addr[i:i+len(comp)] == comp && (i+len(comp) == len(addr) || addr[i+len(comp)] == '/') {
			return true
		}
	}
	return false
}
