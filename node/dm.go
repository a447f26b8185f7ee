package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/trust"
)

// trustWriteBehind is how long the trust store keeps observed nicks in
// memory before writing them (trust.Store.WriteBehind; also at Close).
const trustWriteBehind = time.Second

// startDM opens the trust store and starts the direct-message service.
func (n *Node) startDM(ctx context.Context) error {
	ts, err := trust.Open(n.store.DB())
	if err != nil {
		return fmt.Errorf("open trust store: %w", err)
	}
	// A crowd of new identities in a room must not cost a store write
	// each in the event loop, ahead of known peers' lines.
	ts.WriteBehind(trustWriteBehind)
	n.trust = ts
	n.own.trust.Store(ts)
	cfg := n.cfg.DM
	cfg.Host = n.host
	cfg.DB = n.store.DB()
	cfg.Emitter = n.internal
	cfg.Logger = n.log.With("component", "dm")
	cfg.Nick = n.Nick
	cfg.ConfirmShown = true // marked shown by the node (shown.go)
	cfg.Known = n.own.known
	cfg.Newcomer = n.newcomer
	svc, err := dm.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start direct messages: %w", err)
	}
	n.dm = svc
	n.own.dm.Store(svc)
	n.dmMarks.Store(svc)
	n.shown.poke() // the marks that waited for it
	return nil
}

// observeNick records the nick a peer claims (from a DM or a room) and
// warns, once, when the nick is pinned to another key. It runs on the
// node's event loop only.
func (n *Node) observeNick(p peer.ID, nick string) {
	if p == n.host.ID() || nick == "" {
		return
	}
	c, err := n.trust.Observe(p, nick)
	if err != nil {
		n.log.Warn("record peer nick", "peer", p, "err", err)
		if c == nil {
			return
		}
	}
	if c != nil && (c.New || n.warned[p] != identity.NickKey(nick)) {
		// Once per conflict and session: a conflict recorded in an
		// earlier run warns again when the impostor comes back.
		if n.warned == nil || len(n.warned) >= maxWarned {
			n.warned = make(map[peer.ID]string)
		}
		n.warned[p] = identity.NickKey(nick)
		n.emit.Emit(c.Event())
	}
	n.mu.Lock()
	if n.named != nil {
		close(n.named)
		n.named = nil
	}
	n.mu.Unlock()
}

// ResolvePeer turns a peer ID, fingerprint, nick#FP or unambiguous nick
// into a peer ID (see trust.Store.Resolve for the errors).
func (n *Node) ResolvePeer(name string) (peer.ID, error) {
	return n.trust.Resolve(name)
}

// maxWarned bounds the peers observeNick remembers having warned about
// in this session (a crowd of impostors resets it, warning again).
const maxWarned = 4096

// Forget removes p from the trust store (/forget): its nick, trust mark
// and the nick pins it holds. It reports whether p was known.
func (n *Node) Forget(p peer.ID) (bool, error) {
	if p == n.host.ID() {
		return false, fmt.Errorf("%s is this node; /forget is for other peers", overlay.ShortPeer(p))
	}
	known, err := n.trust.Forget(p)
	if err != nil {
		return false, err
	}
	return known, nil
}

// ResolvePeerWait is ResolvePeer, but a nick nobody has claimed yet is
// waited for (until ctx ends) as room members announce themselves. Other
// errors (an ambiguous nick, a malformed name) return at once.
func (n *Node) ResolvePeerWait(ctx context.Context, name string) (peer.ID, error) {
	for {
		n.mu.Lock()
		if n.named == nil {
			n.named = make(chan struct{})
		}
		named := n.named
		n.mu.Unlock()
		p, err := n.trust.Resolve(name)
		if err == nil || !errors.Is(err, trust.ErrUnknownPeer) {
			return p, err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-named:
		}
	}
}

// Reach makes sure the node holds a connection to p, trying existing
// connections, known and remembered addresses, room members' addresses,
// the DHT and relays through common peers (overlay.Host.Reach). DMs and
// file offers reach their peer this way on their own; Reach is for
// callers that want the connection first (/whois, /connect, parley send).
func (n *Node) Reach(ctx context.Context, p peer.ID) error {
	if p == n.host.ID() {
		return fmt.Errorf("%s is %w", overlay.ShortPeer(p), ErrOwnAddress)
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := n.host.Reach(ctx, p); err != nil {
		return fmt.Errorf("reach %s: %w", overlay.ShortPeer(p), err)
	}
	return nil
}

// SendDM queues a direct message to p and returns its ID; dm_status
// events report its delivery.
func (n *Node) SendDM(ctx context.Context, p peer.ID, text string) (string, error) {
	if n.dm == nil {
		return "", fmt.Errorf("direct messages: %w", ErrNotRunning)
	}
	return n.dm.Send(ctx, p, text)
}

// DMHistory returns the last count direct messages exchanged with a peer
// (both directions, with the delivery state of outgoing ones), oldest
// first.
func (n *Node) DMHistory(p peer.ID, count int) ([]dm.Entry, error) {
	if n.dm == nil {
		return nil, fmt.Errorf("direct messages: %w", ErrNotRunning)
	}
	return n.dm.History(p, count)
}

// DMConversations lists the peers with stored direct messages, most
// recent first, at most limit (the terminal UI lists them again after a
// restart).
func (n *Node) DMConversations(limit int) ([]dm.Conversation, error) {
	if n.dm == nil {
		return nil, fmt.Errorf("direct messages: %w", ErrNotRunning)
	}
	return n.dm.Conversations(limit)
}

// SafetyInfo is the safety number shared with a peer (/verify).
type SafetyInfo struct {
	PeerID       peer.ID `json:"peer_id"`
	Nick         string  `json:"nick"`
	SafetyNumber string  `json:"safety_number"`
	Trusted      bool    `json:"trusted"`
}

// Safety returns the safety number to compare with p.
func (n *Node) Safety(p peer.ID) (SafetyInfo, error) {
	num, err := identity.PeerSafetyNumber(n.host.ID(), p)
	if err != nil {
		return SafetyInfo{}, fmt.Errorf("safety number for %s: %w", p, err)
	}
	info, _ := n.trust.Get(p)
	return SafetyInfo{PeerID: p, Nick: info.Nick, SafetyNumber: num, Trusted: info.Trusted}, nil
}

// Trust records that the user compared p's safety number.
func (n *Node) Trust(p peer.ID) (trust.PeerInfo, error) {
	if err := n.trust.Trust(p); err != nil {
		return trust.PeerInfo{}, fmt.Errorf("trust %s: %w", p, err)
	}
	info, _ := n.trust.Get(p)
	return info, nil
}

// Untrust forgets that p was verified.
func (n *Node) Untrust(p peer.ID) (trust.PeerInfo, error) {
	if err := n.trust.Untrust(p); err != nil {
		return trust.PeerInfo{}, fmt.Errorf("untrust %s: %w", p, err)
	}
	info, _ := n.trust.Get(p)
	return info, nil
}

// Whois describes p: trust record, connections and addresses.
func (n *Node) Whois(p peer.ID) trust.WhoisInfo {
	return trust.Whois(n.host, n.trust, p)
}

// PeerName is the nick p last claimed, "" when none (present.Namer).
func (n *Node) PeerName(p peer.ID) string {
	info, _ := n.trust.Get(p)
	return info.Nick
}
