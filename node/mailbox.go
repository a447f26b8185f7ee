package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/mailbox"
)

// startMailbox starts offline delivery (package mailbox): the courier,
// which deposits DMs for offline recipients and picks up this node's
// mailbox, and, when Config.HoldMailboxes, a holder for other peers.
func (n *Node) startMailbox(ctx context.Context) error {
	if n.cfg.HoldMailboxes {
		hc := n.cfg.Holder
		hc.Host = n.host
		hc.DB = n.store.DB()
		hc.Logger = n.log.With("component", "mailbox-holder")
		// Known depositors keep a reserved share of the holder; strangers
		// share the rest per subnet and by identity age (docs/SECURITY.md,
		// "Budgets").
		if hc.Known == nil {
			hc.Known = n.own.known
		}
		if hc.Newcomer == nil {
			hc.Newcomer = n.newcomer
		}
		h, err := mailbox.NewHolder(ctx, hc)
		if err != nil {
			return fmt.Errorf("start mailbox holder: %w", err)
		}
		n.holder = h
	}
	cc := n.cfg.Mailbox
	cc.Host = n.host
	cc.DB = n.store.DB()
	cc.Key = n.cfg.Identity.PrivKey
	cc.Outbox = n.dm
	cc.Emitter = n.internal
	cc.Logger = n.log.With("component", "mailbox")
	cc.Nick = n.Nick
	cc.Eligible = n.mayHold
	// Holders are reached like any peer (overlay.Host.Reach): known
	// addresses, the DHT, relays through common peers.
	cc.Connect = func(ctx context.Context, ai peer.AddrInfo) error {
		if len(ai.Addrs) > 0 {
			n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, 10*time.Minute)
		}
		return n.host.Reach(ctx, ai.ID)
	}
	c, err := mailbox.New(ctx, cc)
	if err != nil {
		return fmt.Errorf("start offline delivery: %w", err)
	}
	n.courier.Store(c)
	return nil
}

// mayHold says whether p may hold this node's mailbox: a peer the user
// configured (--peer, --bootstrap, --relay; normally a serve node) or
// trusted (/trust), that runs a holder.
func (n *Node) mayHold(p peer.ID) bool {
	for _, list := range [][]peer.AddrInfo{n.cfg.Overlay.Peers, n.cfg.Overlay.Bootstrap, n.cfg.Overlay.Relays} {
		for _, ai := range list {
			if ai.ID == p {
				return true
			}
		}
	}
	info, _ := n.trust.Get(p)
	return info.Trusted
}

// closeMailbox stops the courier and the holder (before dm, which the
// courier uses).
func (n *Node) closeMailbox() []error {
	var errs []error
	if c := n.courier.Load(); c != nil {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.holder != nil {
		if err := n.holder.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
