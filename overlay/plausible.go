package overlay

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Dial only what you may (docs/SECURITY.md, "Budgets"): the addresses a
// stranger announces (identify, also identify push) are dialled back only
// when plausible, so that no peer can turn this node into a dialer of LAN
// or third-party hosts of its choosing.
const (
	// maxPlausibleAddrs bounds a stranger's addresses kept.
	maxPlausibleAddrs = 8
	// maxPortsPerHost bounds the ports kept per IP and transport (TCP,
	// UDP): a node listens on one or two per IP; more is a port scan.
	maxPortsPerHost = 2
	// maxGuardedPeers bounds the strangers whose refused addresses are
	// remembered; refusedFor is how long they are.
	maxGuardedPeers = 1024
	refusedFor      = time.Hour
	// maxStrangerPortsPerHost bounds the ports of one IP and transport
	// that all strangers together may have this node dial back, within
	// refusedFor: identities taking turns, each within maxPortsPerHost,
	// are a port scan too. Loopback is exempt (only processes of this
	// machine can announce it, and they can dial it themselves); more
	// strangers behind one address are not dialled back, they can dial.
	maxStrangerPortsPerHost = 4
	// maxScannedHosts bounds the hosts whose ports are counted.
	maxScannedHosts = 4096
)

// addrScope is how far an address reaches.
type addrScope int

const (
	scopeNone     addrScope = iota // no IP: a DNS name, or unparsable
	scopeLoopback                  // this machine
	scopePrivate                   // the LAN: private, link-local, ULA, CGNAT
	scopePublic                    // the internet
)

// scopeOf is the scope of a's first component (for a circuit address, the
// relay's transport address).
func scopeOf(a ma.Multiaddr) addrScope {
	if len(a) == 0 || (a[0].Code() != ma.P_IP4 && a[0].Code() != ma.P_IP6) {
		return scopeNone
	}
	switch {
	case manet.IsIPLoopback(a):
		return scopeLoopback
	case manet.IsPrivateAddr(a) || manet.IsIP6LinkLocal(a):
		return scopePrivate
	case manet.IsPublicAddr(a):
		return scopePublic
	}
	return scopeNone
}

// mayAnnounce reports whether an address of scope s is plausible from a
// peer connected at remote: a peer on loopback announces loopback
// addresses, a peer on the LAN LAN or public ones, a peer on the internet
// public ones only. A relayed connection has the scope of the relay's
// address. DNS names are not dialled for a stranger: they may resolve
// anywhere.
func mayAnnounce(remote ma.Multiaddr, s addrScope) bool {
	conn := scopeOf(remote)
	if conn == scopeNone {
		conn = scopePublic
	}
	switch conn {
	case scopeLoopback:
		return s == scopeLoopback
	case scopePrivate:
		return s == scopePrivate || s == scopePublic
	}
	return s == scopePublic
}

// plausibleAddrs splits what a stranger connected at remote announced
// into the addresses this node may dial back (keep) and the others: of
// the scope mayAnnounce allows, at most maxPortsPerHost ports per IP and
// transport, at most maxPlausibleAddrs in all, in the announced order.
func plausibleAddrs(announced []ma.Multiaddr, remote ma.Multiaddr) (keep, drop []ma.Multiaddr) {
	ports := make(map[string]map[string]bool) // "ip/transport" -> ports
	for _, a := range announced {
		if a == nil || len(keep) >= maxPlausibleAddrs || !mayAnnounce(remote, scopeOf(a)) {
			drop = append(drop, a)
			continue
		}
		if host, port, ok := addrHostPort(a); ok {
			seen := ports[host]
			if seen == nil {
				seen = make(map[string]bool)
				ports[host] = seen
			}
			if !seen[port] && len(seen) >= maxPortsPerHost {
				drop = append(drop, a)
				continue
			}
			seen[port] = true
		}
		keep = append(keep, a)
	}
	return keep, drop
}

// addrHostPort returns "ip/tcp" or "ip/udp" and the port of a's transport
// address.
func addrHostPort(a ma.Multiaddr) (host, port string, ok bool) {
	if len(a) < 2 {
		return "", "", false
	}
	switch a[1].Code() {
	case ma.P_TCP, ma.P_UDP:
		return a[0].Value() + "/" + a[1].Protocol().Name, a[1].Value(), true
	}
	return "", "", false
}

// addrGuard keeps the addresses strangers announced that were not
// plausible out of the peerstore and refuses dials to them (the
// connection gater asks refuses), for refusedFor.
type addrGuard struct {
	known func(peer.ID) bool // Config.Known; nil knows nobody

	mu      sync.Mutex
	refused map[peer.ID]refusedAddrs // guarded by mu
	dropped int64                    // guarded by mu; addresses refused in all
	// ports are the ports of each non-loopback "ip/transport" strangers'
	// kept addresses named, with when they were last announced; guarded
	// by mu.
	ports map[string]map[string]time.Time
}

type refusedAddrs struct {
	addrs map[string]bool
	at    time.Time
}

func newAddrGuard(known func(peer.ID) bool) *addrGuard {
	return &addrGuard{known: known, refused: make(map[peer.ID]refusedAddrs), ports: make(map[string]map[string]time.Time)}
}

