package transfer

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestAbandonedUploadsExpire: a share upload that no stream served for
// IdleTimeout is forgotten (its slot freed, counted); one being served,
// or idle for less, is kept.
func TestAbandonedUploadsExpire(t *testing.T) {
	s := &Service{cfg: Config{IdleTimeout: time.Second}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		uploads: make(map[uploadKey]*transfer)}
	now := time.Now()
	add := func(p peer.ID, serving int, idle time.Duration) *transfer {
		u := newTransfer(t.Context(), make([]byte, idLen))
		u.dir, u.share, u.peer, u.state, u.serving, u.idleSince = Send, true, p, StateWaiting, serving, now.Add(-idle)
		u.stranger = true
		s.uploads[uploadKey{u.id, p}] = u
		return u
	}
	gone := add("gone", 0, 2*time.Second)
	streaming := add("streaming", 1, time.Hour)
	recent := add("recent", 0, 100*time.Millisecond)
	s.mu.Lock()
	s.pruneUploadsAt(now)
	s.mu.Unlock()
	if _, ok := s.uploads[uploadKey{gone.id, "gone"}]; ok {
		t.Fatal("abandoned upload kept")
	}
	select {
	case <-gone.done:
	default:
		t.Fatal("abandoned upload not ended")
	}
	for _, u := range []*transfer{streaming, recent} {
		if _, ok := s.uploads[uploadKey{u.id, u.peer}]; !ok {
			t.Fatalf("upload of %s forgotten", u.peer)
		}
	}
	if got := s.budget.UploadsExpired; got != 1 {
		t.Fatalf("UploadsExpired = %d, want 1", got)
	}
}

// TestOfferSharesBySubnetAndAge: the pending-offer budget seen from
// synthetic subnets and ages (loopback cannot tell subnets apart): a
// crowd of newcomers, or of one subnet, takes only its share; strangers
// seen before, from other subnets, and known peers still get theirs.
func TestOfferSharesBySubnetAndAge(t *testing.T) {
	type claim struct {
		n        int // offers, one per identity
		subnet   string
		newcomer bool
		known    bool
	}
	tests := []struct {
		name   string
		before []claim // filled first, as far as they fit
		try    claim
		want   bool
	}{
		{"fresh crowd, same subnet: refused past the subnet share", []claim{{n: 40, subnet: "10.0.0.0/24", newcomer: true}}, claim{n: 1, subnet: "10.0.0.0/24", newcomer: true}, false},
		{"fresh crowd of one subnet leaves an old stranger of another", []claim{{n: 40, subnet: "10.0.0.0/24", newcomer: true}}, claim{n: 1, subnet: "10.0.1.0/24"}, true},
		{"fresh crowd of one subnet leaves a newcomer of another", []claim{{n: 40, subnet: "10.0.0.0/24", newcomer: true}}, claim{n: 1, subnet: "10.0.1.0/24", newcomer: true}, true},
		{"fresh crowd over many subnets: newcomers' pool full", []claim{{n: 60, newcomer: true}}, claim{n: 1, subnet: "192.0.2.0/24", newcomer: true}, false},
		{"fresh crowd over many subnets leaves old strangers", []claim{{n: 60, newcomer: true}}, claim{n: 1, subnet: "192.0.2.0/24"}, true},
		{"old strangers over many subnets: strangers' share full", []claim{{n: 200}}, claim{n: 1, subnet: "192.0.2.0/24"}, false},
		{"strangers' share full leaves known peers", []claim{{n: 200}, {n: 60, newcomer: true}}, claim{n: 1, known: true}, true},
		{"an IPv6 /48 is one subnet", []claim{{n: 40, subnet: "2001:db8:1::/48", newcomer: false}}, claim{n: 1, subnet: "2001:db8:1::/48"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Service{cfg: Config{MaxPendingOffers: 8}, transfers: make(map[string]*transfer)}
			next := 0
			offer := func(c claim) bool {
				next++
				o := newTransfer(t.Context(), []byte{byte(next >> 8), byte(next)})
				o.dir, o.state, o.peer = Receive, StateOffered, peer.ID(rune(next))
				o.stranger, o.subnet, o.newcomer = !c.known, c.subnet, c.newcomer && !c.known
				if o.subnet == "" && o.stranger {
					o.subnet = "198.51." + string(rune('0'+next%10)) + string(rune('0'+next/10%10)) + ".0/24" // spread over subnets
				}
				if !s.offerRoom(o) {
					return false
				}
				s.transfers[o.id] = o
				return true
			}
			for _, c := range tt.before {
				for range c.n {
					offer(c)
				}
			}
			held := len(s.transfers)
			if got := offer(tt.try); got != tt.want {
				t.Fatalf("offer after %d held: fits = %v, want %v", held, got, tt.want)
			}
		})
	}
}
