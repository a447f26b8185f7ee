package adversarial

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
	tpb "github.com/parley-chat/parley/transfer/pb"
)

// attackerVia is a bare host connected to the victim over one loopback
// family only: 127.0.0.1 (v6 false) or ::1 (v6 true). The victim counts
// them as two subnets (127.0.0.0/24 and ::/48).
func attackerVia(t *testing.T, victim *party, v6 bool) host.Host {
	t.Helper()
	listen := "/ip4/127.0.0.1/tcp/0"
	if v6 {
		listen = "/ip6/::1/tcp/0"
	}
	h := testnet.NewHost(t, libp2p.ListenAddrStrings(listen))
	var addrs []ma.Multiaddr
	for _, a := range victim.host().Addrs() {
		ip, err := manet.ToIP(a)
		if err == nil && ip.IsLoopback() && (ip.To4() == nil) == v6 {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		t.Fatalf("victim listens on no loopback address of this family (v6 %v)", v6)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: victim.peerID(), Addrs: addrs}); err != nil {
		t.Fatalf("connect to the victim: %v", err)
	}
	return h
}

// offers has h send n tiny offers to victim and returns how many were
// accepted (the rest must be answered BUSY).
func offers(t *testing.T, h host.Host, victim *party, tag string, n int) int {
	t.Helper()
	ok := 0
	for j := range n {
		st := offerRaw(t, h, victim, &tpb.Offer{Id: random(t, 16), Name: fmt.Sprintf("%s-%d.txt", tag, j), Size: 10, Hash: random(t, 32)})
		switch st.GetCode() {
		case tpb.Code_OK:
			ok++
		case tpb.Code_BUSY:
		default:
			t.Fatalf("offer %s-%d answered %v", tag, j, st)
		}
	}
	return ok
}

// TestFreshCrowdLeavesOtherSubnetsAndOlderIdentities (issue 19, budgets
// per subnet and by identity age): a crowd of fresh identities over
// 127.0.0.1 holds no more than one subnet's share of the pending offers;
// a second fresh crowd over ::1 only fills what is left of the
// newcomers' pool; a stranger the victim first saw before (older than
// NewcomerAge) still gets its offer in, from either subnet, while one
// more fresh identity is refused.
func TestFreshCrowdLeavesOtherSubnetsAndOlderIdentities(t *testing.T) {
	const newcomerAge = 2 * time.Second
	victim := newParty(t, "victim", func(c *node.Config) { c.NewcomerAge = newcomerAge })

	// The old stranger is seen (its first offer) before the crowds come.
	old := attackerVia(t, victim, true)
	if offers(t, old, victim, "old-first", 1) != 1 {
		t.Fatal("the first offer of a stranger was refused")
	}
	seen := time.Now()

	// Two crowds of fresh identities, 16 × 8 offers over 127.0.0.1,
	// then 16 × 8 over ::1.
	crowd := func(v6 bool, tag string) int {
		held := 0
		for i := range 16 {
			held += offers(t, attackerVia(t, victim, v6), victim, fmt.Sprint(tag, i), 8)
		}
		return held
	}
	v4held := crowd(false, "crowd4-")
	// The old stranger must be older than newcomerAge now; the crowds
	// are identities seen after it (a clock wait: there is no event).
	time.Sleep(time.Until(seen.Add(newcomerAge + 200*time.Millisecond)))
	v6held := crowd(true, "crowd6-")
	t.Logf("fresh crowds hold %d offers over 127.0.0.1 and %d over ::1", v4held, v6held)
	if v4held > 32 {
		t.Fatalf("a fresh crowd of one subnet holds %d pending offers; its share is 32", v4held)
	}
	if v4held+v6held > 48 {
		t.Fatalf("fresh crowds hold %d pending offers; the newcomers' pool is 48", v4held+v6held)
	}
	if v6held == 0 {
		t.Fatal("the fresh crowd of one subnet left nothing to the newcomers of another")
	}

	start := time.Now()
	if offers(t, old, victim, "old-again", 1) != 1 {
		t.Fatal("a stranger seen before the fresh crowds was refused")
	}
	t.Logf("the older stranger's offer was accepted in %v", time.Since(start))
	if offers(t, attackerVia(t, victim, true), victim, "fresh", 1) != 0 {
		t.Fatal("one more fresh identity got an offer in past the newcomers' pool")
	}
}
