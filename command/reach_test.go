package command

import (
	"strings"
	"testing"

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
