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
}

// WhoisInfo is what /whois shows about a peer.
type WhoisInfo struct {
	PeerInfo
	// Known reports that the trust store has a record of the peer.
	Known bool `json:"known"`
	// Path is the best connection's path, as /peers and peer_path
	// report it (overlay.BestPath); overlay.PathNone when not connected,
	// which JSON shows as "not connected" (the value /whois always had).
	Path  overlay.Path `json:"path"`
	Conns []WhoisConn  `json:"conns"`
	// Addrs are the peer's addresses in the peerstore (at most 32).
	Addrs []string `json:"addrs"`
}

// Whois returns what h and the store know about p. store may be nil.
func Whois(h host.Host, store *Store, p peer.ID) WhoisInfo {
	var w WhoisInfo
	if store != nil {
		w.PeerInfo, w.Known = store.Get(p)
	} else {
		w.PeerInfo = PeerInfo{ID: p}
		w.Fingerprint = fingerprint(p)
	}
	conns := h.Network().ConnsToPeer(p)
	w.Path, _ = overlay.BestPath(conns)
	for _, c := range conns {
		w.Conns = append(w.Conns, connInfo(c))
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

func connInfo(c network.Conn) WhoisConn {
	st := c.Stat()
	path := overlay.ConnPath(c)
	return WhoisConn{
		Addr:      c.RemoteMultiaddr().String(),
		Direction: st.Direction.String(),
		Relayed:   path == overlay.PathRelayed,
		Path:      path,
		Opened:    st.Opened,
	}
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
