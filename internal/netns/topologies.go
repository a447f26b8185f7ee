//go:build linux

package netns

// The topologies of the discovery tests, for reuse by other tests (room
// messages, direct messages) on the same networks. Addresses are in
// private ranges and no namespace has a route out of the lab.

// LAN is two hosts on one switch, 10.77.0.0/24: A is .2, B is .3.
type LAN struct {
	Switch       *Bridge
	A, B         *NS
	AddrA, AddrB string // without prefix length
}

// LAN builds a LAN topology.
func (l *Lab) LAN() *LAN {
	l.t.Helper()
	sw := l.Bridge("lan")
	n := &LAN{Switch: sw, A: l.NS("a"), B: l.NS("b"), AddrA: "10.77.0.2", AddrB: "10.77.0.3"}
	sw.Attach(n.A, n.AddrA+"/24")
	sw.Attach(n.B, n.AddrB+"/24")
	return n
}

// Subnets is two subnets joined by a router: A is 10.78.1.2 behind
// router address 10.78.1.1, B is 10.78.2.2 behind 10.78.2.1. The router
// forwards between them (no NAT), and is where a serve node runs.
type Subnets struct {
	Router           *NS
	A, B             *NS
	AddrA, AddrB     string
	RouterA, RouterB string // the router's address on A's and B's subnet
	SwitchA, SwitchB *Bridge
}

// Subnets builds a two-subnet topology.
func (l *Lab) Subnets() *Subnets {
	l.t.Helper()
	n := &Subnets{
		SwitchA: l.Bridge("s1"), SwitchB: l.Bridge("s2"),
		Router: l.NS("r"), A: l.NS("a"), B: l.NS("b"),
		AddrA: "10.78.1.2", AddrB: "10.78.2.2", RouterA: "10.78.1.1", RouterB: "10.78.2.1",
	}
	n.SwitchA.Attach(n.Router, n.RouterA+"/24")
	n.SwitchB.Attach(n.Router, n.RouterB+"/24")
	n.SwitchA.Attach(n.A, n.AddrA+"/24")
	n.SwitchB.Attach(n.B, n.AddrB+"/24")
	n.Router.Forward()
	n.A.Route("default", n.RouterA)
	n.B.Route("default", n.RouterB)
	return n
}

// NATs is two hosts each behind its own NAT router, and a public host on
// the "internet" switch 10.79.0.0/24 between the routers:
//
//	A 172.16.1.2 -- NAT 172.16.1.1|10.79.0.1 --+-- Public 10.79.0.10
//	B 172.16.2.2 -- NAT 172.16.2.1|10.79.0.2 --+
//
// The NATs masquerade outgoing connections and drop unsolicited incoming
// ones; the internet has no route to the private LANs, so A and B cannot
// dial each other directly.
type NATs struct {
	Internet           *Bridge
	Public             *NS
	NATA, NATB         *NS
	A, B               *NS
	PublicAddr         string
	AddrA, AddrB       string
	NATAddrA, NATAddrB string // the NATs' internet addresses
}

// NATs builds the NAT topology (needs nftables).
func (l *Lab) NATs() *NATs { return l.nats("10.79.0", false) }

// PublicNATs is the NAT topology with an internet of globally routable
// addresses, 11.79.0.0/24 (Public 11.79.0.10, the NATs .1 and .2), so
// that libp2p treats the NATs' addresses as public and hole punching
// (DCUtR) can run; it only punches with public addresses. Nothing leaves
// the lab: no namespace has a route out, and the machine's own interfaces
// are never touched. symmetric makes both NATs symmetric (a random port
// per connection, MasqueradeSymmetric), so that punching cannot work.
func (l *Lab) PublicNATs(symmetric bool) *NATs { return l.nats("11.79.0", symmetric) }

func (l *Lab) nats(internet string, symmetric bool) *NATs {
	l.t.Helper()
	RequireNFT(l.t)
	n := &NATs{
		Internet: l.Bridge("inet"),
		Public:   l.NS("pub"), NATA: l.NS("nata"), NATB: l.NS("natb"), A: l.NS("a"), B: l.NS("b"),
		PublicAddr: internet + ".10", AddrA: "172.16.1.2", AddrB: "172.16.2.2",
		NATAddrA: internet + ".1", NATAddrB: internet + ".2",
	}
	n.Internet.Attach(n.Public, n.PublicAddr+"/24")
	n.natted(n.NATA, n.A, n.NATAddrA, "172.16.1.1", n.AddrA, "la", symmetric)
	n.natted(n.NATB, n.B, n.NATAddrB, "172.16.2.1", n.AddrB, "lb", symmetric)
	return n
}

// natted puts host on a LAN of its own behind nat.
func (n *NATs) natted(nat, host *NS, wanAddr, lanAddr, hostAddr, role string, symmetric bool) {
	l := nat.lab
	l.t.Helper()
	wan := n.Internet.Attach(nat, wanAddr+"/24")
	lan := l.Bridge(role)
	lan.Attach(nat, lanAddr+"/24")
	lan.Attach(host, hostAddr+"/24")
	nat.Forward()
	if symmetric {
		nat.MasqueradeSymmetric(wan)
	} else {
		nat.Masquerade(wan)
	}
	host.Route("default", lanAddr)
}
