package trust

import (
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Connection paths reported by Whois.
const (
	PathDirect       = "direct"
	PathRelayed      = "relayed"
	PathNotConnected = "not connected"
)

// maxWhoisAddrs bounds the addresses Whois lists.
const maxWhoisAddrs = 32

// WhoisConn is one open connection to the peer.
type WhoisConn struct {
	Addr      string    `json:"addr"`
	Direction string    `json:"direction"`
	Relayed   bool      `json:"relayed"`
	Opened    time.Time `json:"opened,omitzero"`
}

// WhoisInfo is what /whois shows about a peer.
type WhoisInfo struct {
	PeerInfo
	// Known reports that the trust store has a record of the peer.
	Known bool `json:"known"`
	// Path is PathDirect when at least one connection is direct,
	// PathRelayed when all go through a circuit relay, else
	// PathNotConnected.
	Path  string      `json:"path"`
	Conns []WhoisConn `json:"conns"`
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
	w.Path = PathNotConnected
	for _, c := range h.Network().ConnsToPeer(p) {
		wc := connInfo(c)
		w.Conns = append(w.Conns, wc)
		switch {
		case !wc.Relayed:
			w.Path = PathDirect
		case w.Path == PathNotConnected:
			w.Path = PathRelayed
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

func connInfo(c network.Conn) WhoisConn {
	st := c.Stat()
	addr := c.RemoteMultiaddr()
	return WhoisConn{
		Addr:      addr.String(),
		Direction: st.Direction.String(),
		Relayed:   st.Limited || isCircuit(addr),
		Opened:    st.Opened,
	}
}

func isCircuit(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Protocol().Code == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}
