package adversarial

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/dm"
	dmpb "github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/transfer"
	tpb "github.com/parley-chat/parley/transfer/pb"
)

// Fair under attack (issue 19, docs/SECURITY.md "Budgets"): a crowd of
// throwaway identities exhausts no capacity for the peers the victim
// knows. Each test measures the honest peer's latency once quietly and
// once under the attack (docs/BENCHMARKS.md).

// trustEachOther makes honest a known peer of victim (trusted).
func trustEachOther(t *testing.T, victim, honest *party) {
	t.Helper()
	if _, err := victim.n.Trust(honest.peerID()); err != nil {
		t.Fatalf("trust honest: %v", err)
	}
}

// honestOffer has from /send a small file to to and returns how long it
// took until to showed the offer.
func honestOffer(t *testing.T, from, to *party, name string) time.Duration {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte("honest file "+name), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	from.exec("/send " + to.peerID().String() + " " + path)
	to.ev.wait(t, to.name+" is offered "+name, func(e events.Event) bool {
		o, ok := e.(events.FileOffer)
		return ok && o.From == from.peerID() && o.Name == name
	})
	return time.Since(start)
}

// TestSybilOffersLeaveRoomForKnownPeers (finding 2): 32 throwaway
// identities send 8 offers each and never come back for them; the
// strangers behind one subnet fill at most their share, and the honest,
// known peer's offer is still shown.
func TestSybilOffersLeaveRoomForKnownPeers(t *testing.T) {
	victim, honest, _ := underAttack(t)
	trustEachOther(t, victim, honest)
	quiet := honestOffer(t, honest, victim, "quiet.txt")

	accepted, busy := 0, 0
	for i := range 32 {
		h := attacker(t, victim)
		for j := range 8 {
			st := offerRaw(t, h, victim, &tpb.Offer{Id: random(t, 16), Name: fmt.Sprintf("sybil-%d-%d.txt", i, j), Size: 10, Hash: random(t, 32)})
			switch st.GetCode() {
			case tpb.Code_OK:
				accepted++
			case tpb.Code_BUSY:
				busy++
			default:
				t.Fatalf("sybil offer answered %v", st)
			}
		}
	}
	loaded := honestOffer(t, honest, victim, "under-attack.txt")
	t.Logf("sybil offers: %d held, %d refused busy; honest offer shown in %v (quiet: %v)", accepted, busy, loaded, quiet)
	if accepted > 2*32 { // sybils dial the victim over 127.0.0.1 or ::1: two subnets
		t.Fatalf("two subnets of strangers hold %d pending offers; the budget is 32 each", accepted)
	}
	stillServes(t, honest, victim, "after sybil offers")
}

// TestAbandonedFetchesLeaveRoomForKnownPeers (finding 3): 260
// identities each fetch the manifest of a file the victim shares and
// leave without DONE; the honest, known peer's /fetch still completes.
// The victim's IdleTimeout is long here, so that the budgets alone, not
// the expiry of abandoned uploads (transfer TestAbandonedUploadsExpire),
// bound what the sybils hold however slowly the machine runs the attack.
func TestAbandonedFetchesLeaveRoomForKnownPeers(t *testing.T) {
	slowExpiry := func(c *node.Config) { c.Transfer.IdleTimeout = 10 * time.Minute }
	victim, honest := newParty(t, "victim", slowExpiry), newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	trustEachOther(t, victim, honest)
	share, fetch := sharing(t, victim, honest, 64<<10)
	quiet := fetch(share("quiet.bin"))

	id := share("popular.bin")
	raw, err := hex.DecodeString(id)
	if err != nil {
		t.Fatal(err)
	}
	served, busy := 0, 0
	for range 260 {
		h := attacker(t, victim)
		switch abandonFetch(t, h, victim.peerID(), raw) {
		case tpb.Code_OK:
			served++
		case tpb.Code_BUSY:
			busy++
		}
		_ = h.Close()
	}
	loaded := fetch(id)
	t.Logf("abandoned fetches: %d served a manifest, %d refused busy; honest fetch took %v (quiet: %v)", served, busy, loaded, quiet)
	if served > 2*32 { // sybils dial the victim over 127.0.0.1 or ::1: two subnets
		t.Fatalf("two subnets of strangers hold %d upload slots; the budget is 32 each", served)
	}
	stillServes(t, honest, victim, "after abandoned fetches")
}

