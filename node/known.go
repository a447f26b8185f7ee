package node

import "github.com/libp2p/go-libp2p/core/peer"

// known is the node's one "known peer" predicate, given to the services
// as their Config.Known (transfer, dm) and to the overlay
// (Config.Known): the peers marked trusted (/trust), the peers this node
// wrote a direct message to (kept MaxMessageAge), and the members online
// in one of its private rooms. Known peers keep a reserved share of every
// capacity strangers could exhaust (docs/SECURITY.md, "Budgets"). A peer
// that merely wrote to this node, or sits in a public room, is a
// stranger: any throwaway identity could do that. Services start one
// after another and a request may arrive in between, so each source is
// read through an atomic pointer; a source not set yet knows nobody.
func (o *ownPeople) known(p peer.ID) bool {
	if ts := o.trust.Load(); ts != nil && ts.Trusted(p) {
		return true
	}
	if rs := o.rooms.Load(); rs != nil && rs.SharesPrivateRoom(p) {
		return true
	}
	ds := o.dm.Load()
	return ds != nil && ds.Wrote(p)
}

// newcomer reports whether p is a stranger's identity this node first saw
// less than Config.NewcomerAge ago (recording this sighting): given to the
// services as their Config.Newcomer, so that a crowd of fresh identities
// shares a small part of the strangers' budgets (docs/SECURITY.md,
// "Budgets").
func (n *Node) newcomer(p peer.ID) bool { return n.ages.Newcomer(p) }
