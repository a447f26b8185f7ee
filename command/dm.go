package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/present"
)

func (in *Interp) dmCommands() []*command {
	return []*command{
		{Info{Name: "msg", Usage: "PEER TEXT", Help: "send a private message (PEER: nick, nick#FP, fingerprint or peer ID)"}, in.cmdMsg},
		{Info{Name: "verify", Usage: "PEER", Help: "show the safety number to compare with PEER"}, in.peerArg("verify", in.cmdVerify)},
		{Info{Name: "trust", Usage: "PEER", Help: "record that you compared PEER's safety number"}, in.peerArg("trust", in.cmdTrust)},
		{Info{Name: "untrust", Usage: "PEER", Help: "forget that PEER was verified"}, in.peerArg("untrust", in.cmdUntrust)},
		{Info{Name: "whois", Usage: "PEER", Help: "peer ID, nick, fingerprint, trust, connection path, addresses"}, in.peerArg("whois", in.cmdWhois)},
		{Info{Name: "forget", Usage: "PEER", Help: "forget PEER's nick, trust and nick pins (e.g. an impostor)"}, in.peerArg("forget", in.cmdForget)},
	}
}

// peerArg wraps a command whose one argument names a peer; f gets the
// peer and the name as typed.
func (in *Interp) peerArg(name string, f func(ctx context.Context, p peer.ID, typed string) (Reply, error)) func(context.Context, string) (Reply, error) {
	return oneArg(name, "PEER", func(ctx context.Context, arg string) (Reply, error) {
		p, err := in.n.ResolvePeer(arg)
		if err != nil {
			return Reply{}, err
		}
		return f(ctx, p, arg)
	})
}

// whoisReach bounds how long /whois tries to reach a peer it is not
// connected to before answering.
const whoisReach = 5 * time.Second

func (in *Interp) cmdMsg(ctx context.Context, args string) (Reply, error) {
	who, text, _ := strings.Cut(args, " ")
	text = strings.TrimSpace(text)
	if who == "" || text == "" {
		return Reply{}, usage("/msg PEER TEXT")
	}
	p, err := in.n.ResolvePeer(who)
	if err != nil {
		return Reply{}, err
	}
	if _, err := in.n.SendDM(ctx, p, text); err != nil {
		return Reply{}, fmt.Errorf("message to %s: %w", safetext.Line(who), err)
	}
	return Reply{Peer: p}, nil
}

func (in *Interp) cmdVerify(_ context.Context, p peer.ID, typed string) (Reply, error) {
	si, err := in.n.Safety(p)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Safety(si, typed), Data: si}, nil
}

func (in *Interp) cmdTrust(_ context.Context, p peer.ID, _ string) (Reply, error) {
	info, err := in.n.Trust(p)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Trusted(info, p, true), Data: info}, nil
}

func (in *Interp) cmdUntrust(_ context.Context, p peer.ID, _ string) (Reply, error) {
	info, err := in.n.Untrust(p)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Trusted(info, p, false), Data: info}, nil
}

func (in *Interp) cmdWhois(ctx context.Context, p peer.ID, _ string) (Reply, error) {
	rctx, cancel := context.WithTimeout(ctx, whoisReach)
	reachErr := in.n.Reach(rctx, p)
	cancel()
	w := in.n.Whois(p)
	if reachErr != nil && w.Path == overlay.PathNone && !errors.Is(reachErr, node.ErrOwnAddress) {
		w.Unreachable = unwrapReach(reachErr)
	}
	return Reply{Text: present.Whois(w), Data: w}, nil
}

func (in *Interp) cmdForget(_ context.Context, p peer.ID, typed string) (Reply, error) {
	known, err := in.n.Forget(p)
	if err != nil {
		return Reply{}, err
	}
	return Reply{Text: present.Forgot(typed, p, known), Data: map[string]any{"peer_id": p, "forgotten": known}}, nil
}

// unwrapReach is the reason of a failed Reach without the "reach X:"
// prefix /whois would repeat.
func unwrapReach(err error) string {
	if re, ok := errors.AsType[*overlay.ReachError](err); ok {
		return re.Error()
	}
	if de, ok := errors.AsType[*overlay.DialError](err); ok {
		return de.Error()
	}
	return err.Error()
}
