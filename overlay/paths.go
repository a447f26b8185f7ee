package overlay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-chat/parley/events"
)

// Path says how a connection reaches a peer.
type Path string

const (
	// PathNone: not connected.
	PathNone Path = ""
	// PathLAN: a direct connection to a private, link-local or loopback
	// address (the same LAN, or at least no public address in between).
	PathLAN Path = "lan"
	// PathDirect: a direct connection to a public address.
	PathDirect Path = "direct"
	// PathRelayed: through a circuit relay.
	PathRelayed Path = "relayed"
)

// rank orders paths from worst to best.
func (p Path) rank() int {
	switch p {
	case PathRelayed:
		return 1
	case PathDirect:
		return 2
	case PathLAN:
		return 3
	}
	return 0
}

// ClassifyAddr returns the path of a connection with remote address a.
func ClassifyAddr(a ma.Multiaddr) Path {
	if a == nil {
		return PathNone
	}
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return PathRelayed
	}
	if manet.IsPrivateAddr(a) || manet.IsIPLoopback(a) {
		return PathLAN
	}
	return PathDirect
}

// ConnPath returns the path of one connection: PathRelayed when it goes
// through a circuit relay or libp2p marks it limited, else what
// ClassifyAddr says of its remote address. /peers, /whois, peer_path and
// the peer list all classify connections this way.
func ConnPath(c network.Conn) Path {
	if c.Stat().Limited {
		return PathRelayed
	}
	return ClassifyAddr(c.RemoteMultiaddr())
}

// RelayOf returns the peer ID of the relay a circuit address goes
// through (…/p2p/RELAY/p2p-circuit…), "" when a is not a circuit address
// or does not name its relay.
func RelayOf(a ma.Multiaddr) peer.ID {
	var relay peer.ID
	circuit := false
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Code() {
		case ma.P_CIRCUIT:
			circuit = true
			return false
		case ma.P_P2P:
			// The last /p2p before /p2p-circuit names the relay.
			id, err := peer.IDFromBytes(c.RawValue())
			if err != nil {
				relay = ""
				return true
			}
			relay = id
		}
		return true
	})
	if !circuit {
		return ""
	}
	return relay
}

// PathInfo describes the connection that carries a peer.
type PathInfo struct {
	Path Path
	// Addr is the connection's remote address; "" when not connected.
	Addr string
	// Via is the relay's peer ID on a relayed path whose address names
	// it (RelayOf); "" otherwise.
	Via peer.ID
	// HolePunched: the direct connection was opened by hole punching
	// (DCUtR) while the peer was reachable only through a relay.
	HolePunched bool
}

// same reports whether p and q describe the same path (the address may
// differ).
func (p PathInfo) same(q PathInfo) bool {
	return p.Path == q.Path && p.Via == q.Via && p.HolePunched == q.HolePunched
}

// BestPath returns the best path among conns (LAN over direct over
// relayed) and the remote address of the connection that has it;
// PathNone and "" when conns is empty.
func BestPath(conns []network.Conn) (Path, string) {
	best := BestPathInfo(conns, nil)
	return best.Path, best.Addr
}

// BestPathInfo is BestPath with the relay and, when punched is not nil,
// whether the connection was hole-punched (Host.HolePunched). Among
// connections of the same path a hole-punched one is preferred, so that a
// punched connection is reported as long as it lasts. /whois uses it too.
func BestPathInfo(conns []network.Conn, punched func(network.Conn) bool) PathInfo {
	var best PathInfo
	for _, c := range conns {
		p := ConnPath(c)
		hp := p != PathRelayed && punched != nil && punched(c)
		if p.rank() > best.Path.rank() || (p == best.Path && hp && !best.HolePunched) {
			best = PathInfo{Path: p, Addr: c.RemoteMultiaddr().String(), HolePunched: hp}
			if p == PathRelayed {
				best.Via = RelayOf(c.RemoteMultiaddr())
			}
		}
	}
	return best
}

// Path returns the best current path to p and the remote address of the
// connection that carries it; PathNone when p is not connected.
func (o *Host) Path(p peer.ID) (Path, string) {
	return BestPath(o.Network().ConnsToPeer(p))
}

// PathInfo returns the best current path to p with its relay and whether
// hole punching opened it; a zero PathInfo when p is not connected.
func (o *Host) PathInfo(p peer.ID) PathInfo {
	return BestPathInfo(o.Network().ConnsToPeer(p), o.HolePunched)
}

// HolePunched reports whether hole punching (DCUtR) opened c. It is
// false when hole punching is off.
func (o *Host) HolePunched(c network.Conn) bool {
	if o.conns == nil {
		return false
	}
	return o.conns.holePunched(c)
}

// punchTracer receives go-libp2p's hole punching events
// (holepunch.WithTracer) and passes them to the connection watcher, which
// libp2p's options need before the host, and so the watcher, exist.
type punchTracer struct{ w atomic.Pointer[connWatcher] }

// Trace implements holepunch.EventTracer; it runs on the hole punching
// service's goroutines and does not block.
func (t *punchTracer) Trace(e *holepunch.Event) {
	if w := t.w.Load(); w != nil && e != nil {
		w.punchEvent(e.Remote, e.Evt, time.Now())
	}
}

