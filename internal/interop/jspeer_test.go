package interop

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
	"lukechampine.com/blake3"
)

// testFile is the content the js peer generates for a file of size bytes:
// byte k is k mod 251 (as in docs/vectors/transfer.json).
func testFile(size int) []byte {
	b := make([]byte, size)
	for k := range b {
		b[k] = byte(k % 251)
	}
	return b
}

// jsDir holds the js-libp2p peer; `npm ci` there installs its pinned
// packages into node_modules (.ci/run does).
const jsDir = "js"

// wait bounds every awaited event; GossipSub heartbeats are 1 s, the
// parley mesh wait 5 s, a -race build is slow.
const wait = 30 * time.Second

// nodeForJSPeer returns the node binary, or skips (fails under CI, where
// .ci/run installs everything) when the js peer cannot run here.
func nodeForJSPeer(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but the js-libp2p peer cannot run: "+format, args...)
		}
		t.Skipf("js-libp2p interop not run: "+format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("node is not installed (apt-get install nodejs npm; then npm ci in internal/interop/js)")
		return ""
	}
	out, err := exec.Command(node, "--version").Output() // #nosec G204 -- fixed arguments
	if err != nil {
		unavailable("node --version: %v", err)
		return ""
	}
	v := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if major < 20 {
		// Not a CI failure: the machine's runtime, not the project, is
		// too old (Debian 12's own nodejs is 18).
		t.Skipf("js-libp2p interop not run: node %s is older than 20, which js-libp2p 3 needs", v)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "libp2p", "package.json")); err != nil {
		unavailable("its packages are not installed: run `npm ci` in internal/interop/js (needs npm and the npm registry; .ci/run does it)")
		return ""
	}
	return node
}

// jsPeer is the js-libp2p peer of js/peer.mjs, speaking JSON lines.
type jsPeer struct {
	*proctest.Peer
	id string
}

func startJSPeer(t *testing.T, node string) *jsPeer {
	t.Helper()
	cmd := exec.Command(node, "peer.mjs") // #nosec G204 -- runs the test's own script
	cmd.Dir = jsDir
	p := proctest.StartCmd(t, "js", cmd)
	ready := p.Wait(wait, "ready", nil)
	return &jsPeer{Peer: p, id: ready.Str("peer_id")}
}

// do sends one command to the js peer.
func (j *jsPeer) do(t *testing.T, cmd map[string]any) {
	t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	j.Send(string(b))
}

// noEvent fails if p reported an event of type typ matching match so far.
func noEvent(t *testing.T, p *proctest.Peer, typ string, match func(proctest.Event) bool) {
	t.Helper()
	for _, e := range p.Seen() {
		if e.Type() == typ && (match == nil || match(e)) {
			t.Fatalf("%s reported %s: %v", p.Name, typ, e)
		}
	}
}

