package trust

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/overlay"
)

// maxWhoisAddrs bounds the addresses Whois lists.
const maxWhoisAddrs = 32

// WhoisConn is one open connection to the peer.
type WhoisConn struct {
	Addr      string `json:"addr"`
	Direction string `json:"direction"`
	Relayed   bool   `json:"relayed"`
	// Path is this connection's path, as overlay.ConnPath classifies it.
	Path   overlay.Path `json:"path"`
	Opened time.Time    `json:"opened,omitzero"`
	// Via is the relay's peer ID on a relayed connection whose address
	// names it (overlay.RelayOf); omitted otherwise.
	Via peer.ID `json:"via,omitempty"`
	// HolePunched: hole punching (DCUtR) opened this direct connection;
	// omitted when false.
	HolePunched bool `json:"hole_punched,omitempty"`
}

// WhoisInfo is what /whois shows about a peer.
type WhoisInfo struct {
	PeerInfo
	// Known reports that the trust store has a record of the peer.
	Known bool `json:"known"`
	// Path is the best connection's path, as /peers and peer_path
	// report it (overlay.BestPath); overlay.PathNone when not connected,
	// which JSON shows as "not connected" (the value /whois always had).
	Path overlay.Path `json:"path"`
	// Via and HolePunched are those of the best connection (see
	// WhoisConn); ViaNick is the nick the relay last claimed, for
	// people.
	Via         peer.ID     `json:"via,omitempty"`
	ViaNick     string      `json:"-"`
	HolePunched bool        `json:"hole_punched,omitempty"`
	Conns       []WhoisConn `json:"conns"`
	// Unreachable says why the peer could not be reached when /whois
	// tried (overlay.Host.Reach); omitted when connected or not tried.
	Unreachable string `json:"unreachable,omitempty"`
	// Addrs are the peer's addresses in the peerstore (at most 32).
	Addrs []string `json:"addrs"`
}

// holePuncher is what tells hole-punched connections apart
// (overlay.Host).
type holePuncher interface {
	HolePunched(network.Conn) bool
}

// Whois returns what h and the store know about p. store may be nil.
// Connections are marked hole-punched when h tells them apart (an
// *overlay.Host does).
func Whois(h host.Host, store *Store, p peer.ID) WhoisInfo {
	var w WhoisInfo
	if store != nil {
		w.PeerInfo, w.Known = store.Get(p)
	} else {
		w.PeerInfo = PeerInfo{ID: p}
		w.Fingerprint = fingerprint(p)
	}
	conns := h.Network().ConnsToPeer(p)
	var punched func(network.Conn) bool
	if hp, ok := h.(holePuncher); ok {
		punched = hp.HolePunched
	}
	best := overlay.BestPathInfo(conns, punched)
	w.Path, w.Via, w.HolePunched = best.Path, best.Via, best.HolePunched
	for _, c := range conns {
		w.Conns = append(w.Conns, connInfo(c, punched != nil && punched(c)))
	}
	if w.Via != "" && store != nil {
		if info, ok := store.Get(w.Via); ok {
			w.ViaNick = info.Nick
		}
	}
	for _, a := range h.Peerstore().Addrs(p) {
		if len(w.Addrs) == maxWhoisAddrs {
			break
		}
		w.Addrs = append(w.Addrs, a.String())
	}
	sort.Strings(w.Addrs)
	return w
}

func connInfo(c network.Conn, punched bool) WhoisConn {
	st := c.Stat()
	path := overlay.ConnPath(c)
	ci := WhoisConn{
		Addr:      c.RemoteMultiaddr().String(),
		Direction: st.Direction.String(),
		Relayed:   path == overlay.PathRelayed,
		Path:      path,
		Opened:    st.Opened,
	}
	if ci.Relayed {
		ci.Via = overlay.RelayOf(c.RemoteMultiaddr())
	} else {
		ci.HolePunched = punched
	}
	return ci
}

// PathNotConnected is how the JSON form of WhoisInfo shows overlay.PathNone.
const PathNotConnected = "not connected"

// MarshalJSON writes the contract form of /whois: path "not connected"
// when there is no connection.
func (w WhoisInfo) MarshalJSON() ([]byte, error) {
	type plain WhoisInfo
	path := string(w.Path)
	if w.Path == overlay.PathNone {
		path = PathNotConnected
	}
	return json.Marshal(struct {
		plain
		Path string `json:"path"`
	}{plain(w), path})
}
