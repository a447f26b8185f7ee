// Package fair holds what the budgets of strangers share (docs/SECURITY.md,
// "Budgets"): the subnet a connection comes from, the unit of per-subnet
// shares, and the age of an identity, so that identities first seen long
// ago keep a larger share than a crowd of identities made a minute ago.
//
// A budget that uses them counts, for each stranger's claim, its subnet
// (Subnet) and whether its identity is a newcomer (Ages.Newcomer), and
// refuses a claim past the strangers' share, past the subnet's share of
// it, or past the newcomers' pool (a small part of the strangers' share
// that all newcomers together may hold).
package fair

import (
	"net"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Subnet prefix lengths: the unit of the per-subnet budgets. An IPv4 /24
// is what one customer, one office or one cloud tenant usually gets; an
// IPv6 /48 the same for IPv6 (RIRs assign sites a /48, so a /56 or /64
// per identity would be free for an attacker to vary).
const (
	V4Bits = 24
	V6Bits = 48
)

// Subnet names the subnet an address belongs to: "a.b.c.0/24" for IPv4,
// "x:y:z::/48" for IPv6; for a relayed address (/p2p-circuit), the
// relay's subnet, since that is where the connection comes from; "" for
// an address without an IP (the caller counts it per identity only).
// Loopback is one subnet per family (127.0.0.0/24, ::/48): processes on
// this machine share one subnet share, like any other host.
func Subnet(addr ma.Multiaddr) string {
	if len(addr) == 0 {
		return ""
	}
	ip, err := manet.ToIP(addr)
	if err != nil {
		// A relayed or otherwise composite address: it starts with the
		// first hop's IP.
		c := addr[0].Code()
		if c != ma.P_IP4 && c != ma.P_IP6 {
			return ""
		}
		if ip = net.ParseIP(addr[0].Value()); ip == nil {
			return ""
		}
	}
	return SubnetOfIP(ip)
}

// SubnetOfIP is Subnet for an IP address.
func SubnetOfIP(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.Mask(net.CIDRMask(V4Bits, 32)).String() + "/24"
	}
	if len(ip) != net.IPv6len {
		return ""
	}
	return ip.Mask(net.CIDRMask(V6Bits, 128)).String() + "/48"
}

// ConnSubnet is Subnet of a connection's remote address ("" for nil).
func ConnSubnet(c network.Conn) string {
	if c == nil {
		return ""
	}
	return Subnet(c.RemoteMultiaddr())
}

// Shares split one capacity (docs/SECURITY.md, "Budgets"). Known peers
// may use all of Total; strangers together Total-Reserved; the strangers
// of one subnet PerSubnet of that; the newcomers (identities first seen
// less than AgesConfig.NewcomerAge ago) together Newcomers of it, so that
// a crowd of fresh identities leaves the rest of the strangers' share to
// identities seen before.
type Shares struct {
	Total, Reserved, PerSubnet, Newcomers int
}

// Held is what strangers hold of a capacity now, as seen by one claim:
// all strangers, those of the claim's subnet, and the newcomers.
type Held struct {
	Strangers, Subnet, Newcomers int
}

// StrangerFits reports whether one more claim of a stranger (a newcomer
// or not) fits in the shares, given what strangers hold.
func (s Shares) StrangerFits(h Held, newcomer bool) bool {
	return h.Strangers < s.Total-s.Reserved && h.Subnet < s.PerSubnet && (!newcomer || h.Newcomers < s.Newcomers)
}

// Add counts one more stranger's claim: of the claim's subnet or not, a
// newcomer or not.
func (h *Held) Add(sameSubnet, newcomer bool) {
	h.Strangers++
	if sameSubnet {
		h.Subnet++
	}
	if newcomer {
		h.Newcomers++
	}
}
