package overlay

import (
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/conngater"
	ma "github.com/multiformats/go-multiaddr"
)

// gater is the host's connection gater: libp2p's BasicConnectionGater,
// which refuses denied peer IDs and subnets, and, when an allow list is
// set, allow-list mode, in which every peer not on the list is refused
// too: before dialling it, and after the handshake of an inbound
// connection (the first point where the remote peer ID is known and
// authenticated). Inbound connections from unlisted peers are therefore
// closed right after the handshake, before any stream is opened.
type gater struct {
	*conngater.BasicConnectionGater
	// allow is nil when every peer that is not denied may connect. It is
	// never modified after newGater.
	allow map[peer.ID]struct{}
	// guard refuses the addresses strangers announced that are not
	// plausible (plausible.go); set once by New.
	guard *addrGuard
}

// newGater returns a gater that refuses deny and, when allow is not
// empty, every peer not in allow.
func newGater(allow []peer.ID) (*gater, error) {
	basic, err := conngater.NewBasicConnectionGater(nil)
	if err != nil {
		return nil, err
	}
	g := &gater{BasicConnectionGater: basic}
	if len(allow) > 0 {
		g.allow = make(map[peer.ID]struct{}, len(allow))
		for _, p := range allow {
			g.allow[p] = struct{}{}
		}
	}
	return g, nil
}

// allowed reports whether p passes the allow list.
func (g *gater) allowed(p peer.ID) bool {
	if g.allow == nil {
		return true
	}
	_, ok := g.allow[p]
	return ok
}

// InterceptPeerDial refuses to dial peers that are denied or not allowed.
func (g *gater) InterceptPeerDial(p peer.ID) bool {
	return g.allowed(p) && g.BasicConnectionGater.InterceptPeerDial(p)
}

// InterceptAddrDial refuses to dial peers that are denied or not allowed,
// denied addresses, and addresses a stranger announced that are not
// plausible.
func (g *gater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return g.allowed(p) && g.BasicConnectionGater.InterceptAddrDial(p, a) &&
		(g.guard == nil || !g.guard.refuses(p, a))
}

// InterceptSecured refuses authenticated connections, in either direction,
// of peers that are denied or not allowed.
func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, cm network.ConnMultiaddrs) bool {
	return g.allowed(p) && g.BasicConnectionGater.InterceptSecured(dir, p, cm)
}

// InterceptUpgraded is the BasicConnectionGater's (it allows every
// upgraded connection); spelled out so that the set of methods is visible
// here.
func (g *gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.BasicConnectionGater.InterceptUpgraded(c)
}
