package main_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// runs keeps every process a fixedPeer ran, so the events of all its runs
// can be read together.
type runs struct {
	peer *fixedPeer
	all  []*proctest.Peer
	cur  *proctest.Peer
}

func (r *runs) start(t *testing.T, more ...string) proctest.Event {
	t.Helper()
	p, ready := r.peer.start(t, more...)
	r.all = append(r.all, p)
	r.cur = p
	return ready
}

// kill9 kills the running process with SIGKILL and waits until it is gone
// (its output read to the end).
func (r *runs) kill9(t *testing.T) {
	t.Helper()
	r.cur.Signal(syscall.SIGKILL)
	_ = r.cur.Exited(10 * time.Second) // killed: the error says so
}

// seen returns the events of type typ of every run.
func (r *runs) seen(typ string) []proctest.Event {
	var out []proctest.Event
	for _, p := range r.all {
		for _, e := range p.Seen() {
			if e.Type() == typ {
				out = append(out, e)
			}
		}
	}
	return out
}

// TestNoEventLostToKill9: alice sends direct messages to bob while one of
// them is killed with SIGKILL at a random moment, 20 rounds. Every message
// bob stored (alice saw it delivered) is shown at bob as a dm event, and
// every message alice stored (bob got it) is shown at alice as queued and
// delivered, in some run: nothing the user was never shown is lost.
// (A crash between writing an event and recording it shown may show it
// twice; that is allowed and counted.)
func TestNoEventLostToKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 40 processes")
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	alice := &runs{peer: newFixedPeer(t, "alice")}
	bob := &runs{peer: newFixedPeer(t, "bob")}
	readyA := alice.start(t)
	addrA := firstAddr(t, readyA)
	readyB := bob.start(t, "--peer", addrA)
	addrB := firstAddr(t, readyB)
	bobID := readyB.Str("peer_id")

	const rounds, perRound = 20, 8
	deadline := time.Now().Add(4 * time.Minute)
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("round %d: out of time", round)
		}
		for i := range perRound {
			alice.cur.Send(fmt.Sprintf("/msg %s r%02d-%d", bobID, round, i))
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		if rng.IntN(2) == 0 {
			bob.kill9(t)
			bob.start(t, "--peer", addrA)
		} else {
			alice.kill9(t)
			alice.start(t, "--peer", addrB)
		}
	}

	// Settle: every message alice committed (a queued event, in any run)
	// is delivered, and bob has shown every message he stored.
	queued := map[string]bool{}
	for _, e := range alice.seen("dm_status") {
		if e.Str("state") == "queued" && e.Str("reason") == "" {
			queued[e.Str("id")] = true
		}
	}
	for id := range queued {
		if !hasStatus(alice, id, "delivered") {
			alice.cur.Wait(60*time.Second, "dm_status", dmStatus(id, "delivered"))
		}
	}
	shown := map[string]int{}
	waitFor := time.Now().Add(30 * time.Second)
	for {
		clear(shown)
		for _, e := range bob.seen("dm") {
			shown[e.Str("id")]++
		}
		if len(shown) >= len(queued) || time.Now().After(waitFor) {
			break
		}
		bob.cur.Wait(time.Until(waitFor), "dm", nil)
	}
	var lostAtBob, dupAtBob []string
	for id := range queued {
		switch shown[id] {
		case 0:
			lostAtBob = append(lostAtBob, id)
		case 1:
		default:
			dupAtBob = append(dupAtBob, id)
		}
	}
	// Alice's side: every message bob got was queued (and delivered) in
	// alice's events.
	var lostAtAlice []string
	for id := range shown {
		if !queued[id] || !hasStatus(alice, id, "delivered") {
			lostAtAlice = append(lostAtAlice, id)
		}
	}
	t.Logf("%d rounds, %d /msg lines, %d messages committed, %d shown at bob (%d twice)",
		rounds, rounds*perRound, len(queued), len(shown), len(dupAtBob))
	if len(lostAtBob) > 0 || len(lostAtAlice) > 0 {
		t.Fatalf("events lost: %d dm at bob (%s), %d dm_status at alice (%s)",
			len(lostAtBob), strings.Join(lostAtBob, " "), len(lostAtAlice), strings.Join(lostAtAlice, " "))
	}
	if len(queued) < rounds {
		t.Fatalf("only %d messages committed in %d rounds", len(queued), rounds)
	}
}

func hasStatus(r *runs, id, state string) bool {
	for _, e := range r.seen("dm_status") {
		if e.Str("id") == id && e.Str("state") == state && e.Str("reason") == "" {
			return true
		}
	}
	return false
}
