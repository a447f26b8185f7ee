package present

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/trust"
)

func newPeer(t *testing.T) peer.ID {
	t.Helper()
	p, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPeerNamesOneWay(t *testing.T) {
	p := newPeer(t)
	fp := identity.ShortFingerprint(p)
	cases := []struct {
		nick   string
		shared bool
		want   string
	}{
		{"alice", false, "alice"},
		{"alice", true, "alice (" + fp + ")"},
		{"", false, fp},
		{"", true, fp},
		{"evil\x1b[2J", false, `evil\x1b[2J`},
	}
	for _, tc := range cases {
		if got := Peer(tc.nick, p, tc.shared); got != tc.want {
			t.Errorf("Peer(%q, shared %v) = %q, want %q", tc.nick, tc.shared, got, tc.want)
		}
	}
	if got := Member("bob", p); got != "bob ("+fp+")" {
		t.Errorf("Member = %q", got)
	}
}

func TestTruncateKeepsUTF8(t *testing.T) {
	s := strings.Repeat("é", 10) // 20 bytes
	if got := Truncate(s, 5); got != "éé…" {
		t.Errorf("Truncate = %q", got)
	}
	if got := Cut(s, 5); got != "éé" {
		t.Errorf("Cut = %q", got)
	}
	if got := Truncate("short", 10); got != "short" {
		t.Errorf("Truncate of a short string = %q", got)
	}
}

func TestBytesAndProgress(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 30: "3.0 GiB", -5: "0 B"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Progress(1<<20, 2<<20, 1<<20); !strings.HasPrefix(got, "[##########----------]  50% 1.0 MiB/2.0 MiB  1.0 MiB/s  ETA 1s") {
		t.Errorf("Progress = %q", got)
	}
	if got := ETA(10, 0); got != "--:--" {
		t.Errorf("ETA without rate = %q", got)
	}
}

func TestWhoisText(t *testing.T) {
	p := newPeer(t)
	w := trust.WhoisInfo{
		PeerInfo: trust.PeerInfo{ID: p, Nick: "bob", Fingerprint: identity.Fingerprint(p), Pinned: true, Trusted: true,
			TrustedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Known: true, Path: "direct",
		Conns: []trust.WhoisConn{{Addr: "/ip4/127.0.0.1/tcp/1", Direction: "Outbound", Path: overlay.PathLAN}},
		Addrs: []string{"/dns4/evil\nline/tcp/1"},
	}
	txt := Whois(w)
	for _, want := range []string{"bob", p.String(), w.Fingerprint, "verified", "direct", `/dns4/evil\x0aline/tcp/1`} {
		if !strings.Contains(txt, want) {
			t.Fatalf("text lacks %q:\n%s", want, txt)
		}
	}
	w.Conns[0].Relayed, w.Path = true, "relayed"
	if !strings.Contains(Whois(w), "relayed") {
		t.Fatalf("relayed path not shown:\n%s", Whois(w))
	}
	if txt := Whois(w); !strings.Contains(txt, "Outbound lan /ip4/127.0.0.1/tcp/1") {
		t.Fatalf("a connection's own path not shown:\n%s", txt)
	}
	w.Conns, w.Path = nil, overlay.PathNone
	if txt := Whois(w); !strings.Contains(txt, "connection:  not connected") {
		t.Fatalf("no connection not shown:\n%s", txt)
	}
}

func TestEventLinesAreInert(t *testing.T) {
	p := newPeer(t)
	evil := "x\x1b]0;title\x07\u202e"
	for _, e := range []events.Event{
		events.Message{Room: evil, Nick: evil, Text: evil, From: p},
		events.DM{From: p, Nick: evil, Text: evil},
		events.Presence{Room: evil, PeerID: p, Nick: evil},
		events.FileOffer{From: p, Name: evil, Room: evil},
		events.Error{Error: evil},
		events.DMStatus{To: p, State: events.DMQueued, Reason: evil, Detail: evil},
		events.PeerDialFailed{PeerID: p, Error: evil, Addr: evil},
		events.RoomSync{Room: evil, State: evil},
	} {
		got := Event(e, nil)
		if !safetext.IsClean(strings.ReplaceAll(got, "\n", " ")) {
			t.Errorf("%s: not inert: %q", e.Type(), got)
		}
	}
}

func TestWaitingLines(t *testing.T) {
	p := newPeer(t)
	cases := []struct {
		e    events.Event
		want string
	}{
		{events.DMStatus{ID: "0011223344", To: p, State: events.DMQueued, Reason: events.DMWaitDialFailed, Detail: "127.0.0.1:1 refused the connection"},
			"queued, waiting: 127.0.0.1:1 refused the connection)"},
		{events.DMStatus{ID: "0011223344", To: p, State: events.DMQueued}, "queued)"},
		{events.PeerDialFailed{PeerID: p, Reason: "refused", Error: "127.0.0.1:1 refused the connection", RetryIn: 2040 * time.Millisecond},
			": 127.0.0.1:1 refused the connection; retrying in 2s"},
		{events.FileProgress{TransferID: "aabbccdd", Bytes: 1 << 18, Size: 1 << 20, Direction: "receive", Peer: p, Waiting: true},
			", waiting for the sender (resumes when it is back, or /resume)"},
		{events.FileProgress{TransferID: "aabbccdd", Bytes: 1 << 18, Size: 1 << 20, Direction: "receive", Peer: p, Waiting: true,
			Code: events.WaitNoSpace, Reason: "local disk: write chunk 3: write x.part: no space left on device"},
			", waiting: local disk: write chunk 3: write x.part: no space left on device (this disk is full: free some space, then /resume aabbccdd)"},
	}
	for _, tc := range cases {
		got := Event(tc.e, nil)
		if !strings.HasSuffix(got, tc.want) || strings.Contains(got, "\n") || strings.Contains(got, "\x0a") {
			t.Errorf("%s: %q, want one line ending in %q", tc.e.Type(), got, tc.want)
		}
	}
}

func TestRoomSyncLines(t *testing.T) {
	at := time.Date(2026, 12, 5, 15, 20, 0, 0, time.Local)
	cases := []struct {
		e    events.RoomSync
		want string
	}{
		{events.RoomSync{Room: "lobby", State: events.SyncWaiting}, "* #lobby: history: waiting for a member to sync with"},
		{events.RoomSync{Room: "lobby", State: events.SyncSyncing}, "* #lobby: history: syncing"},
		{events.RoomSync{Room: "lobby", State: events.SyncComplete, Since: at, Peers: 1}, "* #lobby: history complete since Dec 5 15:20"},
		{events.RoomSync{Room: "lobby", State: events.SyncComplete, Since: at, Peers: 2, CaughtUp: 200},
			"* #lobby: history complete since Dec 5 15:20, 200 caught up"},
		{events.RoomSync{Room: "lobby", State: events.SyncGaps, Since: at, Peers: 1, CaughtUp: 3,
			Gaps: []events.SyncGap{{From: at, To: at.Add(time.Minute), Missing: 2}, {From: at.Add(time.Hour), To: at.Add(2 * time.Hour), Missing: 1}}},
			"* #lobby: history has gaps: 2 missing between Dec 5 15:20 and Dec 5 15:21; 1 missing between Dec 5 16:20 and Dec 5 17:20, 3 caught up"},
		{events.RoomSync{Room: "lobby", State: events.SyncGaps, Since: at, Gaps: []events.SyncGap{{From: at, To: at.Add(time.Hour)}}},
			"* #lobby: history has gaps: anything since Dec 5 15:20 may be missing (no member could be synced with)"},
	}
	for _, tc := range cases {
		if got := Event(tc.e, nil); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.e.State, got, tc.want)
		}
		if tc.e.State != "" && SyncShort(tc.e.State) == "" {
			t.Errorf("%s: no short form", tc.e.State)
		}
	}
}

