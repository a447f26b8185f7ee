//go:build linux

package netns

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// namePrefix starts the name of every namespace a lab makes; it is
// followed by the creating PID.
const namePrefix = "pzlab"

// cmdTimeout bounds one ip/nft/sysctl command.
const cmdTimeout = 20 * time.Second

var ipPath, nftPath string

func init() {
	ipPath, _ = exec.LookPath("ip")
	nftPath, _ = exec.LookPath("nft")
}

// Lab is one test's virtual network.
type Lab struct {
	t      testing.TB
	prefix string

	mu sync.Mutex
	n  int // namespaces made, for unique names
}

// Skip reports why namespace tests cannot run here, or "" when they can.
func Skip() string {
	if os.Geteuid() != 0 {
		return "network namespace tests need root (they create namespaces, bridges and veth pairs); run as root to include them"
	}
	if ipPath == "" {
		return "network namespace tests need the ip command (Debian package iproute2)"
	}
	return ""
}

// New returns an empty lab, or skips the test when namespace tests cannot
// run here.
func New(t testing.TB) *Lab {
	t.Helper()
	if why := Skip(); why != "" {
		t.Skip(why)
	}
	removeStale(t)
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	return &Lab{t: t, prefix: fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), hex.EncodeToString(rnd[:]))}
}

// RequireNFT skips the test unless nftables is installed (for NAT).
func RequireNFT(t testing.TB) {
	t.Helper()
	if nftPath == "" {
		t.Skip("NAT tests need nftables (apt-get install -y nftables)")
	}
}

// removeStale deletes namespaces of labs whose process is gone.
func removeStale(t testing.TB) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, namePrefix) {
			continue
		}
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, namePrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test binary still runs
		}
		if out, err := run(ipPath, "netns", "del", name); err != nil {
			t.Logf("remove stale namespace %s: %v %s", name, err, out)
		}
	}
}

// run runs a command with a timeout and returns its combined output.
func run(name string, args ...string) (string, error) {
	// #nosec G204 -- test infrastructure (ip, nft) with arguments the
	// tests build; never linked into the parley binary.
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(cmdTimeout):
		_ = cmd.Process.Kill()
		waitErr := <-done
		return out.String(), fmt.Errorf("%s %v: timed out (%v)", name, args, waitErr)
	}
}

