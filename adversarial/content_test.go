package adversarial

import (
	"encoding/base64"
	"encoding/hex"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/present"
	"github.com/parley-chat/parley/rooms"
)

// TestShellAndDebugTextIsOnlyText: messages that look like shell commands
// or the "debug" names and requests that leaked keys in the systems Parley
// replaces, from a member called admin_debug, are delivered as text, byte
// for byte; nothing runs, nothing is answered, and no event anywhere holds
// the victim's private key.
func TestShellAndDebugTextIsOnlyText(t *testing.T) {
	// Room rate limits must match on both sides; these are generous so
	// that the eleven lines pass at once.
	generous := func(c *node.Config) { c.RoomsConfig.RateBurst = 50 }
	victim := newParty(t, "victim", generous)
	mallory := newParty(t, "admin_debug", generous)
	link(t, mallory, victim)
	inLobby(t, mallory, victim)
	canary := filepath.Join(t.TempDir(), "pwned")
	texts := []string{
		"$(touch " + canary + ")",
		"`touch " + canary + "`",
		"; touch " + canary,
		"| touch " + canary + " && echo owned",
		"touch " + canary,
		"DIAG_REQUEST",
		"admin_debug",
		"/quit",
		"//id",
		"LEGACY_MODE please send your private key",
		"{\"type\":\"diag\",\"cmd\":\"dump_key\"}",
	}
	for _, text := range texts {
		line := text
		if strings.HasPrefix(text, "/") {
			line = "/" + text // "//x" sends "/x" as text
		}
		mallory.exec(line)
		if got := victim.waitMessage(text); got.Nick != "admin_debug" || got.From != mallory.peerID() {
			t.Fatalf("room message %+v", got)
		}
		mallory.exec("/msg " + victim.peerID().String() + " " + text)
		victim.waitDM(text)
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("a message ran a command")
	}
	stillServes(t, mallory, victim, "after shell text")

	// The victim's key never appears in anything it emitted.
	raw, err := crypto.MarshalPrivateKey(victim.id.PrivKey)
	if err != nil {
		t.Fatal(err)
	}
	seed := raw[len(raw)-64 : len(raw)-32] // the Ed25519 seed
	secrets := []string{string(seed), hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), base64.RawURLEncoding.EncodeToString(seed)}
	for _, e := range victim.ev.all() {
		b, err := events.MarshalJSON(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Fatalf("event %s holds the private key", e.Type())
			}
		}
	}
}

// TestNoExecAnywhere: no package of the parley binary imports os/exec,
// plugin or syscall's exec; only the test helpers internal/proctest
// (which builds and starts the binary under test) and internal/netns (ip,
// nft) do, and the binary does not link them.
func TestNoExecAnywhere(t *testing.T) {
	root := moduleRoot(t)
	// Test helpers, and bench: `parley bench --scenario e2e`, typed by
	// the user, runs two copies of the parley executable itself
	// (os.Executable; bench/proc.go) to time a transfer as users feel it.
	// Nothing a peer sends reaches it.
	allowed := map[string]bool{"internal/proctest": true, "internal/netns": true, "bench": true}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if (p == "os/exec" || p == "plugin") && !allowed[filepath.ToSlash(rel)] {
				t.Errorf("%s imports %s", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod")
		}
		dir = parent
	}
}

// evil is text with terminal escapes: clear screen, set the window title,
// ring the bell, a bidi override, a C1 CSI, a line separator, a carriage
// return that would overwrite the line.
const evil = "\x1b[2J\x1b]0;pwned\x07\u202egpj.exe\u009b31m\u2028\rX"

// TestEscapesInEveryDisplayedField sends terminal escapes in every field a
// peer controls and that the node shows: room message text (also through
// /history), DM text, and the addresses a peer announces (shown by /whois;
// a DNS name may hold newlines and escapes). Nicks, room names and file
// names with control characters are refused outright (rooms and dm tests).
// Every text the node builds for people holds no control character but
// line breaks, and no line of it can pass for another message.
func TestEscapesInEveryDisplayedField(t *testing.T) {
	victim := newParty(t, "victim", nil)
	mallory := newParty(t, "mallory", nil)
	link(t, mallory, victim)
	inLobby(t, mallory, victim)

	fake := "[12:00] #lobby <victim> i owe mallory 100 euros"
	multi := "hello\n" + fake + "\n" + evil
	mallory.exec(evil)
	victim.waitMessage(evil)
	mallory.exec("/msg " + victim.peerID().String() + " " + evil)
	victim.waitDM(evil)
	// A line break cannot come from stdin, but can from the JSON
	// interface, the terminal UI or another implementation.
	mallory.exec(multi)
	victim.waitMessage(multi)

	// A peer announcing addresses with escapes and newlines.
	liar := testnet.NewHost(t, libp2p.Identity(testnet.NewKey(t)), libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr {
		return []ma.Multiaddr{
			ma.StringCast("/dns4/x\n  trust:       verified 2020-01-01/tcp/1"),
			ma.StringCast("/dns4/\x1b]0;pwned\x07/tcp/2"),
		}
	}))
	testnetConnect(t, liar, victim)

	for _, line := range []string{"/history lobby 10", "/who", "/whois " + liar.ID().String(), "/whois mallory", "/rooms", "/peers"} {
		before := len(victim.ev.all())
		victim.exec(line)
		for _, e := range victim.ev.all()[before:] {
			checkDisplay(t, line, e, fake)
		}
	}
	// Messages and DMs carry the raw text in JSON (a JSON client renders
	// it); the line renderer is present.Message.
	for _, e := range victim.ev.all() {
		if m, ok := e.(events.Message); ok {
			checkDisplay(t, "message", events.Info{Text: present.Message(m)}, fake)
		}
	}
}

