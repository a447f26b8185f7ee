package tui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/muesli/termenv"

	"github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/transfer"
	"github.com/parley-chat/parley/trust"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

// Peer IDs of the test cast, from fixed keys so that golden screens stay
// the same. The model treats peer IDs as opaque strings.
var (
	idSelf  = seededID(1)
	idAlice = seededID(2)
	idBob   = seededID(3)
	idCarol = seededID(4)
	idEve   = seededID(5)
	idRelay = seededID(6)
)

func seededID(seed byte) peer.ID {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub, err := crypto.UnmarshalEd25519PublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return id
}

func fp(p peer.ID) string { return identity.ShortFingerprint(p) }

// t0 is the test clock: every timestamp is shown in UTC.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeNode is a Backend with canned snapshots.
type fakeNode struct {
	mu      sync.Mutex
	status  node.Status
	rooms   []node.RoomRow
	members map[string][]node.MemberRow
	history map[string][]events.Message
	peers   []node.PeerView
	dms     map[string][]dm.Entry
	xfers   []transfer.Info
	current string
	execd   []string
	// onExec, when set, runs for every Exec (under no lock).
	onExec func(line string) error
}

func newFakeNode() *fakeNode {
	return &fakeNode{
		status: node.Status{PeerID: idSelf, Nick: "me", Fingerprint: identity.Fingerprint(idSelf),
			Reachability: "private", Relays: 1, Peers: 3},
		current: "lobby",
		rooms: []node.RoomRow{
			{Room: "dev", Private: true, Members: 2},
			{Room: "lobby", Members: 4},
		},
		members: map[string][]node.MemberRow{
			"lobby": {
				{PeerID: idSelf, Nick: "me", Fingerprint: fp(idSelf), Online: true, Self: true},
				{PeerID: idAlice, Nick: "alice", Fingerprint: fp(idAlice), Online: true},
				{PeerID: idBob, Nick: "bob", Fingerprint: fp(idBob), Online: true},
				{PeerID: idEve, Nick: "bob", Fingerprint: fp(idEve), Online: true},
			},
		},
		history: map[string][]events.Message{},
		peers: []node.PeerView{
			{PeerID: idAlice, Nick: "alice", Fingerprint: fp(idAlice), Online: true, Path: "lan", Trusted: true},
			{PeerID: idBob, Nick: "bob", Fingerprint: fp(idBob), Online: true, Path: "direct", NickShared: true},
			{PeerID: idEve, Nick: "bob", Fingerprint: fp(idEve), Online: true, Path: "relayed", NickShared: true, Conflict: true},
			{PeerID: idRelay, Fingerprint: fp(idRelay), Online: true, Path: "direct"},
			{PeerID: idCarol, Nick: "carol", Fingerprint: fp(idCarol)},
		},
		dms: map[string][]dm.Entry{},
	}
}

// Exec is the fake command session: it records the line and answers
// the few commands the tests use like the real interpreter would.
func (f *fakeNode) Exec(_ context.Context, line string) (command.Reply, error) {
	f.mu.Lock()
	f.execd = append(f.execd, line)
	hook := f.onExec
	f.mu.Unlock()
	if hook != nil {
		return command.Reply{}, hook(line)
	}
	name, arg, _ := strings.Cut(strings.TrimPrefix(line, "/"), " ")
	switch {
	case !strings.HasPrefix(line, "/"):
		return command.Reply{}, nil
	case name == "quit":
		return command.Reply{}, command.ErrQuit
	case name == "join":
		f.SetCurrent(arg)
		return command.Reply{RoomChanged: true, Room: arg}, nil
	case name == "switch":
		f.SetCurrent(arg)
		return command.Reply{Text: "current room: " + arg, RoomChanged: true, Room: arg}, nil
	case name == "leave":
		f.SetCurrent("dev")
		return command.Reply{RoomChanged: true, Room: "dev"}, nil
	case name == "msg":
		who, _, _ := strings.Cut(arg, " ")
		for _, p := range f.PeerList() {
			if p.Nick == who || p.PeerID.String() == who {
				return command.Reply{Peer: p.PeerID}, nil
			}
		}
		return command.Reply{}, fmt.Errorf("unknown peer: no known peer is called %q", who)
	}
	return command.Reply{}, nil
}

func (f *fakeNode) Current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

func (f *fakeNode) SetCurrent(room string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.current = room
}

// record notes a typed operation in execd, in the form describe uses.
func (f *fakeNode) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.execd = append(f.execd, s)
}

func (f *fakeNode) StartRoom() string { return "lobby" }

func (f *fakeNode) Say(_ context.Context, room, text string) (events.Message, error) {
	f.record(describe(sayAction{room, text}))
	return events.Message{Room: room, Text: text}, nil
}

