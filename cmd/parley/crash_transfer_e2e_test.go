package main_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/config"
)

// TestNoTransferOutcomeLostToKill9: alice sends bob a file each round
// (bob accepts files from alice at once) while one of them is killed with
// SIGKILL at a random moment, 20 rounds. At the end every file in bob's
// downloads (received and verified: committed) was shown at bob as a
// file_done naming it, in some run, and as a file_done at alice once her
// side learnt it: nothing the user was never shown is lost, although the
// ended transfer's record is gone from the store.
func TestNoTransferOutcomeLostToKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 40 processes")
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	alice := &runs{peer: newFixedPeer(t, "alice", "--log-level", "info")}
	bob := &runs{peer: newFixedPeer(t, "bob", "--log-level", "info")}
	readyA := alice.start(t)
	addrA := firstAddr(t, readyA)
	if err := os.MkdirAll(bob.peer.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("auto_accept_from = [%q]\n", readyA.Str("peer_id"))
	if err := os.WriteFile(filepath.Join(bob.peer.dir, config.FileName), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	readyB := bob.start(t, "--peer", addrA)
	addrB := firstAddr(t, readyB)
	bobID := readyB.Str("peer_id")
	src := t.TempDir()

	const rounds = 20
	deadline := time.Now().Add(3 * time.Minute)
	for round := range rounds {
		if time.Now().After(deadline) {
			t.Fatalf("round %d: out of time", round)
		}
		path, _ := randomFile(t, src, fmt.Sprintf("r%02d.bin", round), 64<<10+int64(rng.IntN(256<<10)))
		alice.cur.Send("/send " + bobID + " " + path)
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		if rng.IntN(2) == 0 {
			bob.kill9(t)
			bob.start(t, "--peer", addrA)
		} else {
			alice.kill9(t)
			alice.start(t, "--peer", addrB)
		}
	}

	// Settle: interrupted transfers resume; wait, bounded, until bob's
	// downloads hold no part file.
	downloads := filepath.Join(bob.peer.dir, "downloads")
	received := func() (done []string, parts int) {
		entries, err := os.ReadDir(downloads)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".part") {
				parts++
				continue
			}
			done = append(done, filepath.Join(downloads, e.Name()))
		}
		return done, parts
	}
	for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); {
		if _, parts := received(); parts == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond) // files on disk: nothing to await
	}
	files, _ := received()
	doneAt := func(r *runs) map[string]string { // path -> transfer id
		out := map[string]string{}
		for _, e := range r.seen("file_done") {
			out[e.Str("path")] = e.Str("transfer_id")
		}
		return out
	}
	var lostAtBob []string
	for wait := time.Now().Add(10 * time.Second); ; {
		lostAtBob = lostAtBob[:0]
		shown := doneAt(bob)
		for _, f := range files {
			if shown[f] == "" {
				lostAtBob = append(lostAtBob, filepath.Base(f))
			}
		}
		if len(lostAtBob) == 0 || time.Now().After(wait) {
			break
		}
		bob.cur.Wait(time.Until(wait), "file_done", nil)
	}
	// Alice learns each end from bob's notice, after a restart too.
	var lostAtAlice []string
	for wait := time.Now().Add(20 * time.Second); ; {
		lostAtAlice = lostAtAlice[:0]
		ids := map[string]bool{}
		for _, id := range doneAt(alice) {
			ids[id] = true
		}
		for _, id := range doneAt(bob) {
			if !ids[id] {
				lostAtAlice = append(lostAtAlice, id)
			}
		}
		if len(lostAtAlice) == 0 || time.Now().After(wait) {
			break
		}
		alice.cur.Wait(time.Until(wait), "file_done", nil)
	}
	again := 0
	for _, r := range []*runs{alice, bob} {
		for _, p := range r.all {
			again += strings.Count(p.Stderr(), "transfer: showing events an earlier run did not show")
		}
	}
	t.Logf("%d rounds; %d files received; %d starts showed transfer events an earlier run did not show", rounds, len(files), again)
	if len(lostAtBob) > 0 || len(lostAtAlice) > 0 {
		t.Fatalf("events lost: file_done of %d received files at bob (%s), %d at alice (%s)",
			len(lostAtBob), strings.Join(lostAtBob, " "), len(lostAtAlice), strings.Join(lostAtAlice, " "))
	}
	if len(files) < rounds/2 {
		t.Fatalf("only %d files received in %d rounds", len(files), rounds)
	}
}