// abandonFetch asks for a share's manifest and leaves: OK when the
// manifest came, else the refusal's code.
func abandonFetch(t *testing.T, h host.Host, victim peer.ID, raw []byte) tpb.Code {
	t.Helper()
	code, s := askShare(t, h, victim, &tpb.Get{Id: raw, Manifest: true})
	_ = s.Reset()
	return code
}

// halfFetch asks for a share's manifest and its first chunks, reads the
// manifest and then neither reads nor writes, keeping the stream open (a
// fetch left half done): OK when the manifest came, else the refusal's
// code.
func halfFetch(t *testing.T, h host.Host, victim peer.ID, raw []byte) tpb.Code {
	t.Helper()
	code, s := askShare(t, h, victim, &tpb.Get{Id: raw, Manifest: true, Ranges: []*tpb.Range{{Start: 0, Count: 2}}})
	t.Cleanup(func() { _ = s.Reset() })
	return code
}

// askShare opens a transfer stream to victim, sends get and reads the
// first answer: OK when it is the manifest, else the refusal's code. The
// caller owns the stream.
func askShare(t *testing.T, h host.Host, victim peer.ID, get *tpb.Get) (tpb.Code, network.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, victim, transfer.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeTF(s, &tpb.Frame{Msg: &tpb.Frame_Get{Get: get}}); err != nil {
		_ = s.Reset()
		t.Fatal(err)
	}
	f, err := readTF(bufio.NewReader(s))
	if err != nil {
		_ = s.Reset()
		t.Fatalf("fetch answer: %v", err)
	}
	if f.GetManifest() != nil {
		return tpb.Code_OK, s
	}
	return f.GetStatus().GetCode(), s
}

// TestHalfDoneFetchesExpire (issue 19, abandoned work expires): 40
// strangers on one subnet each start fetching a share and stop half way,
// their streams left open and their hosts connected. They hold the
// subnet's 32 upload slots, and a fresh stranger of that subnet is
// refused; within a bounded time (every stream is cut after IdleTimeout
// without moving, an upload no stream serves is forgotten after
// IdleTimeout) the slots are free again, counted, and a new stranger is
// served. A trusted peer's /fetch completes meanwhile.
func TestHalfDoneFetchesExpire(t *testing.T) {
	const idle = 8 * time.Second // half of it is longer than the crowd takes under -race and load
	victim := newParty(t, "victim", func(c *node.Config) { c.Transfer.IdleTimeout = idle })
	honest := newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	trustEachOther(t, victim, honest)
	share, fetch := sharing(t, victim, honest, 4<<20) // 4 chunks
	quiet := fetch(share("quiet.bin"))
	id := share("popular.bin")
	raw, err := hex.DecodeString(id)
	if err != nil {
		t.Fatal(err)
	}
	via4 := func() host.Host { return attackerVia(t, victim, false) }
	served, crowd := 0, time.Now()
	for range 40 {
		if halfFetch(t, via4(), victim.peerID(), raw) == tpb.Code_OK {
			served++
		}
	}
	start := time.Now()
	code := halfFetch(t, via4(), victim.peerID(), raw)
	// An upload expires at the earliest 2×IdleTimeout after its fetch
	// began (its stream is cut IdleTimeout after it stopped moving, then
	// it is forgotten IdleTimeout later): until then none has, and the
	// subnet's slots are all held.
	if took := time.Since(crowd); took >= 2*idle {
		t.Fatalf("the crowd and one more fetch took %v; the test needs them within 2×IdleTimeout (%v)", took, 2*idle)
	}
	if code != tpb.Code_BUSY {
		t.Fatalf("a stranger of the full subnet got %v, want BUSY", code)
	}
	honestTook := fetch(id)
	var freed time.Duration
	for {
		code := halfFetch(t, via4(), victim.peerID(), raw)
		if code == tpb.Code_OK {
			freed = time.Since(start)
			break
		}
		if time.Since(start) > 15*idle {
			t.Fatalf("half-done fetches still hold the subnet's slots after %v (IdleTimeout %v)", time.Since(start), idle)
		}
		time.Sleep(idle / 4)
	}
	// Every half-done upload is forgotten and counted, within the bound.
	for victim.n.TransferBudget().UploadsExpired < int64(served) && time.Since(start) < 15*idle {
		time.Sleep(idle / 4)
		_ = halfFetch(t, via4(), victim.peerID(), raw) // a claim prunes the budget
	}
	expired := victim.n.TransferBudget().UploadsExpired
	t.Logf("half-done fetches: %d of 40 served; slots free again %v later (IdleTimeout %v), %d uploads expired; trusted peer's fetch of 4 MiB took %v meanwhile (quiet: %v)",
		served, freed.Round(time.Millisecond), idle, expired, honestTook.Round(time.Millisecond), quiet.Round(time.Millisecond))
	if served != 32 {
		t.Fatalf("%d half-done fetches served; the subnet's share is 32", served)
	}
	if expired < int64(served) {
		t.Fatalf("%d uploads counted expired, want at least %d", expired, served)
	}
}

