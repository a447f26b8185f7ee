package command

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/trust"
)

func infoOf(t *testing.T, evs []events.Event) events.Info {
	t.Helper()
	for _, e := range evs {
		if i, ok := e.(events.Info); ok {
			return i
		}
	}
	if er, ok := errorOf(evs); ok {
		t.Fatalf("error instead of an answer: %s", er.Error)
	}
	t.Fatalf("no info event in %v", evs)
	return events.Info{}
}

// /connect PEER reaches a peer by ID through the addresses the node
// holds; /whois of a peer nobody can reach says why; /forget drops a
// peer's record.
func TestConnectWhoisForgetByName(t *testing.T) {
	in, s := newInterp(t)
	other, _ := nodetest.New(t, nil)
	a := in.n.Host()
	a.Peerstore().AddAddrs(other.Host().ID(), other.Host().Addrs(), peerstore.TempAddrTTL)

	id := other.Host().ID().String()
	got := infoOf(t, exec(t, in, s, "/connect "+id))
	if !strings.HasPrefix(got.Text, "connected to ") {
		t.Fatalf("/connect %s answered %q", id, got.Text)
	}

	stranger, err := peer.IDFromPrivateKey(testnet.NewKey(t))
	if err != nil {
		t.Fatal(err)
	}
	w := infoOf(t, exec(t, in, s, "/whois "+stranger.String()))
	wi, ok := w.Data.(trust.WhoisInfo)
	if !ok || wi.Unreachable == "" || !strings.Contains(w.Text, "not connected: no address is known") {
		t.Fatalf("/whois of an unreachable peer: %q, data %+v", w.Text, w.Data)
	}

	exec(t, in, s, "/trust "+id)
	if f := infoOf(t, exec(t, in, s, "/forget "+id)); !strings.HasPrefix(f.Text, "forgot ") {
		t.Fatalf("/forget answered %q", f.Text)
	}
	if f := infoOf(t, exec(t, in, s, "/forget "+id)); !strings.HasPrefix(f.Text, "nothing was known") {
		t.Fatalf("second /forget answered %q", f.Text)
	}
}

// /say posts to a named joined room without switching to it.
func TestSayToNamedRoom(t *testing.T) {
	in, s := newInterp(t)
	in.SetCurrent("lobby")
	exec(t, in, s, "/join side")
	in.SetCurrent("lobby")
	evs := exec(t, in, s, "/say side hello side")
	if er, ok := errorOf(evs); ok {
		t.Fatalf("/say side: %s", er.Error)
	}
	if in.Current() != "lobby" {
		t.Fatalf("/say switched the current room to %q", in.Current())
	}
	seen := false
	for deadline := time.Now().Add(10 * time.Second); !seen && time.Now().Before(deadline); {
		for _, e := range append(evs, s.Take()...) {
			if m, ok := e.(events.Message); ok && m.Room == "side" && m.Text == "hello side" {
				seen = true
			}
		}
		evs = nil
		time.Sleep(10 * time.Millisecond) // the sink has no wake-up; bounded by the deadline
	}
	if !seen {
		t.Fatal("/say side: no message event in side")
	}
	if er, ok := errorOf(exec(t, in, s, "/say nosuchroom hi")); !ok || !strings.Contains(er.Error, "not in room") {
		t.Fatalf("/say to a room not joined: %v", er)
	}
	if er, ok := errorOf(exec(t, in, s, "/say side")); !ok || !strings.Contains(er.Error, "usage") {
		t.Fatalf("/say without text: %v", er)
	}
}
