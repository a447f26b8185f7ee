package adversarial

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/rooms"
	roomspb "github.com/parley-chat/parley/rooms/pb"
	"github.com/parley-chat/parley/transfer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testnet.LongLivedWorkers()...)
}

// waitTimeout bounds every wait for an event.
const waitTimeout = 20 * time.Second

// quiet discards libp2p's and the services' logs (set PARLEY_TEST_LOG=1
// to see them).
func quiet() *slog.Logger {
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eventLog records events; readers wait for one that matches.
type eventLog struct{ *testnet.Recorder }

func newEventLog() *eventLog { return &eventLog{testnet.NewRecorder(waitTimeout)} }

func (l *eventLog) all() []events.Event { return l.All() }

// wait returns the first event (past or future) matching pred.
func (l *eventLog) wait(t testing.TB, what string, pred func(events.Event) bool) events.Event {
	t.Helper()
	return l.Wait(t, what, pred)
}

func (l *eventLog) count(pred func(events.Event) bool) int { return l.Count(pred) }

// party is one whole Parley node on loopback.
type party struct {
	t    testing.TB
	name string
	dir  string
	id   *identity.Identity
	n    *node.Node
	cmd  *command.Interp
	ev   *eventLog
	mod  func(*node.Config)
}

// testConfig shortens the timers of a node for tests.
func testConfig(p *party) node.Config {
	return node.Config{
		DataDir:  p.dir,
		Identity: p.id,
		Nick:     p.name,
		Overlay: overlay.Config{
			ListenAddrs: []multiaddr.Multiaddr{
				multiaddr.StringCast("/ip4/127.0.0.1/tcp/0"),
				multiaddr.StringCast("/ip6/::1/tcp/0"),
			},
			DHTMode: overlay.DHTOff,
			Logger:  quiet(),
		},
		RoomsConfig: rooms.Config{
			PresenceInterval: 300 * time.Millisecond,
			PresenceTimeout:  5 * time.Second,
			MeshWait:         3 * time.Second,
		},
		DM: dm.Config{
			RetryMin:      100 * time.Millisecond,
			RetryMax:      time.Second,
			StreamTimeout: 2 * time.Second,
		},
		Transfer: transfer.Config{ControlTimeout: 2 * time.Second},
		Emitter:  p.ev,
		Logger:   quiet(),
		Version:  "adversarial",
	}
}

// newParty starts a node called name; mod adjusts its configuration.
func newParty(t testing.TB, name string, mod func(*node.Config)) *party {
	t.Helper()
	p := &party{t: t, name: name, dir: filepath.Join(t.TempDir(), name), ev: newEventLog(), mod: mod}
	id, _, err := identity.LoadOrCreate(p.dir)
	if err != nil {
		t.Fatal(err)
	}
	p.id = id
	p.start()
	return p
}

func (p *party) start() {
	p.t.Helper()
	cfg := testConfig(p)
	if p.mod != nil {
		p.mod(&cfg)
	}
	n, err := node.New(context.Background(), cfg)
	if err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.n, p.cmd = n, command.New(n)
	p.t.Cleanup(func() {
		if err := n.Close(); err != nil {
			p.t.Errorf("close %s: %v", p.name, err)
		}
	})
}

// restart closes the node and starts it again on the same data dir.
func (p *party) restart() {
	p.t.Helper()
	if err := p.n.Close(); err != nil {
		p.t.Fatal(err)
	}
	p.start()
}

func (p *party) peerID() peer.ID { return p.n.Host().ID() }

func (p *party) host() host.Host { return p.n.Host() }

// exec runs a command line; failures show up as error events.
func (p *party) exec(line string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := p.cmd.Run(ctx, line, p.ev); err != nil {
		p.t.Fatalf("%s: %q: %v", p.name, line, err)
	}
}

// execErr runs a command line that must fail and returns the error event.
func (p *party) execErr(line string) events.Error {
	p.t.Helper()
	before := len(p.ev.all())
	p.exec(line)
	for _, e := range p.ev.all()[before:] {
		if er, ok := e.(events.Error); ok {
			return er
		}
	}
	p.t.Fatalf("%s: %q did not fail", p.name, line)
	return events.Error{}
}

func (p *party) waitMessage(text string) events.Message {
	p.t.Helper()
	return p.ev.wait(p.t, p.name+" gets room message "+text, func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && m.Text == text
	}).(events.Message)
}

