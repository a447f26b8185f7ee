//go:build linux

package netns_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/netns"
	"github.com/parley-chat/parley/internal/proctest"
)

// labFileSize is the file the NAT tests send (issue 15: 50 MiB).
const labFileSize = 50 << 20

// natPair starts a serve node on the lab's internet and Alice and Bob
// behind their NATs, both bootstrapped on it and in room "nat"; it
// returns once Bob holds a connection to Alice, and that connection's
// address (the first one is through the relay: the NATs drop unsolicited
// connections).
func natPair(t *testing.T, n *netns.NATs) (a, b *proctest.Peer, idA, idB, firstAddr string) {
	t.Helper()
	_, hub := serve(t, n.Public, n.PublicAddr)
	// Over QUIC: a connection's source port is then the listening port,
	// so the serve node observes the NAT mapping of that port (libp2p's
	// observed address) and hole punching has a public address to offer.
	// Parley's TCP dials come from fresh ports (no SO_REUSEPORT, on
	// purpose: overlay/private.go), so TCP alone would not do.
	hub = strings.Replace(hub, "/tcp/4747/", "/udp/4747/quic-v1/", 1)
	relayed := func(e proctest.Event) bool {
		rs, _ := e["relay_addrs"].([]any)
		return len(rs) > 0
	}
	a, idA = chat(t, n.A, "alice", "--no-mdns", "--bootstrap", hub, "--room", "nat")
	a.Find(2*connectWait, "reachability", relayed)
	// Bob joins the room only once he is set up behind his NAT: libp2p
	// makes one hole punching attempt per relayed connection, and the
	// side that answers it listens for DCUtR only after it has learned a
	// public address of its own (its observed address, which comes with
	// the serve node's identify, before the relay reservation). libp2p
	// checks for that address with a backoff of 0.25 s doubling to 5 s,
	// and says nothing when it is done, hence the pause.
	b, idB = chat(t, n.B, "bob", "--no-mdns", "--bootstrap", hub, "--room", "wait")
	b.Find(2*connectWait, "reachability", relayed)
	time.Sleep(2 * time.Second) // no event tells that libp2p's DCUtR handler is up (see above)
	b.Send("/join nat")
	firstAddr = connected(t, b, idA)
	connected(t, a, idB)
	return a, b, idA, idB, firstAddr
}

// TestNATHolePunchUpgradesRelayedConnection: two peers behind NATs with
// endpoint-independent mapping (masquerade keeps the source port) and a
// public serve node. They meet through the relay, and hole punching
// (DCUtR) replaces the relayed connection with a direct one, which the
// test observes: a peer_path event with path direct and hole_punched, and
// /whois. Then a DM and a 50 MiB file go over it.
func TestNATHolePunchUpgradesRelayedConnection(t *testing.T) {
	lab := netns.New(t)
	n := lab.PublicNATs(false)
	a, b, idA, idB, first := natPair(t, n)
	if !strings.Contains(first, "/p2p-circuit") {
		t.Fatalf("bob first reached alice at %s, not through the relay", first)
	}
	punched := func(e proctest.Event) bool {
		return e.Str("path") == "direct" && e["hole_punched"] == true
	}
	start := time.Now()
	b.Find(connectWait, "peer_path", func(e proctest.Event) bool { return e.Str("peer_id") == idA && punched(e) })
	t.Logf("relayed → direct by hole punching %v after the relayed connection was seen", time.Since(start).Round(time.Millisecond))
	b.Send("/whois " + idA)
	w := b.Wait(20*time.Second, "info", func(e proctest.Event) bool {
		d, _ := e["data"].(map[string]any)
		return d != nil && d["peer_id"] == idA
	})
	if d := w["data"].(map[string]any); d["path"] != "direct" || d["hole_punched"] != true {
		t.Fatalf("/whois after the punch: path %v, hole_punched %v", d["path"], d["hole_punched"])
	}
	directMessage(t, a, idA, b, idB, "hello over the punched hole")
	sendFile(t, a, b, idB)
}

