package rooms

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Limits on the signed peer record a presence announcement carries (see
// docs/PROTOCOL.md, "Addresses in presence").
const (
	// MaxPeerRecordSize bounds the serialized signed envelope.
	MaxPeerRecordSize = 1024
	// MaxPeerRecordAddrs bounds the addresses in one record.
	MaxPeerRecordAddrs = 16
	// PeerRecordTTL is how long addresses learned from a member's record
	// stay in the peerstore after its last announcement.
	PeerRecordTTL = 10 * time.Minute
)

// errPeerRecord is the cause of every refused peer record.
var errPeerRecord = errors.New("invalid peer record")

// addrScope is who can use an address: the rule of what a node shares,
// and accepts, in a room.
type addrScope int

const (
	scopeUnusable addrScope = iota // unspecified, link-local, multicast, zoned, no IP or DNS name first
	scopeLoopback                  // 127.0.0.0/8, ::1, localhost
	scopePrivate                   // any other IP or name that is not globally routable (RFC 1918, CGNAT, ULA, .local …)
	scopePublic                    // globally routable IP, public DNS name
)

// scopeOf classifies a by its first component (for a relay circuit
// address, the relay's address).
func scopeOf(a ma.Multiaddr) addrScope {
	if len(a) == 0 {
		return scopeUnusable
	}
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
		ip, ok := netip.AddrFromSlice(a[0].RawValue())
		ip = ip.Unmap()
		switch {
		case !ok || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
			return scopeUnusable
		case ip.IsLoopback():
			return scopeLoopback
		case manet.IsPublicAddr(a):
			return scopePublic
		}
		return scopePrivate
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
		switch {
		case manet.IsPublicAddr(a):
			return scopePublic
		case manet.IsPrivateAddr(a): // localhost
			return scopeLoopback
		}
		return scopePrivate
	}
	return scopeUnusable
}

// shareableAddrs returns the addresses of addrs this node announces in a
// room: public ones always; private-range ones in private rooms only
// (their members hold the key); loopback ones only when the node has no
// other usable address (it is then reachable from its own machine only);
// never unusable ones. Public addresses come first, at most
// MaxPeerRecordAddrs in all.
func shareableAddrs(addrs []ma.Multiaddr, private bool) []ma.Multiaddr {
	loopbackOnly := true
	for _, a := range addrs {
		if sc := scopeOf(a); sc == scopePrivate || sc == scopePublic {
			loopbackOnly = false
		}
	}
	var out []ma.Multiaddr
	for _, want := range []addrScope{scopePublic, scopePrivate, scopeLoopback} {
		if want == scopePrivate && !private || want == scopeLoopback && !loopbackOnly {
			continue
		}
		for _, a := range addrs {
			if scopeOf(a) == want && !slices.ContainsFunc(out, a.Equal) {
				out = append(out, a)
			}
		}
	}
	if len(out) > MaxPeerRecordAddrs {
		out = out[:MaxPeerRecordAddrs]
	}
	return out
}

// sealPeerRecord signs a peer record of self at addrs with key, dropping
// addresses from the end until the envelope fits MaxPeerRecordSize. It
// returns nil when no address fits.
func sealPeerRecord(key crypto.PrivKey, self peer.ID, addrs []ma.Multiaddr) ([]byte, error) {
	for n := len(addrs); n > 0; n-- {
		env, err := record.Seal(peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: self, Addrs: addrs[:n]}), key)
		if err != nil {
			return nil, fmt.Errorf("sign peer record: %w", err)
		}
		b, err := env.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode peer record: %w", err)
		}
		if len(b) <= MaxPeerRecordSize {
			return b, nil
		}
	}
	return nil, nil
}

