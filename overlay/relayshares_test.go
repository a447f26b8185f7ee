package overlay

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/internal/fair"
)

// TestRelayShares: the reservations of a relay, seen
// with synthetic subnets and ages: the strangers of one subnet get their
// share, newcomers together theirs, known peers the reserve; a claim ends
// with its TTL or when its peer is gone, and a renewal keeps its slot.
func TestRelayShares(t *testing.T) {
	res := relay.Resources{MaxReservations: 64, MaxReservationsPerIP: 4, ReservationTTL: time.Hour}
	shares := RelaySharesOf(res, true) // 64: 16 reserved, 8 per subnet, 24 newcomers
	if shares != (fair.Shares{Total: 64, Reserved: 16, PerSubnet: 8, Newcomers: 24}) {
		t.Fatalf("shares %+v", shares)
	}
	known := map[peer.ID]bool{}
	newcomers := map[peer.ID]bool{}
	gone := map[peer.ID]bool{}
	now := time.Now()
	r := &relayShares{
		shares: shares, perIP: res.MaxReservationsPerIP, ttl: res.ReservationTTL,
		allow: func(p peer.ID) bool { return p != "outsider" },
		known: func(p peer.ID) bool { return known[p] }, newcomer: func(p peer.ID) bool { return newcomers[p] },
		connected: func(p peer.ID) bool { return !gone[p] }, now: func() time.Time { return now },
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), claims: make(map[peer.ID]relayClaim),
	}
	n := 0
	claim := func(subnet, host int, newcomer, isKnown bool) (peer.ID, bool) {
		n++
		p := peer.ID(fmt.Sprintf("peer-%d", n))
		newcomers[p], known[p] = newcomer, isKnown
		return p, r.AllowReserve(p, ma.StringCast(fmt.Sprintf("/ip4/10.%d.0.%d/tcp/4001", subnet, host)))
	}
	crowd := func(subnet, hosts, each int, newcomer bool) (granted int, first peer.ID) {
		for h := 1; h <= hosts; h++ {
			for range each {
				p, ok := claim(subnet, h, newcomer, false)
				if ok {
					if granted == 0 {
						first = p
					}
					granted++
				}
			}
		}
		return granted, first
	}

	// One subnet: 3 addresses × 4 (the per-IP limit) older strangers
	// get the subnet's 8.
	if g, _ := crowd(1, 3, 4, false); g != 8 {
		t.Fatalf("older strangers of one subnet got %d, want 8", g)
	}
	// Newcomers of 8 subnets: 24 together.
	granted, first := 0, peer.ID("")
	for s := 2; s < 10; s++ {
		g, f := crowd(s, 2, 4, true)
		if first == "" {
			first = f
		}
		granted += g
	}
	if granted != shares.Newcomers {
		t.Fatalf("newcomers got %d, want %d", granted, shares.Newcomers)
	}
	// An older stranger of a new subnet still gets in; then the
	// strangers' 48 fill up with older strangers of further subnets.
	if _, ok := claim(20, 1, false, false); !ok {
		t.Fatal("older stranger of another subnet refused past the newcomers' pool")
	}
	for s := 21; len(r.claims) < shares.Total-shares.Reserved; s++ {
		crowd(s, 2, 4, false)
	}
	if _, ok := claim(40, 1, false, false); ok {
		t.Fatal("a stranger got in past the strangers' share")
	}
	// The reserve: known peers are left to the relay's own limits (its
	// total: the strangers leave the reserve free) and are not counted.
	for i := range shares.Reserved + 4 {
		if _, ok := claim(1, 1, true, true); !ok {
			t.Fatalf("known peer %d refused", i)
		}
	}
	if len(r.claims) != shares.Total-shares.Reserved {
		t.Fatalf("%d claims counted, want the strangers' %d", len(r.claims), shares.Total-shares.Reserved)
	}
	// A renewal keeps its slot.
	if !r.AllowReserve(first, ma.StringCast("/ip4/10.2.0.1/tcp/4001")) {
		t.Fatal("renewal refused")
	}
	// A peer gone frees its slot for a newcomer of its subnet... once
	// the strangers' share has room again.
	gone[first] = true
	if _, ok := claim(2, 3, true, false); !ok {
		t.Fatal("the slot of a peer gone was not freed")
	}
	// Claims end with their TTL.
	now = now.Add(res.ReservationTTL + time.Second)
	if g, _ := crowd(50, 2, 4, false); g != 8 {
		t.Fatalf("after the TTL a subnet got %d, want 8", g)
	}
	if r.refused == 0 {
		t.Fatal("refusals not counted")
	}
	// The policy (RelayFor) comes first, for reservations and circuits.
	if r.AllowReserve("outsider", ma.StringCast("/ip4/10.99.0.1/tcp/4001")) {
		t.Fatal("a peer RelayFor refuses reserved")
	}
	if r.AllowConnect("outsider", nil, first) || r.AllowConnect(first, nil, "outsider") || !r.AllowConnect(first, nil, first) {
		t.Fatal("circuits not checked against RelayFor")
	}
}

