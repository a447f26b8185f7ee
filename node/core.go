package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
)

// connectTimeout bounds Connect.
const connectTimeout = 20 * time.Second

// IDInfo is this node's own identity and reachability (/id).
type IDInfo struct {
	PeerID      peer.ID  `json:"peer_id"`
	Fingerprint string   `json:"fingerprint"`
	Nick        string   `json:"nick"`
	Addrs       []string `json:"addrs"`
	DataDir     string   `json:"data_dir"`
	// Downloads is where received files go (--downloads, or
	// DATA_DIR/downloads).
	Downloads string `json:"downloads"`
	Version   string `json:"version"`
	// Reachability is AutoNAT's verdict on this node: "unknown",
	// "public" or "private"; Relays hold a reservation for it and
	// RelayAddrs are its relayed addresses.
	Reachability string    `json:"reachability"`
	Relays       []peer.ID `json:"-"`
	RelayAddrs   []string  `json:"relay_addrs"`
}

// Identity describes this node.
func (n *Node) Identity() IDInfo {
	reach := n.host.Reachability()
	return IDInfo{
		PeerID: n.host.ID(), Fingerprint: n.cfg.Identity.Fingerprint(), Nick: n.Nick(),
		Addrs: overlay.P2PAddrs(n.host.AddrInfo()), DataDir: n.cfg.DataDir, Downloads: n.downloadDir(), Version: n.cfg.Version,
		Reachability: reach.Reachability, Relays: reach.Relays, RelayAddrs: reach.RelayAddrs,
	}
}

// PeerRow is one connected peer (/peers).
type PeerRow struct {
	PeerID      peer.ID `json:"peer_id"`
	Fingerprint string  `json:"fingerprint"`
	// Nick is the nick the peer last claimed ("" when none), for people.
	Nick      string `json:"-"`
	Addr      string `json:"addr"`
	Direction string `json:"direction"`
	Relayed   bool   `json:"relayed"`
	// Path is the best connection's path.
	Path overlay.Path `json:"path"`
	// Via is the relay's peer ID on a relayed path (omitted otherwise);
	// ViaNick the nick it last claimed, for people. HolePunched: hole
	// punching (DCUtR) opened the direct connection (omitted when
	// false).
	Via         peer.ID       `json:"via,omitempty"`
	ViaNick     string        `json:"-"`
	HolePunched bool          `json:"hole_punched,omitempty"`
	RTT         time.Duration `json:"-"`
	// Since is when the first connection opened.
	Since time.Time `json:"-"`
}

// Peers lists the connected peers.
func (n *Node) Peers() []PeerRow {
	ps := n.host.Peers()
	rows := make([]PeerRow, len(ps))
	for i, p := range ps {
		pi := n.host.PathInfo(p.ID)
		addr := pi.Addr
		if addr == "" {
			addr = p.Addr
		}
		rows[i] = PeerRow{
			PeerID: p.ID, Fingerprint: identity.Fingerprint(p.ID), Nick: n.nickOf(p.ID), Addr: addr,
			Direction: p.Direction, Relayed: pi.Path == overlay.PathRelayed, Path: pi.Path,
			Via: pi.Via, ViaNick: n.nickOf(pi.Via), HolePunched: pi.HolePunched,
			RTT: p.RTT, Since: p.Since,
		}
	}
	return rows
}

// Connect dials a peer's full address (MULTIADDR/p2p/ID) and keeps the
// connection from then on, like --peer. Given a peer ID, nick or
// fingerprint instead, it reaches that peer by every known way (Reach).
// It returns the peer's ID.
func (n *Node) Connect(ctx context.Context, addr string) (peer.ID, error) {
	if !strings.Contains(addr, "/") {
		p, err := n.ResolvePeer(addr)
		if err != nil {
			return "", err
		}
		return p, n.Reach(ctx, p)
	}
	ai, err := overlay.ParsePeerAddr(addr)
	if err != nil {
		return "", err
	}
	if ai.ID == n.host.ID() {
		return "", fmt.Errorf("%s is %w", addr, ErrOwnAddress)
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := n.host.Connect(cctx, ai); err != nil {
		return "", fmt.Errorf("connect: %w", overlay.ClassifyDial(ai.ID, err))
	}
	if err := n.host.Keep(ai); err != nil {
		return "", err
	}
	return ai.ID, nil
}

// MarshalJSON writes the contract form of a /peers row: rtt_ms in whole
// milliseconds, since in RFC 3339 UTC.
func (r PeerRow) MarshalJSON() ([]byte, error) {
	type plain PeerRow
	return json.Marshal(struct {
		plain
		RTTMillis int64  `json:"rtt_ms"`
		Since     string `json:"since"`
	}{plain(r), r.RTT.Milliseconds(), r.Since.UTC().Format(time.RFC3339)})
}
