package overlay

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
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

// BestPath returns the best path among conns (LAN over direct over
// relayed) and the remote address of the connection that has it;
// PathNone and "" when conns is empty.
func BestPath(conns []network.Conn) (Path, string) {
	best, addr := PathNone, ""
	for _, c := range conns {
		if p := ConnPath(c); p.rank() > best.rank() {
			best, addr = p, c.RemoteMultiaddr().String()
		}
	}
	return best, addr
}

// Path returns the best current path to p and the remote address of the
// connection that carries it; PathNone when p is not connected.
func (o *Host) Path(p peer.ID) (Path, string) {
	return BestPath(o.Network().ConnsToPeer(p))
}

// connWatcher follows individual connections (the peer table only sees
// peers): it reports peer_path when a connected peer's best path changes,
// and tells the other services when peers connect and disconnect. Its
// callbacks run on the swarm's notification path, so they only update
// state and signal, never block.
type connWatcher struct {
	o *Host

	mu    sync.Mutex
	paths map[peer.ID]Path // guarded by mu; best path of connected peers

	// listeners are told about peer-level changes; set before the
	// watcher is registered, read-only afterwards.
	onConnect    []func(peer.ID)
	onDisconnect []func(peer.ID)
}

func newConnWatcher(o *Host) *connWatcher {
	return &connWatcher{o: o, paths: make(map[peer.ID]Path)}
}

func (w *connWatcher) update(p peer.ID) {
	// Computed under mu so that concurrent notifications for one peer
	// are applied in order.
	w.mu.Lock()
	best, addr := BestPath(w.o.Network().ConnsToPeer(p))
	prev, known := w.paths[p]
	if best == PathNone {
		delete(w.paths, p)
	} else {
		w.paths[p] = best
	}
	w.mu.Unlock()
	switch {
	case best == PathNone && known:
		for _, f := range w.onDisconnect {
			f(p)
		}
	case best != PathNone && !known:
		for _, f := range w.onConnect {
			f(p)
		}
	case best != PathNone && prev != best:
		w.o.log.Debug("peer path changed", "peer", p, "from", prev, "to", best, "addr", addr)
		w.o.emit.Emit(events.PeerPath{PeerID: p, Path: string(best), Addr: addr, Previous: string(prev)})
	}
}

func (w *connWatcher) Listen(network.Network, ma.Multiaddr)      {}
func (w *connWatcher) ListenClose(network.Network, ma.Multiaddr) {}
func (w *connWatcher) Connected(_ network.Network, c network.Conn) {
	w.update(c.RemotePeer())
}
func (w *connWatcher) Disconnected(_ network.Network, c network.Conn) {
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