// TestRelayCircuitShares: the circuits to one destination, seen with
// synthetic subnets and hop streams: the strangers of one subnet hold at
// most CircuitsPerSubnet of them, another subnet and known peers are not
// counted against it, and a claim whose source closed its hop stream (or
// left) is freed on the next circuit to that destination.
func TestRelayCircuitShares(t *testing.T) {
	res := relay.Resources{MaxReservations: 4, MaxCircuits: 8}
	per := CircuitsPerSubnet(res)
	if per != 2 || CircuitsPerSubnet(ChatRelayResources()) != 1 || CircuitsPerSubnet(ServeRelayResources()) != 8 {
		t.Fatalf("per subnet %d, chat %d, serve %d", per, CircuitsPerSubnet(ChatRelayResources()), CircuitsPerSubnet(ServeRelayResources()))
	}
	hop := map[peer.ID]int{} // open hop streams, the request being decided included
	known := map[peer.ID]bool{"known": true}
	r := &relayShares{
		known: func(p peer.ID) bool { return known[p] },
		log:   slog.New(slog.NewTextHandler(io.Discard, nil)), claims: make(map[peer.ID]relayClaim),
		circuitsPerSubnet: per, maxCircuitClaims: res.MaxReservations * res.MaxCircuits,
		hopStreams: func(p peer.ID) int { return hop[p] },
	}
	// open asks for a circuit from src at subnet to dest, as the relay
	// does: the hop stream is open while the ACL decides and stays open
	// when the circuit is granted.
	open := func(src peer.ID, subnet int, dest peer.ID) bool {
		hop[src]++
		ok := r.AllowConnect(src, ma.StringCast(fmt.Sprintf("/ip4/10.%d.0.1/tcp/4001", subnet)), dest)
		if !ok {
			hop[src]--
		}
		return ok
	}
	if !open("a", 1, "dest") || !open("b", 1, "dest") {
		t.Fatal("a subnet's first circuits refused")
	}
	if open("c", 1, "dest") || open("a", 1, "dest") {
		t.Fatal("a subnet got more than its share of a destination")
	}
	if !open("c", 1, "other") || !open("d", 2, "dest") || !open("known", 1, "dest") {
		t.Fatal("another destination, another subnet or a known peer refused")
	}
	if r.circRefused != 2 {
		t.Fatalf("refused %d, want 2", r.circRefused)
	}
	// a closes its hop stream (its circuit ended): its claim is freed.
	hop["a"]--
	if !open("c", 1, "dest") {
		t.Fatal("the claim of a source whose hop stream closed was not freed")
	}
	if open("a", 1, "dest") {
		t.Fatal("the subnet's share not counted again after the prune")
	}
	// A source with two circuits to dest keeps both claims while both
	// hop streams are open, and loses one when one closes.
	hop["b"]--
	hop["c"] = 0 // both its circuits (to dest and other) ended
	first, second, third := open("e", 1, "dest"), open("e", 1, "dest"), open("e", 1, "dest")
	if !first || !second || third {
		t.Fatal("one source's circuits not counted one by one")
	}
	hop["e"]--
	if !open("f", 1, "dest") || open("f", 1, "dest") {
		t.Fatal("a source's closed hop stream not freeing one of its circuits")
	}
	// The claims are bounded: when full and nothing is stale, strangers
	// are refused. (c's claim to other is stale but still counted: only
	// dest's claims are pruned on a circuit to dest, all at the bound.)
	r.maxCircuitClaims = r.nCircuits - 1
	if open("g", 3, "dest") {
		t.Fatal("a claim beyond the bound granted")
	}
	hop["f"] = 0 // f left: its claim is stale and pruned when full
	if !open("g", 3, "dest") {
		t.Fatal("a stale claim not pruned at the bound")
	}
}