// logEvents logs every event p reported (after a failure).
func logEvents(t *testing.T, p *proctest.Peer) {
	t.Helper()
	for _, e := range p.Seen() {
		b, _ := json.Marshal(e)
		if len(b) > 600 {
			b = append(b[:600], "..."...)
		}
		t.Logf("%s event: %s", p.Name, b)
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestJSLibp2pPeer runs a real parley process and the js-libp2p peer of
// js/peer.mjs (written from docs/PROTOCOL.md) on loopback and checks, in
// order: the js peer connects over TCP + Noise + yamux and both sides see
// each other subscribed to the lobby topic; each shows the other's
// presence, carried by the room sync's member set (parley's session with
// the new topic peer, then one the js peer opens after changing its nick);
// a room message signed by the js peer is shown by parley; parley's
// message reaches the js peer, whose own check of the StrictSign signature
// and of rooms §6 accepts it; rooms whose names differ by case, final
// sigma, dotted capital I or width (ΣΑΣ and σας, İstanbul and İSTANBUL,
// ＬＯＢＢＹ２ and lobby2) are one topic on both stacks, with presence both
// ways in each; a private room joined from parley's invite brings the js
// peer a line sent before it joined (history set), and carries sealed
// presence items and sealed messages both ways; a direct message each way
// over /parley/dm/1.0.0 is stored and
// acknowledged; a file each way over /parley/file/2.0.0 (js offers one
// with its hash, parley pulls the manifest and the 16 KiB chunks; parley
// offers one without a hash, v2 hash-as-you-send, the js peer checks every
// chunk, the commitment and the BLAKE3 file hash), DONE with the hash both
// ways and the bytes compared; the js peer leaves a room and parley shows
// it gone; parley shuts down with the js peer in its rooms and its leaving
// presence reaches the js peer (the test logs how long parley took). No
// message, sync item or frame either side sent was refused by the other.
// The steps share the two processes, so the first failure ends the test.
func TestJSLibp2pPeer(t *testing.T) {
	t.Log("covers, js-libp2p <-> parley on 127.0.0.1: TCP+Noise+yamux, identify, ping; GossipSub StrictSign " +
		"(/meshsub/1.2.0) public rooms (text both ways, leaving both ways); presence both ways over " +
		"/parley/rooms/sync/1.0.0 (member set; js as responder and initiator; history and shares answered); " +
		"one name rule (ΣΑΣ/σας, İstanbul/İSTANBUL, ＬＯＢＢＹ２/lobby2) with presence and messages in each; " +
		"a sealed private room from an invite (history caught up over sync, sealed presence items, key proofs, messages both ways); " +
		"/parley/dm/1.0.0 both ways with acks; /parley/file/2.0.0 both ways (manifest first, " +
		"hash-as-you-send, DONE); parley's shutdown with the js peer connected. " +
		"Not covered: large-set reconciliation (conformance.mjs), membership, shares, resume, mailbox")
	node := nodeForJSPeer(t)
	bin, err := proctest.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--json", "--data-dir", filepath.Join(t.TempDir(), "parley"), "--nick", "goparley"}, proctest.Loopback()...)...) // #nosec G204 -- the binary under test
	// As proctest.Start, but without the 1 s a -race build sleeps at exit
	// (atexit_sleep_ms), which would hide how long parley's shutdown takes.
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1 atexit_sleep_ms=0")
	p := proctest.StartCmd(t, "parley", cmd)
	ready := p.Wait(wait, "ready", nil)
	parleyID := ready.Str("peer_id")
	addrs, _ := ready["addrs"].([]any)
	if len(addrs) == 0 {
		t.Fatalf("ready without addrs: %v", ready)
	}
	addr, _ := addrs[0].(string)
	p.Find(wait, "joined", func(e proctest.Event) bool { return e.Str("room") == "lobby" })

	js := startJSPeer(t, node)
	t.Cleanup(func() {
		if t.Failed() {
			logEvents(t, p)
			logEvents(t, js.Peer)
		}
	})
	lobby := "parley/room/1/public/lobby"

	{
		t.Log("step: connect and subscribe")
		js.do(t, map[string]any{"cmd": "join", "room": "Lobby", "nick": "jsbot"})
		if e := js.Wait(wait, "joined", nil); e.Str("topic") != lobby {
			t.Fatalf("js joined %v, want topic %s", e, lobby)
		}
		js.do(t, map[string]any{"cmd": "dial", "addr": addr})
		js.Wait(wait, "dialed", func(e proctest.Event) bool { return e.Str("peer_id") == parleyID })
		p.Find(wait, "peer_connected", func(e proctest.Event) bool { return e.Str("peer_id") == js.id })
		js.Find(wait, "subscribed", func(e proctest.Event) bool {
			return e.Str("peer_id") == parleyID && e.Str("topic") == lobby && e["subscribe"] == true
		})
	}

	{
		t.Log("step: presence both ways over the room sync's member set")
		// Parley opens a member-set session with the new topic peer; the
		// js peer answers it (responder) with the presence it signed on
		// joining, and takes parley's.
		p.Find(wait, "presence", func(e proctest.Event) bool {
			return e.Str("room") == "lobby" && e.Str("peer_id") == js.id && e.Str("nick") == "jsbot" && e["online"] == true
		})
		pr := js.Find(wait, "presence", func(e proctest.Event) bool {
			return e.Str("from") == parleyID && e.Str("room") == "lobby" && e.Str("via") == "sync"
		})
		if pr.Str("nick") != "goparley" || pr["leaving"] != false || pr["signature_verified"] != true {
			t.Fatalf("js got parley's presence %v", pr)
		}
		js.Find(wait, "sync", func(e proctest.Event) bool {
			return e.Str("peer") == parleyID && e.Str("role") == "responder" && e.Str("set") == "members" && e.Str("room") == "lobby"
		})
		// A new presence of the js peer (another nick): it opens member-set
		// sessions itself (initiator), as a member does after its own
		// presence changed.
		js.do(t, map[string]any{"cmd": "presence", "room": "lobby", "nick": "jsbot2"})
		js.Wait(wait, "sync", func(e proctest.Event) bool {
			return e.Str("peer") == parleyID && e.Str("role") == "initiator" && e.Str("set") == "members" && e["sent"] == float64(1)
		})
		p.Find(wait, "presence", func(e proctest.Event) bool {
			return e.Str("room") == "lobby" && e.Str("peer_id") == js.id && e.Str("nick") == "jsbot2" && e["online"] == true
		})
	}

	{
		t.Log("step: js to parley in a room")
		js.do(t, map[string]any{"cmd": "publish", "room": "lobby", "nick": "jsbot", "text": "hello from js-libp2p"})
		pub := js.Wait(wait, "published", func(e proctest.Event) bool { return e["kind"] == float64(1) })
		m := p.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("text") == "hello from js-libp2p" })
		if m.Str("room") != "lobby" || m.Str("from") != js.id || m.Str("nick") != "jsbot" || m.Str("id") != pub.Str("id") || m["private"] != false {
			t.Fatalf("parley showed %v for the js message %v", m, pub)
		}
	}

	{
		t.Log("step: parley to js in a room")
		p.Send("hello from parley, ünïcödé ✓")
		own := p.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("from") == parleyID })
		m := js.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("from") == parleyID })
		if m.Str("text") != "hello from parley, ünïcödé ✓" || m.Str("nick") != "goparley" || m.Str("room") != "lobby" || m["signature_verified"] != true {
			t.Fatalf("js got %v", m)
		}
		if m.Str("id") != own.Str("id") || !hexID.MatchString(m.Str("id")) {
			t.Fatalf("js got envelope id %q, parley shows %q", m.Str("id"), own.Str("id"))
		}
		// The longest text (4096 characters, 12 KiB of UTF-8) both ways.
		long := strings.Repeat("✓", 4096)
		p.Send(long)
		if m := js.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("from") == parleyID }); m.Str("text") != long {
			t.Fatalf("js got %d bytes of text, want %d", len(m.Str("text")), len(long))
		}
		js.do(t, map[string]any{"cmd": "publish", "room": "lobby", "nick": "jsbot", "text": long})
		p.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("from") == js.id && e.Str("text") == long })
	}

	{
		t.Log("step: one room name rule")
		cases := []struct{ parley, js, canonical string }{
			{"ΣΑΣ", "σας", "σασ"},                      // final sigma folds to σ
			{"İstanbul", "İSTANBUL", "i\u0307stanbul"}, // İ folds to i + U+0307
			{"ＬＯＢＢＹ２", "lobby2", "lobby2"},             // full width: NFKC
		}
		for _, tc := range cases {
			p.Send("/join " + tc.parley)
			p.Wait(wait, "joined", func(e proctest.Event) bool { return e.Str("room") == tc.canonical })
			js.do(t, map[string]any{"cmd": "join", "room": tc.js, "nick": "jsbot"})
			topic := "parley/room/1/public/" + tc.canonical
			if e := js.Wait(wait, "joined", nil); e.Str("topic") != topic {
				t.Fatalf("js joined %q as %v, want topic %s", tc.js, e, topic)
			}
			js.Find(wait, "subscribed", func(e proctest.Event) bool { return e.Str("peer_id") == parleyID && e.Str("topic") == topic })
			// Presence both ways in the room: the sync names the topic.
			js.Find(wait, "presence", func(e proctest.Event) bool {
				return e.Str("from") == parleyID && e.Str("topic") == topic && e.Str("via") == "sync"
			})
			p.Find(wait, "presence", func(e proctest.Event) bool {
				return e.Str("room") == tc.canonical && e.Str("peer_id") == js.id && e["online"] == true
			})
			text := "in " + tc.js
			js.do(t, map[string]any{"cmd": "publish", "room": tc.js, "nick": "jsbot", "text": text})
			m := p.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("text") == text })
			if m.Str("room") != tc.canonical || m.Str("from") != js.id {
				t.Fatalf("parley showed %v for a js message in %q", m, tc.js)
			}
			// Leaving is published on the topic (rooms §7).
			p.Send("/leave " + tc.canonical)
			pr := js.Find(wait, "presence", func(e proctest.Event) bool {
				return e.Str("from") == parleyID && e.Str("topic") == topic && e["leaving"] == true && e.Str("via") == "topic"
			})
			if pr.Str("nick") != "goparley" || pr["signature_verified"] != true {
				t.Fatalf("js got presence %v", pr)
			}
		}
	}

	{
		t.Log("step: private room from an invite, both ways")
		p.Send("/create secret")
		inv := p.Wait(wait, "info", func(e proctest.Event) bool {
			data, _ := e["data"].(map[string]any)
			return data != nil && data["invite"] != nil
		})
		invite, _ := inv["data"].(map[string]any)["invite"].(string)
		// A line the js peer was not there for: the history set of the
		// sync brings it (parley syncs history with its first topic peers).
		p.Send("/switch secret")
		p.Send("sealed before js joined")
		p.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("text") == "sealed before js joined" })
		js.do(t, map[string]any{"cmd": "join", "invite": invite, "nick": "jsbot"})
		joined := js.Wait(wait, "joined", nil)
		topic := joined.Str("topic")
		if joined.Str("room") != "secret" || joined["private"] != true || !strings.HasPrefix(topic, "parley/room/1/private/") {
			t.Fatalf("js joined %v from the invite", joined)
		}
		js.Find(wait, "subscribed", func(e proctest.Event) bool { return e.Str("peer_id") == parleyID && e.Str("topic") == topic })
		caught := js.Find(wait, "synced_message", func(e proctest.Event) bool { return e.Str("text") == "sealed before js joined" })
		if caught.Str("from") != parleyID || caught.Str("set") != "history" || caught["private"] != true || caught.Str("topic") != topic {
			t.Fatalf("js caught up %v", caught)
		}
		// Presence both ways: sealed items, and both sides' key proofs.
		js.Find(wait, "presence", func(e proctest.Event) bool {
			return e.Str("from") == parleyID && e.Str("topic") == topic && e.Str("via") == "sync" && e["private"] == true
		})
		p.Find(wait, "presence", func(e proctest.Event) bool {
			return e.Str("room") == "secret" && e.Str("peer_id") == js.id && e["online"] == true
		})
		js.do(t, map[string]any{"cmd": "publish", "room": "secret", "nick": "jsbot", "text": "sealed by js"})
		m := p.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("text") == "sealed by js" })
		if m.Str("room") != "secret" || m.Str("from") != js.id || m["private"] != true {
			t.Fatalf("parley showed %v for the sealed js message", m)
		}
		p.Send("/switch secret")
		p.Send("sealed by parley")
		got := js.Wait(wait, "message", func(e proctest.Event) bool { return e.Str("text") == "sealed by parley" })
		if got.Str("room") != "secret" || got["private"] != true || got.Str("from") != parleyID || got["signature_verified"] != true {
			t.Fatalf("js got %v", got)
		}
	}

	{
		t.Log("step: direct message js to parley")
		js.do(t, map[string]any{"cmd": "dm", "peer": parleyID, "nick": "jsbot", "text": "a dm from js"})
		ack := js.Wait(wait, "dm_ack", nil)
		if ack["status"] != float64(1) { // STATUS_STORED
			t.Fatalf("ack %v, want STATUS_STORED", ack)
		}
		dm := p.Wait(wait, "dm", func(e proctest.Event) bool { return e.Str("text") == "a dm from js" })
		if dm.Str("from") != js.id || dm.Str("nick") != "jsbot" || dm.Str("id") != ack.Str("id") {
			t.Fatalf("parley showed %v for the js DM acked %v", dm, ack)
		}
	}

	{
		t.Log("step: direct message parley to js")
		p.Send("/msg " + js.id + " a dm from parley")
		dm := js.Wait(wait, "dm", nil)
		if dm.Str("from") != parleyID || dm.Str("text") != "a dm from parley" || dm.Str("nick") != "goparley" {
			t.Fatalf("js got %v", dm)
		}
		st := p.Wait(wait, "dm_status", func(e proctest.Event) bool { return e.Str("state") == "delivered" })
		if st.Str("to") != js.id || st.Str("id") != dm.Str("id") {
			t.Fatalf("parley reported %v for the DM js stored as %v", st, dm)
		}
	}

	{
		t.Log("step: a file js to parley (offer with hash, manifest first, 16 KiB chunks)")
		const size = 100000 // 7 chunks of 16 KiB, the last one short
		js.do(t, map[string]any{"cmd": "send_file", "peer": parleyID, "name": "from-js.bin", "size": size, "chunk_size": 16384})
		offered := js.Wait(wait, "file_offered", nil)
		if offered["status"] != float64(1) || offered["chunks"] != float64(7) { // Code OK: waiting for the user
			t.Fatalf("js offer answered %v, want status OK and 7 chunks", offered)
		}
		id := offered.Str("transfer_id")
		fo := p.Wait(wait, "file_offer", func(e proctest.Event) bool { return e.Str("transfer_id") == id })
		if fo.Str("from") != js.id || fo["size"] != float64(size) {
			t.Fatalf("parley showed %v for the js offer %v", fo, offered)
		}
		p.Send("/accept " + id)
		done := p.Wait(wait, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == id })
		want := testFile(size)
		sum := blake3.Sum256(want)
		if done.Str("hash") != hex.EncodeToString(sum[:]) || done.Str("hash") != offered.Str("hash") || done.Str("direction") != "receive" {
			t.Fatalf("parley file_done %v, want hash %x (js offered %s)", done, sum, offered.Str("hash"))
		}
		got, err := os.ReadFile(done.Str("path"))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("parley's received file %s: %d bytes, err %v; differs from what js sent", done.Str("path"), len(got), err)
		}
		served := js.Wait(wait, "file_served", func(e proctest.Event) bool { return e.Str("transfer_id") == id })
		if served["chunks"] != float64(7) {
			t.Errorf("js served %v, want 7 chunks", served)
		}
		jd := js.Wait(wait, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == id })
		if jd["hash_matches"] != true || jd.Str("peer") != parleyID {
			t.Fatalf("js got DONE %v, want parley's hash to match its own", jd)
		}
	}

	{
		t.Log("step: a file parley to js (v2 hash-as-you-send, 1 MiB chunks)")
		const size = 2<<20 + 12345 // 3 chunks of parley's default 1 MiB
		want := testFile(size)
		path := filepath.Join(t.TempDir(), "from-parley.bin")
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		p.Send("/send " + js.id + " " + path)
		fo := js.Wait(wait, "file_offer", func(e proctest.Event) bool { return e.Str("from") == parleyID })
		id := fo.Str("transfer_id")
		if fo.Str("name") != "from-parley.bin" || fo["size"] != float64(size) {
			t.Fatalf("js got offer %v", fo)
		}
		sum := blake3.Sum256(want)
		rcv := js.Wait(wait, "file_received", func(e proctest.Event) bool { return e.Str("transfer_id") == id })
		if rcv.Str("hash") != hex.EncodeToString(sum[:]) || rcv["chunks"] != float64(3) || rcv["chunks_verified"] != float64(3) || rcv["content_matches"] != true {
			t.Fatalf("js received %v, want 3 verified chunks and hash %x", rcv, sum)
		}
		t.Logf("js pulled parley's file by %s", rcv.Str("flow"))
		if jd := js.Wait(wait, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == id }); jd["status"] != float64(1) {
			t.Fatalf("parley answered js's DONE with %v, want status OK", jd)
		}
		done := p.Wait(wait, "file_done", func(e proctest.Event) bool { return e.Str("transfer_id") == id })
		if done.Str("hash") != hex.EncodeToString(sum[:]) || done.Str("direction") != "send" || done.Str("peer") != js.id {
			t.Fatalf("parley file_done %v, want hash %x", done, sum)
		}
	}

	{
		t.Log("step: the js peer leaves a room")
		js.do(t, map[string]any{"cmd": "leave", "room": "lobby"})
		js.Wait(wait, "left", nil)
		p.Find(wait, "presence", func(e proctest.Event) bool {
			return e.Str("room") == "lobby" && e.Str("peer_id") == js.id && e["online"] == false
		})
	}

	// Nothing either side sent was refused by the other.
	noEvent(t, js.Peer, "refused", nil)
	noEvent(t, js.Peer, "sync_refused", nil)
	noEvent(t, js.Peer, "error", nil)
	noEvent(t, p, "error", nil)

	{
		t.Log("step: parley shuts down while the js peer is in its rooms")
		// Parley publishes leaving in every room, then half-closes its
		// GossipSub streams and waits (at most 1 s) for each peer to close
		// its side (rooms §7).
		start := time.Now()
		before := len(js.Seen())
		p.CloseStdin()
		pr := js.Wait(wait, "presence", func(e proctest.Event) bool {
			return e.Str("from") == parleyID && e.Str("room") == "secret" && e["leaving"] == true
		})
		if pr["private"] != true || pr["signature_verified"] != true {
			t.Fatalf("js got parley's last presence %v", pr)
		}
		// The js peer read the end of parley's GossipSub stream and closed
		// its side, so parley did not wait out its second.
		closed := js.Find(wait, "gossip_stream_closed", func(e proctest.Event) bool { return e.Str("peer_id") == parleyID })
		if i := slices.IndexFunc(js.Seen(), func(e proctest.Event) bool { return e.Type() == "gossip_stream_closed" }); i < before {
			t.Fatalf("js closed its side of a gossip stream before parley shut down: %v", closed)
		}
		if err := p.Exited(10 * time.Second); err != nil {
			t.Errorf("parley exit: %v\n%s", err, p.Stderr())
		}
		t.Logf("parley took %v to shut down with the js peer connected (at most 1 s of it waiting for the js peer)", time.Since(start).Round(time.Millisecond))
	}

	noEvent(t, js.Peer, "sync_refused", nil)
	js.do(t, map[string]any{"cmd": "quit"})
	if err := js.Exited(10 * time.Second); err != nil {
		t.Errorf("js peer exit: %v\n%s", err, js.Stderr())
	}
}