// nickNamer names peers from a map.
type nickNamer map[peer.ID]string

func (n nickNamer) PeerName(p peer.ID) string { return n[p] }

// The path is described the same way in /peers, /whois and peer_path:
// the relay named with its fingerprint, hole punching said.
func TestPathText(t *testing.T) {
	p, r := newPeer(t), newPeer(t)
	rfp := identity.ShortFingerprint(r)
	for _, tc := range []struct {
		name        string
		path        string
		via         peer.ID
		viaNick     string
		holePunched bool
		want        string
	}{
		{"lan", "lan", "", "", false, "lan"},
		{"direct", "direct", "", "", false, "direct"},
		{"hole-punched", "direct", "", "", true, "direct, hole-punched"},
		{"relayed, unknown relay", "relayed", "", "", false, "relayed"},
		{"relayed via a nick", "relayed", r, "carol", false, "relayed via carol (" + rfp + ")"},
		{"relayed via a fingerprint", "relayed", r, "", false, "relayed via " + rfp},
		{"relay nick made inert", "relayed", r, "ca\x1b[2Jrol", false, "relayed via ca\\x1b[2Jrol (" + rfp + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PathText(tc.path, tc.via, tc.viaNick, tc.holePunched); got != tc.want {
				t.Fatalf("PathText = %q, want %q", got, tc.want)
			}
			row := node.PeerRow{PeerID: p, Path: overlay.Path(tc.path), Via: tc.via, ViaNick: tc.viaNick, HolePunched: tc.holePunched, Addr: "/ip4/127.0.0.1/tcp/1"}
			if got := Peers([]node.PeerRow{row}, "private", 0); !strings.Contains(got, "  "+tc.want+" /ip4/127.0.0.1/tcp/1, rtt") {
				t.Fatalf("/peers text lacks %q:\n%s", tc.want, got)
			}
			w := trust.WhoisInfo{PeerInfo: trust.PeerInfo{ID: p}, Path: overlay.Path(tc.path), Via: tc.via, ViaNick: tc.viaNick, HolePunched: tc.holePunched}
			if got := Whois(w); !slices.Contains(strings.Split(got, "\n"), "  connection:  "+tc.want) {
				t.Fatalf("/whois text lacks %q:\n%s", tc.want, got)
			}
			e := events.PeerPath{PeerID: p, Path: tc.path, Previous: "lan", Addr: "/ip4/1.2.3.4/tcp/1", Via: tc.via, HolePunched: tc.holePunched}
			line := Event(e, nickNamer{r: tc.viaNick})
			if want := "now " + tc.want + " (was lan), at /ip4/1.2.3.4/tcp/1"; !strings.Contains(line, want) {
				t.Fatalf("peer_path line %q lacks %q", line, want)
			}
		})
	}
}

