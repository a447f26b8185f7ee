// Package netns builds small virtual networks for root-only tests: network
// namespaces as hosts and routers, Linux bridges (each inside a namespace
// of its own) as switches, veth pairs as cables, and nftables masquerade
// as NAT. Real parley processes run inside the namespaces with
// `ip netns exec`.
//
// Everything is made inside namespaces the lab creates: the machine's own
// network namespace and interfaces are never touched, addresses are in
// private ranges, and no namespace has a route to anywhere outside the
// lab. Every name carries the lab's prefix (unique per run, with the
// creating process's PID), and t.Cleanup deletes every namespace, which
// removes its interfaces; processes started with NS.Start are killed
// before. Namespaces left behind by a test binary that was killed are
// removed by the next New.
//
// A test calls New, which skips unless it runs as root with iproute2:
//
//	lab := netns.New(t)
//	lan := lab.Bridge("lan")
//	a, b := lab.NS("a"), lab.NS("b")
//	lan.Attach(a, "10.77.0.2/24")
//	lan.Attach(b, "10.77.0.3/24")
//	pa := a.Start(t, bin, "alice", "--data-dir", dir)
package netns