// connWatcher follows individual connections (the peer table only sees
// peers): it reports peer_path when a connected peer's best path changes,
// and tells the other services when peers connect and disconnect. Its
// callbacks run on the swarm's notification path, so they only update
// state and signal, never block.
type connWatcher struct {
	o *Host

	mu    sync.Mutex
	paths map[peer.ID]PathInfo // guarded by mu; best path of connected peers
	// punching holds when a hole punch to a peer started (less its
	// round trip, for the other side's simultaneous dial), from the
	// hole punching service's start event to its end event; guarded by
	// mu.
	punching map[peer.ID]time.Time
	// punched holds the IDs of the open connections hole punching
	// opened; guarded by mu.
	punched map[string]bool

	// listeners are told about peer-level changes; set before the
	// watcher is registered, read-only afterwards.
	onConnect    []func(peer.ID)
	onDisconnect []func(peer.ID)
}

func newConnWatcher(o *Host) *connWatcher {
	return &connWatcher{
		o: o, paths: make(map[peer.ID]PathInfo),
		punching: make(map[peer.ID]time.Time), punched: make(map[string]bool),
	}
}

func (w *connWatcher) holePunched(c network.Conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.punched[c.ID()]
}

// holePunchedLocked is holePunched with mu held.
func (w *connWatcher) holePunchedLocked(c network.Conn) bool { return w.punched[c.ID()] }

// opensPunch reports whether c, a connection to p, is the one a hole
// punch in progress (or ending at the time) opened: a direct connection
// opened since the punch started. mu is held.
func (w *connWatcher) opensPunch(p peer.ID, c network.Conn) bool {
	start, ok := w.punching[p]
	return ok && ConnPath(c) != PathRelayed && !c.Stat().Opened.Before(start)
}

// punchEvent records one event of the hole punching service about
// remote peer p (a *holepunch.StartHolePunchEvt or *EndHolePunchEvt;
// others are ignored) seen at now.
func (w *connWatcher) punchEvent(p peer.ID, evt any, now time.Time) {
	switch e := evt.(type) {
	case *holepunch.StartHolePunchEvt:
		w.mu.Lock()
		w.punching[p] = now.Add(-e.RTT)
		w.mu.Unlock()
	case *holepunch.EndHolePunchEvt:
		w.mu.Lock()
		for _, c := range w.o.Network().ConnsToPeer(p) {
			if !w.opensPunch(p, c) {
				continue
			}
			if e.Success {
				w.punched[c.ID()] = true
			} else {
				delete(w.punched, c.ID())
			}
		}
		delete(w.punching, p)
		w.mu.Unlock()
		w.update(p)
	}
}

func (w *connWatcher) update(p peer.ID) {
	// Computed under mu so that concurrent notifications for one peer
	// are applied in order.
	w.mu.Lock()
	best := BestPathInfo(w.o.Network().ConnsToPeer(p), w.holePunchedLocked)
	prev, known := w.paths[p]
	if best.Path == PathNone {
		delete(w.paths, p)
		delete(w.punching, p)
	} else {
		w.paths[p] = best
	}
	w.mu.Unlock()
	switch {
	case best.Path == PathNone && known:
		for _, f := range w.onDisconnect {
			f(p)
		}
	case best.Path != PathNone && !known:
		for _, f := range w.onConnect {
			f(p)
		}
	case best.Path != PathNone && !prev.same(best):
		w.o.log.Debug("peer path changed", "peer", p, "from", prev.Path, "to", best.Path,
			"via", best.Via, "hole_punched", best.HolePunched, "addr", best.Addr)
		w.o.emit.Emit(events.PeerPath{
			PeerID: p, Path: string(best.Path), Addr: best.Addr, Previous: string(prev.Path),
			Via: best.Via, HolePunched: best.HolePunched,
		})
	}
}

func (w *connWatcher) Listen(network.Network, ma.Multiaddr)      {}
func (w *connWatcher) ListenClose(network.Network, ma.Multiaddr) {}
func (w *connWatcher) Connected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	w.mu.Lock()
	if w.opensPunch(p, c) {
		w.punched[c.ID()] = true
	}
	w.mu.Unlock()
	w.update(p)
}
func (w *connWatcher) Disconnected(_ network.Network, c network.Conn) {
	w.mu.Lock()
	delete(w.punched, c.ID())
	w.mu.Unlock()
	w.update(c.RemotePeer())
}

// relayDialDelay is how long relay addresses wait for direct ones to
// answer.
const relayDialDelay = 500 * time.Millisecond

// dialRanker is libp2p's default ranking, except that relay addresses
// also wait relayDialDelay when the peer has only private direct
// addresses (libp2p only delays them for public ones): a routed private
// network, such as a company's subnets, then gets a direct connection
// rather than one through the relay, which nothing would upgrade later.
func dialRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	ranked := swarm.DefaultDialRanker(addrs)
	direct := false
	for _, a := range ranked {
		if ClassifyAddr(a.Addr) != PathRelayed {
			direct = true
			break
		}
	}
	if !direct {
		return ranked
	}
	for i := range ranked {
		if ClassifyAddr(ranked[i].Addr) == PathRelayed && ranked[i].Delay < relayDialDelay {
			ranked[i].Delay += relayDialDelay
		}
	}
	return ranked
}
