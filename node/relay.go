package node

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/rooms"
	"github.com/parley-chat/parley/trust"
)

// ownPeople is the policy of a chat node's relay service
// (overlay.Config.RelayFor): the peers online in a room this node has
// joined, and the peers marked trusted. The host starts before the trust
// store and the rooms service exist, and a relay request may arrive in
// between, so both are read through atomic pointers; until they are set
// nobody is accepted.
type ownPeople struct {
	rooms atomic.Pointer[rooms.Service]
	trust atomic.Pointer[trust.Store]
	dm    atomic.Pointer[dm.Service] // for known (known.go)
}

// accepts reports whether p may reserve a relay slot on this node, or be
// an end of a circuit through it.
func (o *ownPeople) accepts(p peer.ID) bool {
	if ts := o.trust.Load(); ts != nil && ts.Trusted(p) {
		return true
	}
	rs := o.rooms.Load()
	return rs != nil && rs.SharesRoom(p)
}

// relayForOwnPeople turns on the relay service of a chat node in ocfg,
// restricted to own people, unless the configuration already runs one.
func (n *Node) relayForOwnPeople(ocfg *overlay.Config) {
	if !n.cfg.RelayForOwnPeople || ocfg.RelayService != nil {
		return
	}
	res := overlay.ChatRelayResources()
	ocfg.RelayService = &res
	ocfg.RelayFor = n.own.accepts
}