// TestSymmetricNATKeepsTheRelay: behind symmetric NATs hole punching
// cannot work; the relay carries the DM and the 50 MiB file.
func TestSymmetricNATKeepsTheRelay(t *testing.T) {
	lab := netns.New(t)
	n := lab.PublicNATs(true)
	a, b, idA, idB, first := natPair(t, n)
	if !strings.Contains(first, "/p2p-circuit") {
		t.Fatalf("bob first reached alice at %s, not through the relay", first)
	}
	directMessage(t, a, idA, b, idB, "hello through the relay")
	sendFile(t, a, b, idB)
	if row := peerRow(t, b, idA); row["path"] != "relayed" {
		t.Fatalf("path after the transfer is %v: hole punching through symmetric NATs should be impossible, so the lab is not what it claims", row["path"])
	}
}

// sendFile has from /send a random 50 MiB file to the peer toID (to),
// which accepts it; it checks the received file's hash.
func sendFile(t *testing.T, from, to *proctest.Peer, toID string) {
	t.Helper()
	path, hash := labFile(t)
	start := time.Now()
	from.Send("/send " + toID + " " + path)
	offer := to.Wait(connectWait, "file_offer", nil)
	to.Send("/accept " + offer.Str("transfer_id"))
	done := to.Wait(5*time.Minute, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == offer.Str("transfer_id") })
	if got := hashOf(t, done.Str("path")); got != hash {
		t.Fatalf("received file %s has hash %s, want %s", done.Str("path"), got, hash)
	}
	took := time.Since(start)
	t.Logf("50 MiB delivered and verified in %v (%.1f MB/s)", took.Round(time.Millisecond), float64(labFileSize)/took.Seconds()/1e6)
}

// labFile writes a random file of labFileSize and returns its path and
// SHA-256.
func labFile(t *testing.T) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lab.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, labFileSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

func hashOf(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestChatNodeRelaysForRoomMates: no serve node. Alice runs a plain chat
// node on the lab's internet; Bob and Carol, each behind a NAT, know only
// her address. They reserve a relay slot at her (a chat node relays for
// its room-mates), so Bob's first DM to Carol, by nick, reaches her
// through Alice (her circuit address is in her signed peer record), and
// hole punching may then replace the relay.
func TestChatNodeRelaysForRoomMates(t *testing.T) {
	lab := netns.New(t)
	n := lab.PublicNATs(false)
	alice, idAlice, ready := chatReady(t, n.Public, "alice", "--no-mdns", "--listen", "/ip4/0.0.0.0/udp/4748/quic-v1", "--listen", "/ip4/0.0.0.0/tcp/4748")
	var addrAlice string
	for _, a := range ready["addrs"].([]any) {
		if s, _ := a.(string); strings.HasPrefix(s, "/ip4/"+n.PublicAddr+"/udp/") {
			addrAlice = s
		}
	}
	if addrAlice == "" {
		t.Fatalf("alice has no QUIC address on %s: %v", n.PublicAddr, ready["addrs"])
	}
	relayedBy := func(e proctest.Event) bool {
		rs, _ := e["relays"].([]any)
		for _, r := range rs {
			if r == idAlice {
				return true
			}
		}
		return false
	}
	b, _ := chat(t, n.A, "bob", "--no-mdns", "--peer", addrAlice)
	c, idC := chat(t, n.B, "carol", "--no-mdns", "--peer", addrAlice)
	b.Find(2*connectWait, "reachability", relayedBy)
	c.Find(2*connectWait, "reachability", relayedBy)
	// Carol's presence, with her record, reaches Bob through Alice.
	b.Find(connectWait, "presence", func(e proctest.Event) bool {
		if e.Str("peer_id") != idC || e["online"] != true {
			return false
		}
		return true
	})
	start := time.Now()
	b.Send("/msg carol hello through alice")
	st := b.Wait(10*time.Second, "dm_status", func(e proctest.Event) bool { return e.Str("to") == idC })
	b.Find(connectWait, "dm_status", func(e proctest.Event) bool { return e.Str("id") == st.Str("id") && e.Str("state") == "delivered" })
	c.Find(connectWait, "dm", func(e proctest.Event) bool { return e.Str("text") == "hello through alice" })
	t.Logf("bob → carol through alice's relay: delivered in %v", time.Since(start).Round(time.Millisecond))
	_ = alice
}