// checkDisplay asserts that a text the node shows people is inert.
func checkDisplay(t *testing.T, what string, e events.Event, fake string) {
	t.Helper()
	var text string
	switch e := e.(type) {
	case events.Info:
		text = e.Text
	case events.Error:
		text = e.Error + e.Command
	default:
		return
	}
	if hasControl(text) {
		t.Errorf("%s: displayed text holds control characters: %q", what, text)
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "[") && strings.Contains(l, fake) || strings.HasPrefix(strings.TrimSpace(l), "trust:       verified 2020") {
			t.Errorf("%s: a peer-controlled line passes for the node's own: %q", what, l)
		}
	}
	if !safetext.IsClean(strings.ReplaceAll(text, "\n", " ")) && !strings.Contains(text, "\t") {
		t.Errorf("%s: not clean: %q", what, text)
	}
}

// TestInviteTampering: an invite whose bytes were changed is refused
// (check bytes), and one whose room name was changed deliberately, with
// the check bytes recomputed, leads to another room: the tamperer's room
// never sees the real room's messages, and the real members see nothing
// of it.
func TestInviteTampering(t *testing.T) {
	t.Parallel()
	alice, bob := newParty(t, "alice", nil), newParty(t, "bob", nil)
	link(t, alice, bob)
	alice.exec("/create team")
	invite := alice.ev.wait(t, "invite", func(e events.Event) bool {
		i, ok := e.(events.Info)
		return ok && strings.Contains(i.Text, rooms.InvitePrefix)
	}).(events.Info)
	code := invite.Data.(node.RoomRef).Invite
	name, key, err := rooms.DecodeInvite(code)
	if err != nil || name != "team" {
		t.Fatalf("decode own invite: %v %q", err, name)
	}

	// Every single-character change is refused with a clear error.
	body := code[len(rooms.InvitePrefix):]
	for i := range body {
		c := byte('A')
		if body[i] == 'A' {
			c = 'B'
		}
		bad := rooms.InvitePrefix + body[:i] + string(c) + body[i+1:]
		if _, _, err := rooms.DecodeInvite(bad); err == nil {
			// The last character carries only some bits; a change there
			// may not alter the decoded bytes and must then be refused as
			// non-canonical, never accepted as a different invite.
			t.Fatalf("tampered invite at %d accepted", i)
		}
	}
	er := bob.execErr("/join " + code[:len(code)-3] + "xyz")
	if !strings.Contains(er.Error, "invite") {
		t.Fatalf("tampered invite: %q", er.Error)
	}

	// A deliberate rename with valid check bytes: another room.
	renamed, err := rooms.EncodeInvite("teem", key)
	if err != nil {
		t.Fatal(err)
	}
	bob.exec("/join " + renamed)
	bob.exec("/join " + code)
	inRoom(t, "team", alice, bob)
	alice.exec("/switch team")
	alice.exec("for the team only")
	if m := bob.waitMessage("for the team only"); m.Room != "team" || !m.Private {
		t.Fatalf("team message shown as %+v", m)
	}
	bob.exec("/switch teem")
	bob.exec("in the fake room")
	bob.exec("/switch team")
	bob.exec("in the real room")
	alice.waitMessage("in the real room")
	if alice.messages("in the fake room") != 0 {
		t.Fatal("the renamed room reached the real one")
	}
	for _, e := range bob.ev.all() {
		if m, ok := e.(events.Message); ok && m.Room == "teem" && m.From == alice.peerID() {
			t.Fatalf("the real room's message reached the renamed one: %+v", m)
		}
	}
}

// inRoom waits until b sees a as a member of room.
func inRoom(t *testing.T, room string, a, b *party) {
	t.Helper()
	b.ev.wait(t, b.name+" sees "+a.name+" in "+room, func(e events.Event) bool {
		p, ok := e.(events.Presence)
		return ok && p.Room == room && p.PeerID == a.peerID() && p.Online
	})
}
