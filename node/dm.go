package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/trust"
)

// startDM opens the trust store and starts the direct-message service.
func (n *Node) startDM(ctx context.Context) error {
	ts, err := trust.Open(n.store.DB())
	if err != nil {
		return fmt.Errorf("open trust store: %w", err)
	}
	n.trust = ts
	cfg := n.cfg.DM
	cfg.Host = n.host
	cfg.DB = n.store.DB()
	cfg.Emitter = n.emit
	cfg.Logger = n.log.With("component", "dm")
	cfg.Nick = n.Nick
	cfg.OnNick = n.observeNick
	svc, err := dm.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start direct messages: %w", err)
	}
	n.dm = svc
	return nil
}

// observeNick records the nick a peer claims (from a DM or a room) and
// warns, once, when the nick is pinned to another key.
func (n *Node) observeNick(p peer.ID, nick string) {
	if p == n.host.ID() || nick == "" {
		return
	}
	c, err := n.trust.Observe(p, nick)
	if err != nil {
		n.log.Warn("record peer nick", "peer", p, "err", err)
		return
	}
	if c != nil && c.New {
		n.emit.Emit(c.Event())
	}
}

// resolvePeer turns a peer ID, fingerprint or unambiguous nick into a
// peer ID.
func (n *Node) resolvePeer(name string) (peer.ID, error) {
	p, err := n.trust.Resolve(name)
	if err != nil {
		return "", err
	}
	return p, nil
}

func (n *Node) dmCommands() []*command {
	return []*command{
		{name: "msg", usage: "PEER TEXT", help: "send a private message (PEER: nick, nick#FP, fingerprint or peer ID)", run: n.cmdMsg},
		{name: "verify", usage: "PEER", help: "show the safety number to compare with PEER", run: n.cmdVerify},
		{name: "trust", usage: "PEER", help: "record that you compared PEER's safety number", run: n.cmdTrust},
		{name: "untrust", usage: "PEER", help: "forget that PEER was verified", run: n.cmdUntrust},
		{name: "whois", usage: "PEER", help: "peer ID, nick, fingerprint, trust, connection path, addresses", run: n.cmdWhois},
	}
}

func (n *Node) cmdMsg(ctx context.Context, args string) error {
	who, text, _ := strings.Cut(args, " ")
	text = strings.TrimSpace(text)
	if who == "" || text == "" {
		return errors.New("usage: /msg PEER TEXT")
	}
	p, err := n.resolvePeer(who)
	if err != nil {
		return err
	}
	if _, err := n.dm.Send(ctx, p, text); err != nil {
		return fmt.Errorf("message to %s: %w", safetext.Line(who), err)
	}
	return nil
}

// onePeer parses the single PEER argument of a command.
func (n *Node) onePeer(cmd, args string) (peer.ID, error) {
	if args == "" || strings.ContainsAny(args, " \t") {
		return "", fmt.Errorf("usage: /%s PEER", cmd)
	}
	return n.resolvePeer(args)
}

// SafetyInfo is the structured answer of /verify.
type SafetyInfo struct {
	PeerID       string `json:"peer_id"`
	Nick         string `json:"nick"`
	SafetyNumber string `json:"safety_number"`
	Trusted      bool   `json:"trusted"`
}

func (n *Node) cmdVerify(_ context.Context, args string) error {
	p, err := n.onePeer("verify", args)
	if err != nil {
		return err
	}
	num, err := identity.PeerSafetyNumber(n.host.ID(), p)
	if err != nil {
		return fmt.Errorf("safety number for %s: %w", p, err)
	}
	info, _ := n.trust.Get(p)
	si := SafetyInfo{PeerID: p.String(), Nick: info.Nick, SafetyNumber: num, Trusted: info.Trusted}
	text := fmt.Sprintf("safety number with %s (%s):\n  %s\nCompare it with %s over a channel you trust (in person, a call).\nIf it matches, run /trust %s.",
		safetext.Line(displayNick(info.Nick, p)), p, num, safetext.Line(displayNick(info.Nick, p)), args)
	n.emit.Emit(events.Info{Text: text, Data: si})
	return nil
}

func (n *Node) cmdTrust(_ context.Context, args string) error {
	p, err := n.onePeer("trust", args)
	if err != nil {
		return err
	}
	if err := n.trust.Trust(p); err != nil {
		return fmt.Errorf("trust %s: %w", p, err)
	}
	info, _ := n.trust.Get(p)
	n.emit.Emit(events.Info{Text: fmt.Sprintf("%s (%s) is now trusted", safetext.Line(displayNick(info.Nick, p)), p), Data: info})
	return nil
}

func (n *Node) cmdUntrust(_ context.Context, args string) error {
	p, err := n.onePeer("untrust", args)
	if err != nil {
		return err
	}
	if err := n.trust.Untrust(p); err != nil {
		return fmt.Errorf("untrust %s: %w", p, err)
	}
	info, _ := n.trust.Get(p)
	n.emit.Emit(events.Info{Text: fmt.Sprintf("%s (%s) is no longer trusted", safetext.Line(displayNick(info.Nick, p)), p), Data: info})
	return nil
}

func (n *Node) cmdWhois(_ context.Context, args string) error {
	p, err := n.onePeer("whois", args)
	if err != nil {
		return err
	}
	w := trust.Whois(n.host, n.trust, p)
	n.emit.Emit(events.Info{Text: w.Text(), Data: w})
	return nil
}

func displayNick(nick string, p peer.ID) string {
	if nick == "" {
		return identity.ShortFingerprint(p)
	}
	return nick
}
