package mailbox

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/mailbox/pb"
)

// evilHolder speaks the holder protocol but mangles what it hands out:
// mangle turns the deposits (in deposit order) into the items of a pickup.
type evilHolder struct {
	h      host.Host
	mangle func([][]byte) [][]byte

	mu      sync.Mutex
	seals   [][]byte           // guarded by mu
	records map[peer.ID][]byte // guarded by mu
}

func startEvilHolder(t testing.TB, mangle func([][]byte) [][]byte) *evilHolder {
	e := &evilHolder{h: testnet.NewHost(t), mangle: mangle, records: map[peer.ID][]byte{}}
	e.h.SetStreamHandler(ProtocolID, e.handle)
	return e
}

func (e *evilHolder) handle(str network.Stream) {
	defer func() { _ = str.Close() }()
	br := bufio.NewReader(str)
	for {
		_ = str.SetDeadline(time.Now().Add(waitFor))
		var req pb.Request
		if err := pbframe.Read(br, MaxRequestSize, &req); err != nil {
			return
		}
		var out []*pb.Response
		switch k := req.Kind.(type) {
		case *pb.Request_Deposit:
			e.mu.Lock()
			e.seals = append(e.seals, k.Deposit.Sealed)
			e.mu.Unlock()
			out = append(out, &pb.Response{Kind: &pb.Response_Deposit{Deposit: &pb.DepositResult{Status: pb.Status_STATUS_STORED}}})
		case *pb.Request_Lookup:
			e.mu.Lock()
			rec := e.records[peer.ID(k.Lookup.PeerId)]
			e.mu.Unlock()
			out = append(out, &pb.Response{Kind: &pb.Response_Found{Found: &pb.Found{Record: rec}}})
		case *pb.Request_Pickup:
			e.mu.Lock()
			e.records[str.Conn().RemotePeer()] = k.Pickup.Record
			items := e.mangle(slices.Clone(e.seals))
			e.mu.Unlock()
			for i, s := range items {
				out = append(out, &pb.Response{Kind: &pb.Response_Item{Item: &pb.Item{Id: uint64(i + 1), Sealed: s}}})
			}
			out = append(out, &pb.Response{Kind: &pb.Response_End{End: &pb.End{}}})
		case *pb.Request_Delete:
			out = append(out, &pb.Response{Kind: &pb.Response_Deleted{Deleted: &pb.Deleted{Count: uint32(len(k.Delete.Ids))}}})
		}
		for _, r := range out {
			if pbframe.Write(str, r) != nil {
				return
			}
		}
	}
}

// TestAdversarialHolder: a holder that drops, duplicates, reorders,
// truncates and tampers with deposits. The recipient shows only the
// intact, authentic messages, once each, in the sender's order; the
// sender sees exactly those delivered and keeps the rest.
func TestAdversarialHolder(t *testing.T) {
	const n = 10
	evil := startEvilHolder(t, func(s [][]byte) [][]byte {
		if len(s) < n {
			return s
		}
		truncated := s[2][:len(s[2])-5]
		tampered := slices.Clone(s[3])
		tampered[len(tampered)/2] ^= 1
		out := [][]byte{s[0], s[1], s[1], truncated, tampered} // s[4] dropped
		for i := n - 1; i >= 5; i-- {
			out = append(out, s[i]) // reversed
		}
		return append(out, s[0]) // and the first once more
	})
	_, honest := startHolder(t, nil)
	alice, carol := newChatPeer(t, "alice"), newChatPeer(t, "carol")
	alice.eligible = func(p peer.ID) bool { return p == honest.ID() }
	carol.eligible = func(p peer.ID) bool { return p == evil.h.ID() }

	carol.start(t)
	carol.connectTo(t, evil.h)
	testnet.Eventually(t, waitFor, "carol's record at the evil holder", func() bool {
		evil.mu.Lock()
		defer evil.mu.Unlock()
		return evil.records[carol.id] != nil
	})
	carol.stop(t)

	alice.start(t)
	alice.connectTo(t, honest)
	testnet.Connect(t, alice.h, evil.h)
	ids := make([]string, n)
	for i := range ids {
		id, err := alice.dm.Send(context.Background(), carol.id, fmt.Sprintf("note %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	alice.rec.WaitCount(t, "deposited", n, func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.Reason == events.DMWaitDeposited
	})

	carol.start(t)
	testnet.Connect(t, carol.h, evil.h)
	want := []int{0, 1, 5, 6, 7, 8, 9}
	alice.rec.WaitCount(t, "delivered", len(want), func(e events.Event) bool {
		s, ok := e.(events.DMStatus)
		return ok && s.State == events.DMDelivered && s.Via == honest.ID().String()
	})
	got := dmsFrom(carol.rec, alice.id)
	if len(got) != len(want) {
		t.Fatalf("carol shows %d messages, want %d", len(got), len(want))
	}
	for i, k := range want {
		if got[i].ID != ids[k] || got[i].Text != fmt.Sprintf("note %d", k) {
			t.Fatalf("message %d is %q, want note %d", i, got[i].Text, k)
		}
	}
	delivered := testnet.Events(alice.rec, func(s events.DMStatus) bool { return s.State == events.DMDelivered })
	if len(delivered) != len(want) {
		t.Fatalf("%d delivered, want %d", len(delivered), len(want))
	}
	if p := alice.dm.Pending(); p != n-len(want) {
		t.Fatalf("alice keeps %d pending, want %d", p, n-len(want))
	}
}