// TestSealVectorsInJS checks the js peer's private-room code (invites,
// topics, seal keys, XChaCha20-Poly1305 from @noble/ciphers) against
// docs/vectors/rooms.json, including the sealed envelopes vectors.mjs
// cannot check without a cipher package.
func TestSealVectorsInJS(t *testing.T) {
	node := nodeForJSPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sealvectors.mjs") // #nosec G204 -- fixed arguments
	cmd.Dir = jsDir
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("node sealvectors.mjs: %v", err)
	}
}

// TestVectorsInJS checks the js peer's wire code (wire.mjs, blake3.mjs) and
// derivations written from docs/PROTOCOL.md against the vector files that
// TestVectorsInNode and TestSealVectorsInJS do not cover: transfer.json
// (BLAKE3 chunk and file hashes, chunk sizes, every frame, Get ranges,
// manifests and commitments), dm.json (frames and both sides' verdicts),
// identity.json (keys, peer IDs, fingerprints, safety numbers), sync.json
// (signed items, item IDs, fingerprints, proofs, first frames, every range of
// the reconciliation's rounds and what the initiator learns), members.json
// (the log's signing bytes, signatures and hashes, a replay of the log with
// the roles after it and the changes it refuses, epoch keys and seals,
// proofs, the member key and the HPKE-sealed epoch key), the passphrase
// keys of rooms.json (Argon2id) and the mailbox vectors (records and id,
// the MLKEM768-X25519 key derived from carol's identity seed, and the seal
// opened to alice's signed note: ML-KEM-768 from @noble/post-quantum).
// conformance.mjs prints what it cannot check and why.
func TestVectorsInJS(t *testing.T) {
	node := nodeForJSPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "conformance.mjs") // #nosec G204 -- fixed arguments
	cmd.Dir = jsDir
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("node conformance.mjs: %v", err)
	}
	// The mailbox group must have run in full: 3 records and id checks, 3
	// KEM key checks, the decapsulation cross-check, the opened seal and 4
	// seals it must refuse.
	m := regexp.MustCompile(`(?m)^mailbox: (\d+) passed, 0 failed$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("conformance.mjs printed no clean mailbox line")
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 12 {
		t.Errorf("conformance.mjs ran %d mailbox checks, want at least 12", n)
	}
}