func (p *party) waitDM(text string) events.DM {
	p.t.Helper()
	return p.ev.wait(p.t, p.name+" gets DM "+text, func(e events.Event) bool {
		m, ok := e.(events.DM)
		return ok && m.Text == text
	}).(events.DM)
}

func (p *party) messages(text string) int {
	return p.ev.count(func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && m.Text == text
	})
}

// link connects a to b.
func link(t testing.TB, a, b *party) {
	t.Helper()
	testnet.Connect(t, a.host(), b.host())
}

// inLobby waits until from sees to as a member of the lobby (presence),
// so that room messages flow.
func inLobby(t testing.TB, from, to *party) {
	t.Helper()
	to.ev.wait(t, to.name+" sees "+from.name+" in the lobby", func(e events.Event) bool {
		p, ok := e.(events.Presence)
		return ok && p.Room == node.DefaultRoom && p.PeerID == from.peerID() && p.Online
	})
}

// stillServes asserts that to still serves from: a room message and a
// direct message from `from` arrive.
func stillServes(t testing.TB, from, to *party, tag string) {
	t.Helper()
	room := "honest room message " + tag
	from.exec(room)
	to.waitMessage(room)
	dmText := "honest direct message " + tag
	from.exec("/msg " + to.peerID().String() + " " + dmText)
	to.waitDM(dmText)
}

// underAttack is the usual scene: a victim and an honest peer, linked and
// both in the lobby, and an attacker host connected to the victim.
func underAttack(t testing.TB) (victim, honest *party, mallory host.Host) {
	t.Helper()
	victim, honest = newParty(t, "victim", nil), newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	return victim, honest, attacker(t, victim)
}

// attacker is a bare libp2p host on loopback, connected to the victim.
func attacker(t testing.TB, victim *party) host.Host {
	t.Helper()
	return attackerOf(t, victim.host())
}

// attackerOf is a bare libp2p host on loopback connected to h.
func attackerOf(t testing.TB, h host.Host) host.Host {
	t.Helper()
	m := testnet.NewHost(t)
	testnet.Connect(t, m, h)
	return m
}

// lobbyTopic is the GossipSub topic of the public lobby.
const lobbyTopic = rooms.PublicTopicPrefix + node.DefaultRoom

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u202e' || r == '\u2028'
	})
}

// protocolID shortens the tracer's method signatures.
type protocolID = protocol.ID

func testnetConnect(t testing.TB, h host.Host, p *party) {
	t.Helper()
	testnet.Connect(t, h, p.host())
}

// envelopeBytes is a valid public-room text envelope, as a member's
// client would publish it.
func envelopeBytes(t testing.TB, nick, text string) []byte {
	t.Helper()
	b, err := proto.Marshal(&roomspb.Envelope{
		Kind:     roomspb.Kind_KIND_TEXT,
		Id:       random(t, 16),
		Nick:     nick,
		SentAtMs: time.Now().UnixMilli(),
		Text:     text,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func containsText(data []byte, text string) bool {
	var env roomspb.Envelope
	return proto.Unmarshal(data, &env) == nil && env.Text == text
}

func isHistory(data any) bool {
	_, ok := data.([]events.Message)
	return ok
}

func countText(ms []events.Message, text string) int {
	n := 0
	for _, m := range ms {
		if m.Text == text {
			n++
		}
	}
	return n
}
