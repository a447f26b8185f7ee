package main_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// TestNoRoomMessageLostToKill9: alice and bob write in a room while one of
// them is killed with SIGKILL at a random moment, 20 rounds. At the end,
// every message each node's history holds (committed, live or by the
// sync) was shown there as a message event, in some run: nothing the
// user was never shown is lost. (A crash between writing an event and
// recording it shown may show it twice; that is allowed and counted.)
func TestNoRoomMessageLostToKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 40 processes")
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	const room = "crash"
	alice := &runs{peer: newFixedPeer(t, "alice", "--room", room, "--log-level", "info")}
	bob := &runs{peer: newFixedPeer(t, "bob", "--room", room, "--log-level", "info")}
	addrA := firstAddr(t, alice.start(t))
	addrB := firstAddr(t, bob.start(t, "--peer", addrA))

	// Rooms take 2 lines a second per author (a burst of 10): a few per
	// round and side keep them flowing while the processes die. Every
	// fourth round kills bob while the sync brings him what alice wrote
	// while he was away (a batch of messages stored and shown at once).
	const rounds, perRound = 20, 2
	deadline := time.Now().Add(3 * time.Minute)
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("round %d: out of time", round)
		}
		if round%4 == 1 {
			bob.kill9(t)
			for i := range perRound {
				line := fmt.Sprintf("a%02d-%d", round, i)
				alice.cur.Send(line)
				alice.cur.Wait(20*time.Second, "message", isMessage(room, line))
			}
			bob.start(t, "--peer", addrA)
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			bob.kill9(t)
			bob.start(t, "--peer", addrA)
			continue
		}
		for i := range perRound {
			alice.cur.Send(fmt.Sprintf("a%02d-%d", round, i))
			bob.cur.Send(fmt.Sprintf("b%02d-%d", round, i))
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		if rng.IntN(2) == 0 {
			bob.kill9(t)
			bob.start(t, "--peer", addrA)
		} else {
			alice.kill9(t)
			alice.start(t, "--peer", addrB)
		}
	}

	total, dups := 0, 0
	for _, r := range []*runs{alice, bob} {
		stored := historyIDs(t, r.cur, room)
		shown := map[string]int{}
		count := func() []string {
			clear(shown)
			for _, e := range r.seen("message") {
				if e.Str("room") == room {
					shown[e.Str("id")]++
				}
			}
			var lost []string
			for id := range stored {
				if shown[id] == 0 {
					lost = append(lost, id)
				}
			}
			return lost
		}
		// What the history holds may still be on its way out of the
		// running process: wait for it, a bounded time.
		lost := count()
		for wait := time.Now().Add(10 * time.Second); len(lost) > 0 && time.Now().Before(wait); lost = count() {
			r.cur.Wait(time.Until(wait), "message", nil)
		}
		for id := range stored {
			if shown[id] > 1 {
				dups++
			}
		}
		total += len(stored)
		if len(lost) > 0 {
			t.Errorf("%s: %d of %d messages in the history were never shown: %s",
				r.peer.name, len(lost), len(stored), strings.Join(lost, " "))
		}
	}
	again := 0
	for _, r := range []*runs{alice, bob} {
		for _, p := range r.all {
			again += reshownCount(p.Stderr())
		}
	}
	t.Logf("%d rounds; %d messages in the two histories, %d shown twice, %d shown again at a start (not shown before a kill)",
		rounds, total, dups, again)
	if total < rounds {
		t.Fatalf("only %d messages stored in %d rounds", total, rounds)
	}
}

// historyIDs asks p for the whole history of room and returns its IDs.
func historyIDs(t *testing.T, p *proctest.Peer, room string) map[string]bool {
	t.Helper()
	p.Send("/history " + room + " 10000")
	reply := p.Wait(20*time.Second, "info", func(e proctest.Event) bool { _, ok := e["data"].([]any); return ok })
	ids := map[string]bool{}
	for _, m := range reply["data"].([]any) {
		if m, ok := m.(map[string]any); ok {
			if id, _ := m["id"].(string); id != "" {
				ids[id] = true
			}
		}
	}
	return ids
}

// reshownCount adds up the messages a node's log says it showed again at
// start, as an earlier run stored them but did not show them.
func reshownCount(stderr string) int {
	n := 0
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, "showing messages an earlier run did not show") {
			continue
		}
		_, rest, ok := strings.Cut(line, "messages=")
		if !ok {
			continue
		}
		var k int
		if _, err := fmt.Sscanf(rest, "%d", &k); err == nil {
			n += k
		}
	}
	return n
}