func (f *fakeNode) SendDM(_ context.Context, p peer.ID, text string) (string, error) {
	f.record(describe(dmAction{p, text}))
	return "00", nil
}

func (f *fakeNode) Accept(id string) error {
	f.record(describe(offerAction{offerAccept, id}))
	return nil
}

func (f *fakeNode) Reject(id string) error {
	f.record(describe(offerAction{offerReject, id}))
	return nil
}

func (f *fakeNode) Fetch(_ context.Context, id string) error {
	f.record(describe(offerAction{offerFetch, id}))
	return nil
}

func (f *fakeNode) Whois(p peer.ID) trust.WhoisInfo {
	f.record(describe(whoisAction{p}))
	return trust.WhoisInfo{PeerInfo: trust.PeerInfo{ID: p, Fingerprint: identity.Fingerprint(p)}}
}

func (f *fakeNode) Safety(p peer.ID) (node.SafetyInfo, error) {
	f.record(describe(verifyAction{p}))
	return node.SafetyInfo{PeerID: p, SafetyNumber: "00000"}, nil
}

// describe names an action the way the tests expect it: a typed line as
// typed, an operation as its name and arguments.
func describe(a action) string {
	switch a := a.(type) {
	case lineAction:
		return a.line
	case sayAction:
		return "say #" + a.room + " " + a.text
	case dmAction:
		return "dm " + a.peer.String() + " " + a.text
	case offerAction:
		return [...]string{offerAccept: "accept", offerReject: "reject", offerFetch: "fetch"}[a.op] + " " + a.id
	case whoisAction:
		return "whois " + a.peer.String()
	case verifyAction:
		return "verify " + a.peer.String()
	}
	return fmt.Sprintf("%#v", a)
}

func (f *fakeNode) Status() node.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeNode) RoomList() []node.RoomRow {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]node.RoomRow(nil), f.rooms...)
}

func (f *fakeNode) Members(room string) ([]node.MemberRow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ms, ok := f.members[room]
	if !ok {
		return nil, errors.New("not in room")
	}
	return ms, nil
}

func (f *fakeNode) RoomHistory(room string, count int) ([]events.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.history[room]
	if len(h) > count {
		h = h[len(h)-count:]
	}
	return h, nil
}

func (f *fakeNode) PeerList() []node.PeerView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]node.PeerView(nil), f.peers...)
}

func (f *fakeNode) Peer(id peer.ID) node.PeerView {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.peers {
		if p.PeerID == id {
			return p
		}
	}
	return node.PeerView{PeerID: id, Fingerprint: "ZZZZ"}
}

func (f *fakeNode) DMConversations(limit int) ([]dm.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dm.Conversation
	for id, h := range f.dms {
		p, err := peer.Decode(id)
		if err != nil || len(h) == 0 {
			continue
		}
		out = append(out, dm.Conversation{Peer: p, Last: h[len(h)-1].SentAt})
	}
	slices.SortFunc(out, func(a, b dm.Conversation) int { return b.Last.Compare(a.Last) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeNode) DMHistory(id peer.ID, count int) ([]dm.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.dms[id.String()]
	if len(h) > count {
		h = h[len(h)-count:]
	}
	return h, nil
}

func (f *fakeNode) Commands() []command.Info {
	return []command.Info{
		{Name: "connect", Usage: "MULTIADDR/p2p/ID", Help: "connect to a peer and keep the connection"},
		{Name: "help", Help: "list the commands"},
		{Name: "history", Usage: "[ROOM] [N]", Help: "show the last N (default 50) messages of a room"},
		{Name: "id", Help: "show this node's peer ID, fingerprint, nick and addresses"},
		{Name: "join", Usage: "ROOM|INVITE", Help: "join a public room, or a private one from its invite code; it becomes the current room"},
		{Name: "joinpass", Usage: "ROOM PASSPHRASE", Help: "join the private room whose key comes from ROOM and PASSPHRASE (Argon2id)", Secret: true},
		{Name: "leave", Usage: "[ROOM]", Help: "leave a room (default: the current one)"},
		{Name: "msg", Usage: "PEER TEXT", Help: "send a private message (PEER: nick, nick#FP, fingerprint or peer ID)"},
		{Name: "peers", Help: "list connected peers"},
		{Name: "quit", Help: "leave cleanly"},
		{Name: "switch", Usage: "ROOM", Help: "make a joined room the current room"},
		{Name: "trust", Usage: "PEER", Help: "record that you compared PEER's safety number"},
		{Name: "verify", Usage: "PEER", Help: "show the safety number to compare with PEER"},
		{Name: "who", Usage: "[ROOM]", Help: "list the members of a room with last seen"},
		{Name: "whois", Usage: "PEER", Help: "peer ID, nick, fingerprint, trust, connection path, addresses"},
	}
}

func (f *fakeNode) Transfers() []transfer.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]transfer.Info(nil), f.xfers...)
}

