package main_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// freeTCPPort returns a loopback TCP port that was free a moment ago, for
// a peer that must come back on the same address after a restart.
//
// The port is below the kernel's ephemeral range (ip_local_port_range on
// Linux; 32768 elsewhere, below the BSD and Windows ranges too). A port
// from that range, as port 0 gives, is free for the taking while its peer
// is down: any process's listener on port 0 or outgoing connection may
// get it, and the peer, restarted, fails with "address already in use".
// Under load (CI runs every package's tests at once) that happened.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	hi := ephemeralLow()
	for range 200 {
		port := lowPortMin + rand.IntN(hi-lowPortMin)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use: another
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return port
	}
	t.Fatalf("no free loopback port in [%d, %d) after 200 tries", lowPortMin, hi)
	return 0
}

// lowPortMin is the lowest port freeTCPPort returns.
const lowPortMin = 10000

// ephemeralLow returns the lowest port of the kernel's ephemeral range,
// the bound below which freeTCPPort chooses: Linux's
// net.ipv4.ip_local_port_range, or 32768 where it cannot be read or leaves
// too little room below it.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return fallback
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo < lowPortMin+1000 {
		return fallback
	}
	return lo
}

// fixedPeer describes a peer with a stable data dir and port across restarts.
type fixedPeer struct {
	name, dir string
	port      int
	extra     []string
}

func newFixedPeer(t *testing.T, name string, extra ...string) *fixedPeer {
	return &fixedPeer{name: name, dir: filepath.Join(t.TempDir(), name), port: freeTCPPort(t), extra: extra}
}

func (f *fixedPeer) start(t *testing.T, more ...string) (*proctest.Peer, proctest.Event) {
	t.Helper()
	args := []string{"--data-dir", f.dir, "--nick", f.name, "--no-mdns", "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", f.port)}
	args = append(append(args, f.extra...), more...)
	p := proctest.Start(t, bin, f.name, args...)
	return p, p.Wait(20*time.Second, "ready", nil)
}

func dmStatus(id, state string) func(proctest.Event) bool {
	return func(e proctest.Event) bool { return e.Str("id") == id && e.Str("state") == state }
}

func TestDMDeliveredAndAcknowledged(t *testing.T) {
	a, readyA := startPeer(t, "alice")
	addrA := firstAddr(t, readyA)
	b, readyB := startPeer(t, "bob", "--peer", addrA)
	c, _ := startPeer(t, "carol", "--peer", addrA)
	a.Find(20*time.Second, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == readyB.Str("peer_id") })

	a.Send("/msg " + readyB.Str("peer_id") + " hi bob")
	queued := a.Wait(10*time.Second, "dm_status", nil)
	id := queued.Str("id")
	if id == "" || queued.Str("to") != readyB.Str("peer_id") {
		t.Fatalf("first dm_status %v", queued)
	}
	a.Wait(20*time.Second, "dm_status", dmStatus(id, "delivered"))
	m := b.Wait(10*time.Second, "dm", nil)
	if m.Str("id") != id || m.Str("from") != readyA.Str("peer_id") || m.Str("text") != "hi bob" || m.Str("nick") != "alice" {
		t.Fatalf("bob got %v", m)
	}
	time.Sleep(quietPeriod)
	noEvent(t, c, "dm", nil)
}

func TestDMQueuedUntilPeerComesOnlineAcrossSenderRestart(t *testing.T) {
	alice := newFixedPeer(t, "alice")
	bob := newFixedPeer(t, "bob")
	// Learn bob's peer ID without running him as a chat peer.
	b, readyB := bob.start(t)
	b.Send("/quit")
	if err := b.Exited(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	bobID := readyB.Str("peer_id")

	a, readyA := alice.start(t)
	addrA := firstAddr(t, readyA)
	a.Send("/msg " + bobID + " while you were away")
	q := a.Wait(10*time.Second, "dm_status", func(e proctest.Event) bool { return e.Str("state") == "queued" })
	id := q.Str("id")
	if id == "" || q.Str("to") != bobID {
		t.Fatalf("queued status %v", q)
	}
	// Alice restarts while the message is queued.
	a.Send("/quit")
	if err := a.Exited(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	a, _ = alice.start(t)
	// Bob comes online and dials alice.
	b, _ = bob.start(t, "--peer", addrA)
	a.Wait(30*time.Second, "dm_status", dmStatus(id, "delivered"))
	// Find: bob may get the message before his ready event is written.
	got := b.Find(10*time.Second, "dm", func(e proctest.Event) bool { return e.Str("id") == id })
	if got.Str("text") != "while you were away" {
		t.Fatalf("bob got %v", got)
	}
	// Exactly once: no second dm event for the same id, even though the
	// message crossed a restart of the sender.
	time.Sleep(quietPeriod)
	count := 0
	for _, e := range b.Seen() {
		if e.Type() == "dm" && e.Str("id") == id {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("bob showed the message %d times", count)
	}
}

func TestDMNickPinConflictAndAmbiguity(t *testing.T) {
	c, readyC := startPeer(t, "carol")
	addrC := firstAddr(t, readyC)
	idC := readyC.Str("peer_id")
	a, readyA := startPeer(t, "alice", "--peer", addrC)
	a.Send("/msg " + idC + " it is me")
	c.Wait(20*time.Second, "dm", func(e proctest.Event) bool { return e.Str("from") == readyA.Str("peer_id") })

	// Only now does mallory come, claiming alice's nick with another key:
	// whatever carol hears from her first (room presence or the DM), the
	// nick is already pinned to alice.
	dir := filepath.Join(t.TempDir(), "mallory")
	m := proctest.Start(t, bin, "mallory", append([]string{"--data-dir", dir, "--nick", "alice", "--peer", addrC}, proctest.Loopback()...)...)
	readyM := m.Wait(20*time.Second, "ready", nil)
	m.Send("/msg " + idC + " no, it is me")
	c.Wait(20*time.Second, "dm", func(e proctest.Event) bool { return e.Str("from") == readyM.Str("peer_id") })
	w := c.Find(10*time.Second, "trust_warning", nil)
	if w.Str("peer_id") != readyM.Str("peer_id") || w.Str("pinned_peer_id") != readyA.Str("peer_id") || w.Str("nick") != "alice" {
		t.Fatalf("trust_warning %v", w)
	}
	// "alice" now names two peers: /msg alice must refuse and list both.
	c.Send("/msg alice hello?")
	e := c.Wait(10*time.Second, "error", nil)
	msg := e.Str("error")
	if !strings.Contains(msg, readyA.Str("peer_id")) || !strings.Contains(msg, readyM.Str("peer_id")) {
		t.Fatalf("ambiguous nick error does not list both candidates: %q", msg)
	}
}