// portCounter counts the TCP connections accepted on n loopback ports.
type portCounter struct {
	mu    sync.Mutex
	hits  map[int]int
	addrs []ma.Multiaddr
}

func newPortCounter(t *testing.T, n int) *portCounter {
	t.Helper()
	pc := &portCounter{hits: make(map[int]int)}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the listeners close (cleanups run last first)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc.addrs = append(pc.addrs, ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
				pc.mu.Lock()
				pc.hits[port]++
				pc.mu.Unlock()
			}
		}()
		t.Cleanup(func() { _ = l.Close() })
	}
	return pc
}

func (pc *portCounter) counts() (ports, conns int) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, n := range pc.hits {
		ports++
		conns += n
	}
	return ports, conns
}

// TestStrangerChoosesNoDials (finding 4): 32 identities with a Parley
// agent announce the same 16 loopback addresses of the attacker's choosing
// (a port scan of this machine) and leave. The victim dials back at most
// the plausible few (two ports per IP), not the 16.
func TestStrangerChoosesNoDials(t *testing.T) {
	victim, honest, _ := underAttack(t)
	pc := newPortCounter(t, 16)
	var sybils []host.Host
	for range 32 {
		h := testnet.NewHost(t, libp2p.UserAgent("parley/sybil"),
			libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return pc.addrs }))
		testnet.Connect(t, h, victim.host())
		sybils = append(sybils, h)
	}
	deadline := time.Now().Add(waitTimeout)
	for _, h := range sybils { // until the victim heard every identify
		for {
			if v, err := victim.host().Peerstore().Get(h.ID(), "AgentVersion"); err == nil && v == "parley/sybil" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("victim did not identify the sybils")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, h := range sybils {
		_ = h.Close()
	}
	// The victim redials peers it remembers about a second after they
	// left, then with backoff: watch for a few seconds.
	time.Sleep(6 * time.Second)
	ports, conns := pc.counts()
	t.Logf("victim dialled %d of the 16 announced ports, %d connections in 6 s; %d announced addresses refused",
		ports, conns, victim.n.Host().RefusedAddrs())
	if ports > 2 {
		t.Fatalf("victim dialled %d distinct ports a stranger chose; at most 2 per IP are plausible", ports)
	}
	for _, r := range victim.n.Host().Remembered() {
		if r.Stranger && len(r.Addrs) > 2 {
			t.Fatalf("remembered %d addresses of stranger %s", len(r.Addrs), r.ID)
		}
	}
	stillServes(t, honest, victim, "after announced addresses")
}

// rawDMs sends n messages of size bytes from h to victim on one stream
// each batch and returns how many were stored.
func rawDMs(t *testing.T, h host.Host, victim peer.ID, n, size int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, victim, dm.ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	br := bufio.NewReader(s)
	stored := 0
	for range n {
		m := &dmpb.Message{Id: random(t, dm.IDLen), Nick: "sybil", Text: strings.Repeat("x", size), SentAtMs: time.Now().UnixMilli()}
		if err := pbframe.Write(s, m); err != nil {
			t.Fatal(err)
		}
		var ack dmpb.Ack
		if err := pbframe.Read(br, dm.MaxAckSize, &ack); err != nil {
			t.Fatalf("ack: %v", err)
		}
		if ack.Status != dmpb.Ack_STATUS_STORED {
			return stored
		}
		stored++
	}
	return stored
}

// TestStrangerDMsStopAtQuota (finding 5): 16 identities send 16 direct
// messages of 8 KB each; what is stored from strangers stops at the quota
// (here 256 KiB in all, 64 KiB per sender), and a contact's messages
// are still stored.
func TestStrangerDMsStopAtQuota(t *testing.T) {
	const total, perPeer = 256 << 10, 64 << 10
	small := func(c *node.Config) { c.DM.StrangerInboxBytes, c.DM.StrangerInboxPerPeer = total, perPeer }
	victim, honest := newParty(t, "victim", small), newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	victim.exec("/msg " + honest.peerID().String() + " hello, contact")
	honest.waitDM("hello, contact")
	dmLatency := func(tag string) time.Duration {
		start := time.Now()
		honest.exec("/msg " + victim.peerID().String() + " " + tag)
		victim.waitDM(tag)
		return time.Since(start)
	}
	dmLatency("warm-up dm") // the first opens the stream's path
	quiet := dmLatency("quiet dm")

	stored := 0
	for range 16 {
		stored += rawDMs(t, attacker(t, victim), victim.peerID(), 16, dm.MaxTextBytes)
	}
	loaded := dmLatency("dm after the flood")
	per := dm.MaxTextBytes + len("sybil") + 64
	t.Logf("stranger DMs stored: %d of 256 (%d KiB; quota %d KiB); contact's DM in %v (quiet: %v)",
		stored, stored*per>>10, total>>10, loaded, quiet)
	if stored*per > total {
		t.Fatalf("stored %d bytes of strangers' DMs; quota %d", stored*per, total)
	}
	if stored == 0 {
		t.Fatal("no stranger DM stored at all; the quota should admit some")
	}
	stillServes(t, honest, victim, "after stranger DMs")
}

// TestStrangerDMFloodAsFound (finding 5, with the default quotas): 40
// identities × 64 direct messages of 8 KB, which were all stored before
// (20 MiB), stop at the quota of newcomers of one subnet (1 MiB of the
// strangers' 4 MiB); then a contact's 16 messages of 8 KB are all stored
// and shown.
func TestStrangerDMFloodAsFound(t *testing.T) {
	victim, honest := newParty(t, "victim", nil), newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	victim.exec("/msg " + honest.peerID().String() + " hello, contact")
	honest.waitDM("hello, contact")

	big := strings.Repeat("y", dm.MaxTextBytes-16)
	contact := func(tag string) time.Duration { // 16 DMs of 8 KB until all are shown
		start := time.Now()
		for i := range 16 {
			honest.exec(fmt.Sprintf("/msg %s %s%d %s", victim.peerID(), tag, i, big))
		}
		for i := range 16 {
			victim.waitDM(fmt.Sprintf("%s%d %s", tag, i, big))
		}
		return time.Since(start)
	}
	quiet := contact("quiet")

	stored := 0
	for range 40 {
		stored += rawDMs(t, attacker(t, victim), victim.peerID(), 64, dm.MaxTextBytes)
	}
	loaded := contact("after")
	per := dm.MaxTextBytes + len("sybil") + 64
	t.Logf("stranger DMs stored: %d of 2560 (%d KiB; newcomers' quota %d KiB); a contact's 16 DMs of 8 KB shown in %v (quiet: %v)",
		stored, stored*per>>10, dm.DefaultStrangerInboxBytes/4>>10, loaded.Round(time.Millisecond), quiet.Round(time.Millisecond))
	if stored*per > dm.DefaultStrangerInboxBytes/4 || stored == 0 {
		t.Fatalf("stored %d bytes of fresh strangers' DMs; quota %d", stored*per, dm.DefaultStrangerInboxBytes/4)
	}
}

// sharing returns share, which shares a new random file of size bytes in
// the victim's lobby and waits until both the victim announced it and the
// honest peer was offered it, and fetch, which fetches a share as the
// honest peer and returns how long the fetch took.
func sharing(t *testing.T, victim, honest *party, size int) (share func(name string) string, fetch func(id string) time.Duration) {
	share = func(name string) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, random(t, size), 0o600); err != nil {
			t.Fatal(err)
		}
		id, err := victim.n.Share(context.Background(), node.DefaultRoom, path)
		if err != nil {
			t.Fatal(err)
		}
		victim.ev.wait(t, "share announced", func(e events.Event) bool {
			a, ok := e.(node.ShareAnnounced)
			return ok && a.Share.ID == id
		})
		honest.ev.wait(t, "honest sees "+name, func(e events.Event) bool {
			o, ok := e.(events.FileOffer)
			return ok && o.TransferID == id
		})
		return id
	}
	fetch = func(id string) time.Duration {
		start := time.Now()
		if err := honest.n.Fetch(context.Background(), id); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		honest.ev.wait(t, "honest fetched "+id, func(e events.Event) bool {
			d, ok := e.(events.FileDone)
			return ok && d.TransferID == id
		})
		return time.Since(start)
	}
	return share, fetch
}