var (
	_ Backend        = (*fakeNode)(nil)
	_ Commands       = (*fakeNode)(nil)
	_ TransferLister = (*fakeNode)(nil)
)

func (f *fakeNode) set(fn func(f *fakeNode)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// harness drives a Model directly: Update with messages, View for the
// screen.
type harness struct {
	t     testing.TB
	node  *fakeNode
	m     *Model
	lines []action // submitted to the executor
	full  bool     // the executor queue refuses lines
	clock time.Time
}

func newHarness(t testing.TB, f *fakeNode, w, h int) *harness {
	t.Helper()
	return newHarnessStyled(t, f, w, h, lipgloss.NewRenderer(io.Discard), true)
}

// newColourHarness renders with 256 colours, as on a colour terminal.
func newColourHarness(t testing.TB, f *fakeNode, w, h int) *harness {
	t.Helper()
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI256)
	return newHarnessStyled(t, f, w, h, r, false)
}

// harnessIn is newColourHarness when colour is set, else newHarness.
func harnessIn(t testing.TB, f *fakeNode, w, h int, colour bool) *harness {
	t.Helper()
	if colour {
		return newColourHarness(t, f, w, h)
	}
	return newHarness(t, f, w, h)
}

func newHarnessStyled(t testing.TB, f *fakeNode, w, h int, r *lipgloss.Renderer, noColor bool) *harness {
	t.Helper()
	hs := &harness{t: t, node: f, clock: t0.Add(10 * time.Minute)}
	st := NewStyles(r, noColor)
	hs.m = New(Options{
		Backend:  f,
		Commands: f,
		Submit: func(a action) bool {
			if hs.full {
				return false
			}
			hs.lines = append(hs.lines, a)
			return true
		},
		Styles:   &st,
		Now:      func() time.Time { return hs.clock },
		Location: time.UTC,
	})
	hs.m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return hs
}

func (h *harness) events(es ...events.Event) { h.m.Update(eventsMsg(es)) }

// execDone runs the actions submitted so far against the fake node, as
// the executor would, and tells the model of each outcome. It returns
// them as describe names them.
func (h *harness) execDone() []string {
	var out []string
	for _, a := range h.lines {
		r, err := a.do(context.Background(), h.node, h.node)
		h.m.Update(execDoneMsg{a: a, reply: r, err: err})
		out = append(out, describe(a))
	}
	h.lines = nil
	return out
}

func (h *harness) typeText(s string) {
	for _, r := range s {
		h.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func (h *harness) press(k tea.KeyType) tea.Cmd {
	_, cmd := h.m.Update(tea.KeyMsg{Type: k})
	return cmd
}

func (h *harness) alt(r rune) {
	h.m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: true})
}

func (h *harness) enter(s string) {
	h.typeText(s)
	h.press(tea.KeyEnter)
}

func (h *harness) resize(w, hgt int) { h.m.Update(tea.WindowSizeMsg{Width: w, Height: hgt}) }

// screen is the view without the styles' escape sequences.
func (h *harness) screen() string { return ansi.Strip(h.m.View()) }

// takeLines returns and forgets the actions submitted so far, as
// describe names them.
func (h *harness) takeLines() []string {
	var out []string
	for _, a := range h.lines {
		out = append(out, describe(a))
	}
	h.lines = nil
	return out
}

// checkGeometry fails unless the view has exactly h lines of exactly w
// cells.
func checkGeometry(t *testing.T, view string, w, h int) {
	t.Helper()
	rows := strings.Split(view, "\n")
	if len(rows) != h {
		t.Fatalf("view has %d rows, want %d:\n%s", len(rows), h, view)
	}
	for i, r := range rows {
		if got := ansi.StringWidth(r); got != w {
			t.Fatalf("row %d is %d cells wide, want %d: %q", i, got, w, ansi.Strip(r))
		}
	}
}

// golden compares got with testdata/name.golden, or rewrites it with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("screen differs from %s (run with -update to accept):\n%s", path, sideBySide(string(want), got))
	}
}

// sideBySide shows the rows that differ.
func sideBySide(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "row %2d want |%s|\n       got  |%s|\n", i, w, g)
		}
	}
	return b.String()
}

// msg builds a room message event.
func msg(room string, from peer.ID, nick, text string, at time.Duration) events.Message {
	return events.Message{
		Room: room, ID: fmt.Sprintf("%032x", at+time.Duration(len(text))), From: from, Nick: nick, Text: text,
		SentAt: t0.Add(at), Fingerprint: fp(from),
	}
}