// isKnown reports whether p is a known peer (Config.Known).
func (g *addrGuard) isKnown(p peer.ID) bool { return g.known != nil && g.known(p) }

// refuses reports whether dialling p at a is refused: p, a stranger,
// announced a and it was not plausible.
func (g *addrGuard) refuses(p peer.ID, a ma.Multiaddr) bool {
	g.mu.Lock()
	r, ok := g.refused[p]
	g.mu.Unlock()
	if !ok || !r.addrs[string(a.Bytes())] || time.Since(r.at) > refusedFor {
		return false
	}
	return !g.isKnown(p)
}

// identified applies the rules to what p announced over c: unless p is
// known, the addresses that are not plausible are removed from the
// peerstore and refused. It returns the addresses worth remembering.
func (g *addrGuard) identified(o *Host, p peer.ID, announced []ma.Multiaddr, c network.Conn) []ma.Multiaddr {
	var remote ma.Multiaddr
	if c != nil {
		remote = c.RemoteMultiaddr()
	}
	if g.isKnown(p) {
		return announced
	}
	keep, drop := plausibleAddrs(announced, remote)
	now := time.Now()
	g.mu.Lock()
	keep, scanned := g.acrossStrangers(keep, now)
	g.mu.Unlock()
	drop = append(drop, scanned...)
	if len(drop) == 0 {
		return keep
	}
	set := make(map[string]bool, len(drop))
	for _, a := range drop {
		if a != nil {
			set[string(a.Bytes())] = true
			o.Peerstore().SetAddr(p, a, 0)
		}
	}
	g.mu.Lock()
	if _, ok := g.refused[p]; !ok && len(g.refused) >= maxGuardedPeers {
		g.evictOldest()
	}
	g.refused[p] = refusedAddrs{addrs: set, at: now}
	g.dropped += int64(len(set))
	g.mu.Unlock()
	o.log.Debug("ignoring implausible addresses a stranger announced", "peer", p, "kept", len(keep), "dropped", len(drop))
	return keep
}

// acrossStrangers drops from a stranger's plausible addresses those that
// would make the ports strangers had this node dial on one non-loopback
// IP and transport more than maxStrangerPortsPerHost within refusedFor,
// and counts the others' ports. g.mu must be held.
func (g *addrGuard) acrossStrangers(keep []ma.Multiaddr, now time.Time) (kept, drop []ma.Multiaddr) {
	kept = keep[:0:0]
	for _, a := range keep {
		host, port, ok := addrHostPort(a)
		if !ok || scopeOf(a) == scopeLoopback {
			kept = append(kept, a)
			continue
		}
		seen := g.ports[host]
		for p, at := range seen {
			if now.Sub(at) > refusedFor {
				delete(seen, p)
			}
		}
		if _, known := seen[port]; !known && len(seen) >= maxStrangerPortsPerHost {
			drop = append(drop, a)
			continue
		}
		if seen == nil {
			if len(g.ports) >= maxScannedHosts {
				g.evictOldestHost()
			}
			seen = make(map[string]time.Time)
			g.ports[host] = seen
		}
		seen[port] = now
		kept = append(kept, a)
	}
	return kept, drop
}

// evictOldestHost forgets the host whose ports were announced least
// recently. g.mu must be held.
func (g *addrGuard) evictOldestHost() {
	var oldest string
	var at time.Time
	for h, ports := range g.ports {
		var last time.Time
		for _, t := range ports {
			if t.After(last) {
				last = t
			}
		}
		if oldest == "" || last.Before(at) {
			oldest, at = h, last
		}
	}
	delete(g.ports, oldest)
}

// evictOldest forgets the oldest refused set. g.mu must be held.
func (g *addrGuard) evictOldest() {
	var oldest peer.ID
	var at time.Time
	for p, r := range g.refused {
		if at.IsZero() || r.at.Before(at) {
			oldest, at = p, r.at
		}
	}
	delete(g.refused, oldest)
}

// watch applies identified to every identification (and identify push)
// until the host closes.
func (g *addrGuard) watch(o *Host, sub event.Subscription) {
	defer func() { _ = sub.Close() }()
	for {
		select {
		case <-o.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerIdentificationCompleted)
			if ev.Peer != o.ID() {
				g.identified(o, ev.Peer, announcedAddrs(ev), ev.Conn)
			}
		}
	}
}

// announcedAddrs is what a peer announced in identify: its listen
// addresses and those of its signed peer record (which libp2p prefers).
func announcedAddrs(ev event.EvtPeerIdentificationCompleted) []ma.Multiaddr {
	out := append([]ma.Multiaddr(nil), ev.ListenAddrs...)
	if ev.SignedPeerRecord != nil {
		if rec, err := ev.SignedPeerRecord.Record(); err == nil {
			if pr, ok := rec.(*peer.PeerRecord); ok {
				out = append(out, pr.Addrs...)
			}
		}
	}
	return ma.Unique(out)
}

// RefusedAddrs counts the addresses strangers announced that were not
// plausible, and so are not dialled, since New.
func (o *Host) RefusedAddrs() int64 {
	o.guard.mu.Lock()
	defer o.guard.mu.Unlock()
	return o.guard.dropped
}
