package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/overlay"
)

// connectTimeout bounds /connect.
const connectTimeout = 20 * time.Second

func (n *Node) coreCommands() []*command {
	return []*command{
		{name: "help", help: "list the commands", run: noArgs("help", func(context.Context) error {
			n.emit.Emit(events.Info{Text: n.helpText()})
			return nil
		})},
		{name: "quit", help: "leave cleanly", run: noArgs("quit", func(context.Context) error { return ErrQuit })},
		{name: "id", help: "show this node's peer ID, fingerprint, nick and addresses", run: noArgs("id", n.cmdID)},
		{name: "peers", help: "list connected peers", run: noArgs("peers", n.cmdPeers)},
		{name: "connect", usage: "MULTIADDR/p2p/ID", help: "connect to a peer and keep the connection", run: n.cmdConnect},
		{name: "nick", usage: "NAME", help: "change your nick (saved in config.toml)", run: n.cmdNick},
	}
}

// IDInfo is the structured answer of /id.
type IDInfo struct {
	PeerID      string   `json:"peer_id"`
	Fingerprint string   `json:"fingerprint"`
	Nick        string   `json:"nick"`
	Addrs       []string `json:"addrs"`
	DataDir     string   `json:"data_dir"`
	Version     string   `json:"version"`
	// Reachability is AutoNAT's verdict on this node: "unknown",
	// "public" or "private"; RelayAddrs are its relayed addresses.
	Reachability string   `json:"reachability"`
	RelayAddrs   []string `json:"relay_addrs"`
}

func (n *Node) reachabilityText() string {
	r := n.host.Reachability()
	text := r.Reachability
	if len(r.Relays) > 0 {
		text += fmt.Sprintf(", through %d relay(s)", len(r.Relays))
	}
	return text
}

func (n *Node) cmdID(context.Context) error {
	r := n.Ready()
	reach := n.host.Reachability()
	info := IDInfo{
		PeerID: r.PeerID, Fingerprint: r.Fingerprint, Nick: r.Nick, Addrs: r.Addrs,
		DataDir: n.cfg.DataDir, Version: n.cfg.Version,
		Reachability: reach.Reachability, RelayAddrs: reach.RelayAddrs,
	}
	var b strings.Builder
	fmt.Fprintf(&b, "peer id:     %s\nfingerprint: %s\nnick:        %s\ndata dir:    %s\nreachable:   %s",
		info.PeerID, info.Fingerprint, safetext.Line(info.Nick), info.DataDir, n.reachabilityText())
	for _, a := range info.Addrs {
		fmt.Fprintf(&b, "\naddr:        %s", a)
	}
	n.emit.Emit(events.Info{Text: b.String(), Data: info})
	return nil
}

// PeerRow is one entry of the structured answer of /peers.
type PeerRow struct {
	PeerID      string `json:"peer_id"`
	Fingerprint string `json:"fingerprint"`
	Addr        string `json:"addr"`
	Direction   string `json:"direction"`
	Relayed     bool   `json:"relayed"`
	// Path is "lan", "direct" or "relayed": the best connection's path.
	Path      string `json:"path"`
	RTTMillis int64  `json:"rtt_ms"`
	Since     string `json:"since"`
}

func (n *Node) cmdPeers(context.Context) error {
	ps := n.host.Peers()
	rows := make([]PeerRow, len(ps))
	var b strings.Builder
	fmt.Fprintf(&b, "%d connected peer(s); reachability: %s", len(ps), n.reachabilityText())
	for i, p := range ps {
		path, addr := n.host.Path(p.ID)
		if addr == "" {
			addr = p.Addr
		}
		rows[i] = PeerRow{
			PeerID:      p.ID.String(),
			Fingerprint: identity.Fingerprint(p.ID),
			Addr:        addr,
			Direction:   p.Direction,
			Relayed:     path == overlay.PathRelayed,
			Path:        string(path),
			RTTMillis:   p.RTT.Milliseconds(),
			Since:       p.Since.UTC().Format(time.RFC3339),
		}
		fmt.Fprintf(&b, "\n  %s  %s  %s %s, rtt %v", p.ID, rows[i].Fingerprint, path, addr, p.RTT.Round(time.Millisecond))
	}
	n.emit.Emit(events.Info{Text: b.String(), Data: rows})
	return nil
}

func (n *Node) cmdConnect(ctx context.Context, args string) error {
	if args == "" {
		return fmt.Errorf("usage: /connect MULTIADDR/p2p/ID")
	}
	ai, err := overlay.ParsePeerAddr(args)
	if err != nil {
		return err
	}
	if ai.ID == n.host.ID() {
		return fmt.Errorf("%s is this node's own address", args)
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := n.host.Connect(cctx, ai); err != nil {
		return fmt.Errorf("connect %s: %w", args, err)
	}
	// Keep it connected from now on, like --peer.
	return n.host.Keep(ai)
}

func (n *Node) cmdNick(_ context.Context, args string) error {
	if args == "" {
		n.emit.Emit(events.Info{Text: "nick: " + safetext.Line(n.Nick())})
		return nil
	}
	if err := n.SetNick(args); err != nil {
		return err
	}
	n.emit.Emit(events.Info{Text: "nick is now " + safetext.Line(args)})
	return nil
}