// TestOnePeerNameEverywhere: every line about a peer names it as Member
// does, "nick (FP4)"; only /verify (with /id and /whois) shows the full
// peer ID and fingerprint, which are what is compared.
func TestOnePeerNameEverywhere(t *testing.T) {
	p, o := newPeer(t), newPeer(t)
	name := "bob (" + identity.ShortFingerprint(p) + ")"
	namer := nickNamer{p: "bob"}
	lines := map[string]string{
		"connected":    Event(events.PeerConnected{PeerID: p, Addr: "/ip4/127.0.0.1/tcp/1"}, namer),
		"disconnected": Event(events.PeerDisconnected{PeerID: p}, namer),
		"presence":     Event(events.Presence{Room: "lobby", PeerID: p, Nick: "bob", Online: true}, namer),
		"dm":           Event(events.DM{From: p, Nick: "bob", Text: "hi"}, namer),
		"dm status":    Event(events.DMStatus{ID: "0011223344", To: p, State: events.DMDelivered}, namer),
		"offer":        Event(events.FileOffer{TransferID: "t", From: p, Name: "f"}, namer),
		"dial failed":  Event(events.PeerDialFailed{PeerID: p, Error: "refused"}, namer),
		"/peers":       Peers([]node.PeerRow{{PeerID: p, Nick: "bob", Path: overlay.PathLAN, Addr: "/ip4/127.0.0.1/tcp/1", RTT: 40 * time.Microsecond}}, "private", 0),
		"/trust":       Trusted(trust.PeerInfo{Nick: "bob"}, p, true),
		"/untrust":     Trusted(trust.PeerInfo{Nick: "bob"}, p, false),
		"send waiting": SendWaiting("/tmp/f.bin", MemberBy(namer, p), "0011223344"),
	}
	for what, line := range lines {
		if !strings.Contains(line, name) {
			t.Errorf("%s: %q does not name the peer %q", what, line, name)
		}
		if strings.Contains(line, p.String()) || strings.Contains(line, identity.Fingerprint(p)) || strings.Contains(line, "…") {
			t.Errorf("%s: %q names the peer another way too", what, line)
		}
	}
	if got := lines["/peers"]; !strings.HasSuffix(got, "\n  "+name+"  lan /ip4/127.0.0.1/tcp/1, rtt <1ms") {
		t.Errorf("/peers row %q", got)
	}
	if got := lines["connected"]; got != "* connected: "+name+" at /ip4/127.0.0.1/tcp/1" {
		t.Errorf("connected line %q", got)
	}
	verify := Safety(node.SafetyInfo{PeerID: p, Nick: "bob", SafetyNumber: "12345"}, "bob")
	for _, want := range []string{p.String(), identity.Fingerprint(p), "If it matches, run /trust bob."} {
		if !strings.Contains(verify, want) {
			t.Errorf("/verify lacks %q:\n%s", want, verify)
		}
	}
	verified := Safety(node.SafetyInfo{PeerID: p, Nick: "bob", SafetyNumber: "12345", Trusted: true}, "bob")
	if strings.Contains(verified, "run /trust") || !strings.Contains(verified, "You already trust bob") {
		t.Errorf("/verify of a trusted peer:\n%s", verified)
	}
	warn := Event(events.TrustWarning{PeerID: o, Nick: "bob", PinnedPeerID: p, Text: `WARNING: "bob" is now used by key X`}, nil)
	if warn != `!!! WARNING: "bob" is now used by key X` {
		t.Errorf("trust warning %q", warn)
	}
}

func TestRTTAndLastSeen(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "not measured yet", 300 * time.Microsecond: "<1ms", 12400 * time.Microsecond: "12ms"} {
		if got := RTT(d); got != want {
			t.Errorf("RTT(%v) = %q, want %q", d, got, want)
		}
	}
	p := newPeer(t)
	seen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w := trust.WhoisInfo{PeerInfo: trust.PeerInfo{ID: p, Nick: "bob", FirstSeen: seen, LastSeen: seen}, Known: true, Path: overlay.PathLAN}
	if got := Whois(w); !strings.Contains(got, ", last now (connected)\n") {
		t.Errorf("whois of a connected peer:\n%s", got)
	}
	w.Path = overlay.PathNone
	if got := Whois(w); !strings.Contains(got, ", last "+seen.Format(time.DateTime)+"\n") {
		t.Errorf("whois of a gone peer:\n%s", got)
	}
}