func (l *Lab) must(name string, args ...string) string {
	l.t.Helper()
	out, err := run(name, args...)
	if err != nil {
		l.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// NS is a network namespace: a host or a router.
type NS struct {
	lab  *Lab
	Name string

	mu     sync.Mutex
	ifaces int
}

// NS creates a namespace with its loopback up; t.Cleanup deletes it.
func (l *Lab) NS(role string) *NS {
	l.t.Helper()
	l.mu.Lock()
	l.n++
	name := fmt.Sprintf("%s-%d%s", l.prefix, l.n, role)
	l.mu.Unlock()
	l.must(ipPath, "netns", "add", name)
	l.t.Cleanup(func() {
		if out, err := run(ipPath, "netns", "del", name); err != nil {
			l.t.Errorf("delete namespace %s: %v %s", name, err, out)
		}
	})
	ns := &NS{lab: l, Name: name}
	ns.IP("link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NS args...` and returns its output.
func (ns *NS) IP(args ...string) string {
	ns.lab.t.Helper()
	return ns.lab.must(ipPath, append([]string{"-n", ns.Name}, args...)...)
}

// Exec runs a command inside the namespace and returns its output.
func (ns *NS) Exec(name string, args ...string) string {
	ns.lab.t.Helper()
	return ns.lab.must(ipPath, append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

func (ns *NS) nextIface() string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.ifaces++
	return fmt.Sprintf("eth%d", ns.ifaces-1)
}

// Route adds a route inside the namespace: dst is a CIDR or "default".
func (ns *NS) Route(dst, via string) {
	ns.lab.t.Helper()
	ns.IP("route", "add", dst, "via", via)
}

// Forward turns the namespace into a router (IPv4 forwarding on).
func (ns *NS) Forward() {
	ns.lab.t.Helper()
	ns.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
}

// Masquerade makes the namespace a NAT: connections forwarded out of
// iface get its address (nftables masquerade, which keeps the source port
// when it is free: endpoint-independent mapping), and nothing from iface
// is forwarded inside unless it belongs to a connection started inside.
// Unsolicited packets to the NAT itself are dropped silently, as home
// routers do: answered (ICMP) or left in conntrack, they would take the
// port a hole punch is about to map.
func (ns *NS) Masquerade(iface string) { ns.masquerade(iface, "") }

// MasqueradeSymmetric is Masquerade with a fresh random source port for
// every connection (nftables "fully-random"): the mapping depends on the
// destination, as a symmetric NAT's does, so hole punching cannot work.
func (ns *NS) MasqueradeSymmetric(iface string) { ns.masquerade(iface, " fully-random") }

func (ns *NS) masquerade(iface, flags string) {
	ns.lab.t.Helper()
	RequireNFT(ns.lab.t)
	rules := fmt.Sprintf(`table ip parleynat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname %q masquerade%s
	}
	chain guard {
		type filter hook forward priority filter; policy accept;
		iifname %q ct state established,related accept
		iifname %q drop
	}
	chain in {
		type filter hook input priority filter; policy accept;
		iifname %q ct state established,related accept
		iifname %q drop
	}
}
`, iface, flags, iface, iface, iface, iface)
	f, err := os.CreateTemp("", "parley-nft-*.conf")
	if err != nil {
		ns.lab.t.Fatal(err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.WriteString(rules); err != nil {
		ns.lab.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		ns.lab.t.Fatal(err)
	}
	ns.Exec(nftPath, "-f", f.Name())
}

// Start runs bin with --json and args inside the namespace (as
// proctest.Start does outside), and kills it when the test ends, before
// the namespace is deleted. Subcommands go first in args, e.g.
// Start(t, bin, "hub", "serve", "--listen", ...).
func (ns *NS) Start(t testing.TB, bin, name string, args ...string) *proctest.Peer {
	t.Helper()
	// proctest puts --json first; `ip` takes it as its own -json option,
	// which does not change `ip netns exec`, so it is passed to parley
	// again after the subcommand.
	full := []string{"netns", "exec", ns.Name, bin}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		full = append(full, args[0], "--json")
		args = args[1:]
	} else {
		full = append(full, "--json")
	}
	return proctest.Start(t, ipPath, name, append(full, args...)...)
}

// Bridge is a switch: a Linux bridge inside a namespace of its own.
type Bridge struct {
	ns    *NS
	mu    sync.Mutex
	ports int
}

// Bridge creates a switch.
func (l *Lab) Bridge(role string) *Bridge {
	l.t.Helper()
	ns := l.NS("sw" + role)
	ns.IP("link", "add", "br0", "type", "bridge")
	ns.IP("link", "set", "br0", "up")
	return &Bridge{ns: ns}
}

// Attach cables ns to the switch: a veth pair with one end on the bridge
// and the other in ns, with address cidr (e.g. "10.77.0.2/24"). It
// returns the interface name inside ns.
func (b *Bridge) Attach(ns *NS, cidr string) string {
	ns.lab.t.Helper()
	b.mu.Lock()
	b.ports++
	port := fmt.Sprintf("p%d", b.ports)
	b.mu.Unlock()
	iface := ns.nextIface()
	b.ns.IP("link", "add", port, "type", "veth", "peer", "name", iface, "netns", ns.Name)
	b.ns.IP("link", "set", port, "master", "br0", "up")
	ns.IP("addr", "add", cidr, "dev", iface)
	ns.IP("link", "set", iface, "up")
	return iface
}
