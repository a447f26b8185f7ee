package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
)

func TestQueryAccessors(t *testing.T) {
	a, _ := nodetest.New(t, nil)
	b, _ := nodetest.New(t, nil)
	if err := b.SetNick("bob"); err != nil {
		t.Fatal(err)
	}
	addr := overlay.P2PAddrs(b.Host().AddrInfo())[0]
	if _, err := a.Connect(context.Background(), addr); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	idB := b.Host().ID()
	testnet.Eventually(t, 10*time.Second, "b in the peer table", func() bool { return a.Status().Peers == 1 })

	st := a.Status()
	if st.PeerID != a.Host().ID() || st.Nick != "tester" || st.Fingerprint != identity.Fingerprint(a.Host().ID()) ||
		a.StartRoom() != node.DefaultRoom || st.Peers != 1 {
		t.Fatalf("Status %+v", st)
	}
	if rs := a.RoomList(); len(rs) != 1 || rs[0].Room != node.DefaultRoom {
		t.Fatalf("RoomList %+v", rs)
	}
	if ms, err := a.Members(node.DefaultRoom); err != nil || len(ms) == 0 || !ms[0].Self {
		t.Fatalf("Members %+v, %v", ms, err)
	}
	if _, err := a.Members("nowhere"); err == nil {
		t.Fatal("Members of a room not joined")
	}
	if h, err := a.RoomHistory(node.DefaultRoom, 10); err != nil || len(h) != 0 {
		t.Fatalf("RoomHistory %v, %v", h, err)
	}

	// A private message makes b's nick known and leaves an outgoing entry.
	if _, err := a.SendDM(context.Background(), idB, "hello"); err != nil {
		t.Fatalf("SendDM: %v", err)
	}
	testnet.Eventually(t, 10*time.Second, "delivered message", func() bool {
		h, err := a.DMHistory(idB, 10)
		return err == nil && len(h) == 1 && h[0].Outgoing && h[0].State == events.DMDelivered && h[0].Text == "hello"
	})
	testnet.Eventually(t, 10*time.Second, "b's nick in the peer list", func() bool {
		ps := a.PeerList()
		return len(ps) == 1 && ps[0].Nick == "bob"
	})
	p := a.PeerList()[0]
	if p.PeerID != idB || !p.Online || p.Path != "lan" || p.Trusted || p.Conflict || p.NickShared ||
		p.Fingerprint != identity.ShortFingerprint(b.Host().ID()) {
		t.Fatalf("PeerList %+v", p)
	}
	if _, err := a.Trust(idB); err != nil {
		t.Fatal(err)
	}
	if v := a.Peer(idB); !v.Trusted || v.Nick != "bob" || !v.Online {
		t.Fatalf("Peer %+v", v)
	}
	if nick := a.PeerName(idB); nick != "bob" {
		t.Fatalf("PeerName %q", nick)
	}
	if ts := a.Transfers(); len(ts) != 0 {
		t.Fatalf("Transfers %+v", ts)
	}
}
