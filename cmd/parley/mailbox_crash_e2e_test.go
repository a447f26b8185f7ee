package main_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/proctest"
)

// serveRuns is a `parley serve` node on a fixed port and data directory,
// restarted after each kill, with every run kept.
type serveRuns struct {
	dir  string
	port int
	all  []*proctest.Peer
	cur  *proctest.Peer
}

func (s *serveRuns) start(t *testing.T) proctest.Event {
	t.Helper()
	p := proctest.StartCommand(t, bin, "serve", "serve", "--data-dir", s.dir,
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", s.port))
	s.all = append(s.all, p)
	s.cur = p
	return p.Wait(20*time.Second, "ready", nil)
}

func (s *serveRuns) kill9(t *testing.T) {
	t.Helper()
	s.cur.Signal(syscall.SIGKILL)
	_ = s.cur.Exited(10 * time.Second) // killed: the error says so
}

// quit ends the running process with /quit; a process that does not
// exit in time is killed and reported.
func (r *runs) quit(t *testing.T) {
	t.Helper()
	r.cur.Send("/quit")
	if err := r.cur.Exited(10 * time.Second); err != nil {
		t.Fatalf("%s: /quit: %v", r.peer.name, err)
	}
}

// idsOf returns the ids of the events of type typ of every run of r that
// match, with how many times each was seen, and for each id the index of
// the run it was first seen in.
func idsOf(r *runs, typ string, match func(proctest.Event) bool) (count map[string]int, firstRun map[string]int) {
	count, firstRun = map[string]int{}, map[string]int{}
	for i, p := range r.all {
		for _, e := range p.Seen() {
			if e.Type() != typ || (match != nil && !match(e)) {
				continue
			}
			if _, ok := firstRun[e.Str("id")]; !ok {
				firstRun[e.Str("id")] = i
			}
			count[e.Str("id")]++
		}
	}
	return count, firstRun
}

func isQueued(e proctest.Event) bool    { return e.Str("state") == "queued" && e.Str("reason") == "" }
func isDeposited(e proctest.Event) bool { return e.Str("reason") == "deposited" }
func isDelivered(e proctest.Event) bool {
	return e.Str("state") == "delivered" && e.Str("reason") == ""
}

// waitAll waits, at most d, until every id in want is in the ids of typ
// events of r (every run) that match; it reports whether they all came.
func waitAll(r *runs, d time.Duration, typ string, match func(proctest.Event) bool, want map[string]int) bool {
	deadline := time.Now().Add(d)
	for {
		got, _ := idsOf(r, typ, match)
		missing := 0
		for id := range want {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		// proctest has no wait that may time out without failing the
		// test: poll the event log (Seen) of every run.
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOfflineDeliverySurvivesKill9: alice and carol are never online at
// the same time; every DM goes through the serve node's mailbox. In each
// round alice sends DMs to the offline carol and one of alice and the
// serve node may be killed with SIGKILL at a random moment of the
// deposit; then alice leaves, carol comes back and one of carol and the
// serve node may be killed at a random moment of the pickup. At the end
// every message alice was told was accepted (queued, in any run) is shown
// at carol and shown delivered at alice; nothing is shown twice, except
// an event replayed after a SIGKILL came between writing it out and
// recording it shown (dm's documented at-least-once display), which is
// allowed only for a run that was killed.
func TestOfflineDeliverySurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts about 60 processes")
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	srv := &serveRuns{dir: filepath.Join(t.TempDir(), "serve"), port: freeTCPPort(t)}
	addrS := firstAddr(t, srv.start(t))
	serveID := addrS[strings.LastIndex(addrS, "/")+1:]
	alice := &runs{peer: newFixedPeer(t, "alice")}
	carol := &runs{peer: newFixedPeer(t, "carol")}
	fromServe := func(e proctest.Event) bool { return e.Str("holder") == serveID }

	// Carol has been online with the serve node once: it holds her record.
	readyC := carol.start(t, "--peer", addrS)
	carolID := readyC.Str("peer_id")
	carol.cur.Find(20*time.Second, "mailbox_pickup", fromServe)
	carol.quit(t)

	killedAlice, killedCarol := map[int]bool{}, map[int]bool{} // runs ended by SIGKILL
	const rounds, perRound = 10, 10
	deadline := time.Now().Add(8 * time.Minute)
	kills := map[string]int{}
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("round %d: out of time", round)
		}
		// Deposit: alice writes to the offline carol.
		alice.start(t, "--peer", addrS)
		alice.cur.Find(20*time.Second, "mailbox_pickup", fromServe) // her record names the serve node
		for i := range perRound {
			alice.cur.Send(fmt.Sprintf("/msg %s r%d-%d", carolID, round, i))
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		switch rng.IntN(4) {
		case 0, 2:
			killedAlice[len(alice.all)-1] = true
			alice.kill9(t)
			kills["alice (deposit)"]++
			alice.start(t, "--peer", addrS)
		case 1:
			srv.kill9(t)
			kills["serve (deposit)"]++
			srv.start(t)
		}
		queued, _ := idsOf(alice, "dm_status", isQueued)
		if !waitAll(alice, 30*time.Second, "dm_status", isDeposited, queued) {
			// A kill between recording a deposit and writing its event
			// out loses only the event: the message waits in alice's
			// outbox and is checked at the end all the same.
			t.Logf("round %d: not every queued message shows a deposit", round)
		}
		alice.quit(t)

		// Pickup: carol comes back, connected only to the serve node.
		carol.start(t, "--peer", addrS)
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		switch rng.IntN(4) {
		case 0, 2:
			killedCarol[len(carol.all)-1] = true
			carol.kill9(t)
			kills["carol (pickup)"]++
			carol.start(t, "--peer", addrS)
		case 1:
			srv.kill9(t)
			kills["serve (pickup)"]++
			srv.start(t)
		}
		deposited, _ := idsOf(alice, "dm_status", isDeposited)
		if !waitAll(carol, 30*time.Second, "dm", nil, deposited) {
			shown, _ := idsOf(carol, "dm", nil)
			t.Fatalf("round %d: carol shows %d of the %d messages deposited", round, len(shown), len(deposited))
		}
		carol.quit(t)
	}

	// Settle: alice comes back for her receipts (and deposits anything a
	// kill left in her outbox); carol comes back for what is left. At most
	// three turns each.
	queued, _ := idsOf(alice, "dm_status", isQueued)
	settled := false
	for turn := 0; turn < 3 && !settled; turn++ {
		alice.start(t, "--peer", addrS)
		settled = waitAll(alice, 20*time.Second, "dm_status", isDelivered, queued)
		alice.quit(t)
		if settled {
			break
		}
		carol.start(t, "--peer", addrS)
		waitAll(carol, 20*time.Second, "dm", nil, queued)
		carol.quit(t)
	}

	shown, shownFirst := idsOf(carol, "dm", nil)
	delivered, deliveredFirst := idsOf(alice, "dm_status", isDelivered)
	var lostAtCarol, undelivered, unqueued, twice []string
	for id := range queued {
		if shown[id] == 0 {
			lostAtCarol = append(lostAtCarol, id)
		}
		if delivered[id] == 0 {
			undelivered = append(undelivered, id)
		}
	}
	for id, k := range shown {
		if queued[id] == 0 {
			unqueued = append(unqueued, id)
		}
		if k > 1 && !killedCarol[shownFirst[id]] {
			twice = append(twice, "dm "+id)
		}
	}
	for id, k := range delivered {
		if k > 1 && !killedAlice[deliveredFirst[id]] {
			twice = append(twice, "delivered "+id)
		}
	}
	replayed := 0
	for _, k := range shown {
		replayed += k - 1
	}
	t.Logf("%d rounds, kills %v, %d messages queued, %d shown at carol (%d replays after a kill), %d delivered",
		rounds, kills, len(queued), len(shown), replayed, len(delivered))
	slices.Sort(lostAtCarol)
	slices.Sort(undelivered)
	if len(lostAtCarol)+len(undelivered)+len(unqueued)+len(twice) > 0 {
		t.Fatalf("lost at carol: %v; not delivered at alice: %v; shown at carol, never queued at alice: %v; shown twice: %v",
			lostAtCarol, undelivered, unqueued, twice)
	}
	if len(queued) < rounds {
		t.Fatalf("only %d messages queued in %d rounds", len(queued), rounds)
	}
}
