package trust

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/safetext"
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
	// report it (overlay.BestPath); overlay.PathNone when not connected.
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

// Text renders the answer for a terminal; the nick is made inert.
func (w WhoisInfo) Text() string {
	var b strings.Builder
	nick := w.Nick
	if nick == "" {
		nick = "(no nick seen)"
	}
	fmt.Fprintf(&b, "%s  %s\n", safetext.Line(nick), w.ID)
	fmt.Fprintf(&b, "  fingerprint: %s\n", w.Fingerprint)
	trust := "not verified (compare /verify, then /trust)"
	if w.Trusted {
		trust = "verified " + w.TrustedAt.Format(time.DateTime)
	}
	fmt.Fprintf(&b, "  trust:       %s\n", trust)
	if w.Nick != "" && !w.Pinned {
		fmt.Fprintf(&b, "  WARNING:     the nick %q is pinned to another key\n", safetext.Line(w.Nick))
	}
	if !w.FirstSeen.IsZero() {
		fmt.Fprintf(&b, "  seen:        first %s, last %s\n",
			w.FirstSeen.Format(time.DateTime), w.LastSeen.Format(time.DateTime))
	}
	path := string(w.Path)
	if w.Path == overlay.PathNone {
		path = "not connected"
	}
	fmt.Fprintf(&b, "  connection:  %s\n", path)
	for _, c := range w.Conns {
		fmt.Fprintf(&b, "    %s %s %s\n", c.Direction, c.Path, safetext.Line(c.Addr))
	}
	if len(w.Addrs) > 0 {
		b.WriteString("  addresses:\n")
		for _, a := range w.Addrs {
			// Addresses come from the peer (identify): a DNS name may
			// hold newlines and escapes.
			fmt.Fprintf(&b, "    %s\n", safetext.Line(a))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
