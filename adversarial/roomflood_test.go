package adversarial

import (
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
)

// Finding 1 of issue 19: a sybil flood of a room.
const (
	sybilAuthors  = 300
	sybilMessages = 30000           // in all, round robin over the authors
	sybilPeriod   = 6 * time.Second // the flood lasts about this long
	sybilPerRPC   = 50              // messages per RPC: 100 RPCs a second
	honestLines   = 20
	honestEvery   = 250 * time.Millisecond
)

// arrivals notes how long after its author sent it (its SentAt, the same
// clock here) the victim showed each room message of one author: the
// honest node's own pacing of its lines (node.Say) is not counted.
type arrivals struct {
	mu     sync.Mutex
	author peer.ID                  // guarded by mu
	at     map[string]time.Duration // text -> latency; guarded by mu
}

func (a *arrivals) Emit(e events.Event) {
	if m, ok := e.(events.Message); ok {
		a.mu.Lock()
		if m.From == a.author {
			if _, seen := a.at[m.Text]; !seen {
				a.at[m.Text] = time.Since(m.SentAt)
			}
		}
		a.mu.Unlock()
	}
}

func (a *arrivals) watch(p peer.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.author = p
}

func (a *arrivals) shown(text string) (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[text]
	return t, ok
}

// sybilFlood is a flood of valid lobby messages from fresh identities,
// signed in advance.
func sybilFlood(t *testing.T) [][]*pubsubpb.Message {
	t.Helper()
	keys := make([]crypto.PrivKey, sybilAuthors)
	ids := make([]peer.ID, sybilAuthors)
	for i := range keys {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if ids[i], err = peer.IDFromPrivateKey(k); err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	topic := lobbyTopic
	var rpcs [][]*pubsubpb.Message
	var batch []*pubsubpb.Message
	for i := range sybilMessages {
		a := i % sybilAuthors
		seq := random(t, 8)
		m := &pubsubpb.Message{From: []byte(ids[a]), Data: envelopeBytes(t, fmt.Sprintf("sybil%d", a), fmt.Sprintf("flood %d", i)), Seqno: seq, Topic: &topic}
		unsigned, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if m.Signature, err = keys[a].Sign(append([]byte(pubsub.SignPrefix), unsigned...)); err != nil {
			t.Fatal(err)
		}
		if batch = append(batch, m); len(batch) == sybilPerRPC {
			rpcs, batch = append(rpcs, batch), nil
		}
	}
	return rpcs
}

// honestRun has honest say honestLines lines honestEvery apart, each
// tagged, and returns how long each took to show at the victim, in order;
// a line not shown within waitTimeout of the last one counts as lost
// (negative).
func honestRun(t *testing.T, honest *party, seen *arrivals, tag string) []time.Duration {
	t.Helper()
	tick := time.NewTicker(honestEvery)
	defer tick.Stop()
	for i := range honestLines {
		if i > 0 {
			<-tick.C
		}
		honest.exec(fmt.Sprintf("%s line %d", tag, i))
	}
	lat := make([]time.Duration, honestLines)
	deadline := time.Now().Add(waitTimeout)
	for i := range honestLines {
		for {
			if d, ok := seen.shown(fmt.Sprintf("%s line %d", tag, i)); ok {
				lat[i] = d
				break
			}
			if time.Now().After(deadline) {
				lat[i] = -1
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return lat
}

func summary(lat []time.Duration) (shown int, p50, worst time.Duration) {
	var ok []time.Duration
	for _, d := range lat {
		if d >= 0 {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ok)
	return len(ok), ok[len(ok)/2], ok[len(ok)-1]
}

// p95 is the 95th percentile (nearest rank) of the lines shown.
func p95(lat []time.Duration) time.Duration {
	var ok []time.Duration
	for _, d := range lat {
		if d >= 0 {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return 0
	}
	slices.Sort(ok)
	return ok[(len(ok)*95+99)/100-1]
}

// TestSybilRoomFloodKeepsKnownLines (finding 1): 300 fresh identities
// flood the lobby with 30,000 valid, signed messages over about 6 s, on
// one GossipSub stream, while a known (trusted) honest peer says 20 lines
// 250 ms apart. Every honest line is shown at the victim; the victim
// sheds strangers' messages, not the known peer's.
func TestSybilRoomFloodKeepsKnownLines(t *testing.T) {
	seen := &arrivals{at: make(map[string]time.Duration)}
	tee := func(c *node.Config) {
		rec := c.Emitter
		c.Emitter = events.EmitterFunc(func(e events.Event) { seen.Emit(e); rec.Emit(e) })
	}
	victim, honest := newParty(t, "victim", tee), newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	trustEachOther(t, victim, honest)
	seen.watch(honest.peerID())
	mallory := attacker(t, victim)

	quiet := honestRun(t, honest, seen, "quiet")
	rpcs := sybilFlood(t)

	s := rpcStream(t, mallory, victim.peerID())
	w := msgio.NewVarintWriter(s)
	floodDone := make(chan int, 1)
	go func() {
		// Bounded: len(rpcs) writes, each with a deadline.
		start := time.Now()
		every := sybilPeriod / time.Duration(len(rpcs))
		sent := 0
		for i, batch := range rpcs {
			if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
			_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
			b, err := proto.Marshal(&pubsubpb.RPC{Publish: batch})
			if err != nil || w.WriteMsg(b) != nil {
				break
			}
			sent += len(batch)
		}
		floodDone <- sent
	}()
	time.Sleep(200 * time.Millisecond) // the honest lines start inside the flood
	loaded := honestRun(t, honest, seen, "flood")
	sent := <-floodDone
	strangers := victim.ev.count(func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && m.From != honest.peerID()
	})

	qn, q50, qmax := summary(quiet)
	ln, l50, lmax := summary(loaded)
	t.Logf("sybil flood: %d messages sent by %d identities, %d shown; honest lines shown %d/%d (median %v, p95 %v, worst %v); quiet %d/%d (median %v, p95 %v, worst %v)",
		sent, sybilAuthors, strangers, ln, honestLines, l50.Round(time.Millisecond), p95(loaded).Round(time.Millisecond), lmax.Round(time.Millisecond),
		qn, honestLines, q50.Round(time.Millisecond), p95(quiet).Round(time.Millisecond), qmax.Round(time.Millisecond))
	if qn != honestLines {
		t.Fatalf("only %d of %d honest lines shown without a flood", qn, honestLines)
	}
	if ln != honestLines {
		var lost []int
		for i, d := range loaded {
			if d < 0 {
				lost = append(lost, i)
			}
		}
		t.Fatalf("under the flood the victim showed %d of %d honest lines; lost %v", ln, honestLines, lost)
	}
	stillServes(t, honest, victim, "after the sybil flood")
}