// ownPeerRecord is the signed peer record this node puts in its presence
// announcements in r, or nil when it has nothing to share.
func (s *Service) ownPeerRecord(r *room) ([]byte, error) {
	h := s.cfg.Host
	key := h.Peerstore().PrivKey(s.self)
	if key == nil {
		return nil, nil
	}
	own := h.Addrs()
	if hook := s.cfg.testHookOwnAddrs; hook != nil {
		own = hook()
	}
	addrs := shareableAddrs(own, r.private)
	if len(addrs) == 0 {
		return nil, nil
	}
	// The record of the same addresses is signed once and reused: a new
	// one (a new sequence number) in every presence would make every
	// member check its signature again each PresenceInterval
	// (room.recordKnown).
	var k strings.Builder
	for _, a := range addrs {
		k.WriteString(a.String())
		k.WriteByte(0)
	}
	r.mu.Lock()
	rec, same := r.ownRecord, r.ownRecordFor == k.String()
	r.mu.Unlock()
	if same {
		return rec, nil
	}
	rec, err := sealPeerRecord(key, s.self, addrs)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.ownRecord, r.ownRecordFor = rec, k.String()
	r.mu.Unlock()
	return rec, nil
}

// verifyPeerRecord decodes b as a signed peer record of author and checks
// it: size, envelope signature, payload type, signing key and record peer
// ID both author, number of addresses. Every failure depends on the bytes
// and the author only.
func verifyPeerRecord(b []byte, author peer.ID) (*record.Envelope, *peer.PeerRecord, error) {
	if len(b) > MaxPeerRecordSize {
		return nil, nil, fmt.Errorf("%w: %d bytes, at most %d", errPeerRecord, len(b), MaxPeerRecordSize)
	}
	env, rec, err := record.ConsumeEnvelope(b, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errPeerRecord, err)
	}
	if !bytes.Equal(env.PayloadType, peer.PeerRecordEnvelopePayloadType) {
		return nil, nil, fmt.Errorf("%w: payload type %x", errPeerRecord, env.PayloadType)
	}
	pr, ok := rec.(*peer.PeerRecord)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a peer record", errPeerRecord)
	}
	if !author.MatchesPublicKey(env.PublicKey) {
		return nil, nil, fmt.Errorf("%w: signed by another key than the author's", errPeerRecord)
	}
	if pr.PeerID != author {
		return nil, nil, fmt.Errorf("%w: record of another peer", errPeerRecord)
	}
	if len(pr.Addrs) > MaxPeerRecordAddrs {
		return nil, nil, fmt.Errorf("%w: %d addresses, at most %d", errPeerRecord, len(pr.Addrs), MaxPeerRecordAddrs)
	}
	return env, pr, nil
}

// usableAddrs returns the addresses of a member's record that this node
// takes: public ones; private-range ones from private rooms only;
// loopback ones only while this node has a connection over loopback (it
// meets peers on its own machine). It mirrors shareableAddrs, so a room
// member cannot point this node at its LAN or, unless it runs peers on
// loopback, at its own machine.
func usableAddrs(addrs []ma.Multiaddr, private, loopbackPeers bool) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		switch scopeOf(a) {
		case scopePublic:
		case scopePrivate:
			if !private {
				continue
			}
		case scopeLoopback:
			if !loopbackPeers {
				continue
			}
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}

// hasLoopbackConn reports whether n has a connection over loopback.
func hasLoopbackConn(n network.Network) bool {
	for _, c := range n.Conns() {
		if manet.IsIPLoopback(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}

// learnAddrs puts the usable addresses of a member's verified record into
// the peerstore for PeerRecordTTL: the whole record into the certified
// address book when every address is usable, otherwise the usable ones as
// plain addresses.
func (s *Service) learnAddrs(r *room, author peer.ID, env *record.Envelope, pr *peer.PeerRecord) {
	h := s.cfg.Host
	usable := usableAddrs(pr.Addrs, r.private, hasLoopbackConn(h.Network()))
	if len(usable) == 0 {
		return
	}
	ps := h.Peerstore()
	if cab, ok := peerstore.GetCertifiedAddrBook(ps); ok && len(usable) == len(pr.Addrs) {
		if _, err := cab.ConsumePeerRecord(env, PeerRecordTTL); err != nil {
			s.log.Debug("cannot store peer record", "room", r.name, "from", author, "err", err)
		}
		return
	}
	ps.AddAddrs(author, usable, PeerRecordTTL)
}
