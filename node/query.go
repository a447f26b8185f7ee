package node

import (
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/overlay"
)

// Read-only accessors for user interfaces that show state continuously
// (the terminal UI). They change nothing. Text in the results is as peers
// sent it: displays make it inert (package present, internal/safetext).

// maxPeerList bounds PeerList.
const maxPeerList = 256

// recentPeer is how recently an unconnected known peer must have been
// seen to appear in PeerList.
const recentPeer = 24 * time.Hour

// Status is the node's own state for a status bar.
type Status struct {
	PeerID      peer.ID
	Nick        string
	Fingerprint string
	// Reachability is AutoNAT's verdict: "unknown", "public" or
	// "private"; Relays is the number of relays holding a reservation.
	Reachability string
	Relays       int
	// Peers is the number of connected peers.
	Peers int
}

// Status returns the node's own state.
func (n *Node) Status() Status {
	r := n.host.Reachability()
	return Status{
		PeerID:       n.host.ID(),
		Nick:         n.Nick(),
		Fingerprint:  n.cfg.Identity.Fingerprint(),
		Reachability: r.Reachability,
		Relays:       len(r.Relays),
		Peers:        len(n.host.Peers()),
	}
}

// PeerView describes a peer for a peers list.
type PeerView struct {
	PeerID peer.ID
	// Nick is the last nick the peer claimed, "" when none.
	Nick string
	// Fingerprint is the short fingerprint (identity.ShortFingerprint).
	Fingerprint string
	// Online: connected now. Path is "lan", "direct" or "relayed" while
	// online, "" otherwise.
	Online bool
	Path   string
	// Via is the relay's peer ID on a relayed path, ViaNick the nick it
	// last claimed ("" when none); HolePunched: hole punching (DCUtR)
	// opened the direct connection.
	Via         peer.ID
	ViaNick     string
	HolePunched bool
	// Trusted: the user compared safety numbers (/trust).
	Trusted bool
	// Conflict: the peer claims a nick that is pinned to another key.
	Conflict bool
	// NickShared: another listed peer claims the same nick; show the
	// fingerprint next to it.
	NickShared bool
}

// PeerList lists the connected peers and the known peers seen in the
// last day, online first, then by nick and peer ID; at most 256.
func (n *Node) PeerList() []PeerView {
	byID := make(map[peer.ID]*PeerView)
	var out []*PeerView
	add := func(p peer.ID) *PeerView {
		if v, ok := byID[p]; ok {
			return v
		}
		info, _ := n.trust.Get(p)
		v := &PeerView{
			PeerID: p, Nick: info.Nick, Fingerprint: identity.ShortFingerprint(p),
			Trusted: info.Trusted, Conflict: info.Nick != "" && !info.Pinned,
		}
		byID[p] = v
		out = append(out, v)
		return v
	}
	for _, pi := range n.host.Peers() {
		v := add(pi.ID)
		v.Online = true
		p := n.host.PathInfo(pi.ID)
		if p.Path == overlay.PathNone {
			p.Path = overlay.PathDirect
			if pi.Relayed {
				p.Path = overlay.PathRelayed
			}
		}
		v.setPath(p, n.nickOf(p.Via))
	}
	since := time.Now().Add(-recentPeer)
	for _, info := range n.trust.Known() {
		if info.ID != n.host.ID() && info.LastSeen.After(since) {
			add(info.ID)
		}
	}
	nicks := make(map[string]int)
	for _, v := range out {
		if v.Nick != "" {
			nicks[identity.NickKey(v.Nick)]++
		}
	}
	views := make([]PeerView, len(out))
	for i, v := range out {
		v.NickShared = v.Nick != "" && nicks[identity.NickKey(v.Nick)] > 1
		views[i] = *v
	}
	sort.SliceStable(views, func(i, j int) bool {
		a, b := views[i], views[j]
		if a.Online != b.Online {
			return a.Online
		}
		if (a.Nick == "") != (b.Nick == "") {
			return a.Nick != ""
		}
		if a.Nick != b.Nick {
			return a.Nick < b.Nick
		}
		return a.PeerID < b.PeerID
	})
	if len(views) > maxPeerList {
		views = views[:maxPeerList]
	}
	return views
}

// Peer describes one peer, connected or not.
func (n *Node) Peer(p peer.ID) PeerView {
	info, _ := n.trust.Get(p)
	v := PeerView{
		PeerID: p, Nick: info.Nick, Fingerprint: identity.ShortFingerprint(p),
		Trusted: info.Trusted, Conflict: info.Nick != "" && !info.Pinned,
	}
	if pi := n.host.PathInfo(p); pi.Path != overlay.PathNone {
		v.Online = true
		v.setPath(pi, n.nickOf(pi.Via))
	}
	return v
}

func (v *PeerView) setPath(p overlay.PathInfo, viaNick string) {
	v.Path, v.Via, v.ViaNick, v.HolePunched = string(p.Path), p.Via, viaNick, p.HolePunched
}

// nickOf returns the nick p last claimed, "" when none or p is "".
func (n *Node) nickOf(p peer.ID) string {
	if p == "" {
		return ""
	}
	info, _ := n.trust.Get(p)
	return info.Nick
}
