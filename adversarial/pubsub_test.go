package adversarial

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/testnet"
	"github.com/parley-chat/parley/node"
)

// gossipSubID is the GossipSub version the raw attacks speak.
const gossipSubID = pubsub.GossipSubID_v11

// rawPubSub starts GossipSub on an attacker's host, without Parley's
// validators: it publishes whatever it is told to.
func rawPubSub(t testing.TB, h host.Host) *pubsub.PubSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// joinTopic joins topic on ps and waits until every peer in want is seen
// on it.
func joinTopic(t testing.TB, ps *pubsub.PubSub, topic string, want ...peer.ID) *pubsub.Topic {
	t.Helper()
	tp, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	testnet.WaitTopicPeers(t, tp, waitTimeout, want...)
	return tp
}

// rpcStream opens a raw GossipSub stream from h to p.
func rpcStream(t testing.TB, h host.Host, p peer.ID) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, gossipSubID)
	if err != nil {
		t.Fatalf("open raw gossipsub stream: %v", err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	return s
}

// writeRPC writes one RPC on a raw GossipSub stream; it reports false once
// the victim has closed or reset the stream.
func writeRPC(t testing.TB, w msgio.WriteCloser, rpc *pubsubpb.RPC) bool {
	t.Helper()
	b, err := proto.Marshal(rpc)
	if err != nil {
		t.Fatal(err)
	}
	return w.WriteMsg(b) == nil
}

// tracer records what the victim's GossipSub did with messages.
type tracer struct {
	mu        sync.Mutex
	rejected  map[string]int // reason -> count
	dup       int
	delivered []*pubsubpb.Message
	// received: every message that entered validation, as it came off
	// the wire.
	received []*pubsubpb.Message
	changed  chan struct{}
}

func newTracer() *tracer { return &tracer{rejected: map[string]int{}, changed: make(chan struct{})} }

func (tr *tracer) note(f func()) {
	tr.mu.Lock()
	f()
	close(tr.changed)
	tr.changed = make(chan struct{})
	tr.mu.Unlock()
}

func (tr *tracer) RejectMessage(_ *pubsub.Message, reason string) {
	tr.note(func() { tr.rejected[reason]++ })
}
func (tr *tracer) DuplicateMessage(*pubsub.Message) { tr.note(func() { tr.dup++ }) }
func (tr *tracer) DeliverMessage(m *pubsub.Message) {
	tr.note(func() { tr.delivered = append(tr.delivered, m.Message) })
}

// get reads a counter under the lock.
func (tr *tracer) get(f func() int) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return f()
}

// waitFor waits until f (called under the lock) is true.
func (tr *tracer) waitFor(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		tr.mu.Lock()
		ok, ch := f(), tr.changed
		tr.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (*tracer) AddPeer(peer.ID, protocolID) {}
func (*tracer) RemovePeer(peer.ID)          {}
func (*tracer) Join(string)                 {}
func (*tracer) Leave(string)                {}
func (*tracer) Graft(peer.ID, string)       {}
func (*tracer) Prune(peer.ID, string)       {}
func (tr *tracer) ValidateMessage(m *pubsub.Message) {
	tr.note(func() { tr.received = append(tr.received, m.Message) })
}
func (*tracer) UndeliverableMessage(*pubsub.Message)                 {}
func (*tracer) ThrottlePeer(peer.ID)                                 {}
func (*tracer) RecvRPC(*pubsub.RPC)                                  {}
func (*tracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*tracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*tracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*tracer) OnNewOutboundStream(peer.ID, protocolID)              {}
func (*tracer) OnClosedOutboundStream(peer.ID)                       {}

func withTracer(tr *tracer, opts ...pubsub.Option) func(*node.Config) {
	return func(c *node.Config) {
		c.RoomsConfig.PubSubOptions = append(append(c.RoomsConfig.PubSubOptions, pubsub.WithRawTracer(tr)), opts...)
	}
}

// TestFloodFromOneMember: a member publishes 500 valid, signed messages as
// fast as it can. The per-author token bucket (burst 10, 2/s) admits a
// handful; the rest are ignored at the first hop and never forwarded; every
// message of the honest member arrives.
func TestFloodFromOneMember(t *testing.T) {
	victim, honest, mallory := underAttack(t)
	ps := rawPubSub(t, mallory)
	tp := joinTopic(t, ps, lobbyTopic, victim.peerID())

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		for i := range 500 {
			if err := tp.Publish(ctx, envelopeBytes(t, "mallory", fmt.Sprintf("flood %d", i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range 5 {
		stillServes(t, honest, victim, fmt.Sprintf("during flood %d", i))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Give the last flood messages time to arrive, then count.
	stillServes(t, honest, victim, "after flood")
	elapsed := time.Since(start)
	got := victim.ev.count(func(e events.Event) bool {
		m, ok := e.(events.Message)
		return ok && m.From == mallory.ID()
	})
	// Burst 10 plus 2 per second.
	if max := 10 + int(2*elapsed.Seconds()) + 2; got > max {
		t.Fatalf("%d of 500 flood messages delivered in %v, the rate limit allows %d", got, elapsed, max)
	}
	t.Logf("flood: %d of 500 delivered in %v", got, elapsed.Round(time.Millisecond))
}

// TestControlMessageFlood floods GossipSub control messages: IHAVE for
// thousands of unknown messages, IWANT for thousands, GRAFT and PRUNE in
// a loop, and subscriptions to 100 000 topics. The node keeps delivering
// the honest member's messages, and its heap does not grow with the
// number of announced topics beyond a bound.
func TestControlMessageFlood(t *testing.T) {
	victim, honest, mallory := underAttack(t)
	topic := lobbyTopic

	s := rpcStream(t, mallory, victim.peerID())
	w := msgio.NewVarintWriter(s)
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = string(random(t, 40))
		}
		return out
	}
	sub := true
	writeRPC(t, w, &pubsubpb.RPC{Subscriptions: []*pubsubpb.RPC_SubOpts{{Subscribe: &sub, Topicid: &topic}}})
	for i := range 50 {
		ctl := &pubsubpb.ControlMessage{
			Ihave: []*pubsubpb.ControlIHave{{TopicID: &topic, MessageIDs: ids(2000)}},
			Iwant: []*pubsubpb.ControlIWant{{MessageIDs: ids(2000)}},
			Graft: []*pubsubpb.ControlGraft{{TopicID: &topic}},
			Prune: []*pubsubpb.ControlPrune{{TopicID: &topic}},
		}
		if !writeRPC(t, w, &pubsubpb.RPC{Control: ctl}) {
			t.Logf("victim closed the flooding stream after %d control RPCs", i)
			break
		}
	}
	stillServes(t, honest, victim, "after control flood")

	// Subscriptions to many topics, in RPCs just under the 1 MiB limit.
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const topics = 100000
	s2 := rpcStream(t, mallory, victim.peerID())
	w2 := msgio.NewVarintWriter(s2)
	sent := 0
	for sent < topics {
		rpc := &pubsubpb.RPC{}
		for range 10000 {
			name := fmt.Sprintf("parley/room/1/public/flood-%d", sent)
			rpc.Subscriptions = append(rpc.Subscriptions, &pubsubpb.RPC_SubOpts{Subscribe: &sub, Topicid: &name})
			sent++
		}
		if !writeRPC(t, w2, rpc) {
			t.Logf("victim closed the subscribing stream after %d topics", sent)
			break
		}
	}
	stillServes(t, honest, victim, "after subscription flood")
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %d KiB after %d announced topics", grown>>10, sent)
	// Unbounded, 100 000 topics cost about 30 MiB.
	if grown > 8<<20 {
		t.Errorf("heap grew by %d MiB after %d announced topics", grown>>20, sent)
	}
}

// TestReplay replays a signed room message of an honest member, captured
// off the wire: at once (inside GossipSub's seen-cache window), after the
// window has expired, and after the victim restarted. It is delivered
// once, never again.
func TestReplay(t *testing.T) {
	t.Parallel()
	tr := newTracer()
	// A 1 s seen-cache TTL: GossipSub forgets the message within its
	// next sweep (every minute), after which only Parley's own replay
	// records stand between the replay and a second delivery.
	victim := newParty(t, "victim", withTracer(tr, pubsub.WithSeenMessagesTTL(time.Second)))
	honest := newParty(t, "honest", nil)
	link(t, honest, victim)
	inLobby(t, honest, victim)
	mallory := attacker(t, victim)

	// The message as it travelled, signature and all, as any member (or
	// anyone on the topic of a public room) receives it.
	honest.exec("say it once")
	victim.waitMessage("say it once")
	// Captured as it entered validation: the room's history sync may
	// have brought the message first, so that the gossiped copy is
	// ignored rather than delivered; it travelled all the same.
	var captured *pubsubpb.Message
	tr.waitFor(t, "message traced", func() bool {
		for _, m := range tr.received {
			if peer.ID(m.From) == honest.peerID() && containsText(m.Data, "say it once") {
				captured = m
				return true
			}
		}
		return false
	})
	inject := func() {
		s := rpcStream(t, mallory, victim.peerID())
		if !writeRPC(t, msgio.NewVarintWriter(s), &pubsubpb.RPC{Publish: []*pubsubpb.Message{captured}}) {
			t.Fatal("victim closed the stream")
		}
	}

	// 1. Inside the window: GossipSub's seen cache drops it.
	before := tr.get(func() int { return tr.dup })
	inject()
	tr.waitFor(t, "duplicate dropped", func() bool { return tr.dup > before })

	// 2. After the window (the sweep runs every minute): Parley's replay
	// record ignores it.
	time.Sleep(62 * time.Second)
	ignoredBefore := tr.get(func() int { return tr.rejected[pubsub.RejectValidationIgnored] })
	inject()
	tr.waitFor(t, "replay ignored", func() bool { return tr.rejected[pubsub.RejectValidationIgnored] > ignoredBefore })

	// 3. After a restart: the replay record is read back from the store.
	victim.restart()
	link(t, honest, victim)
	testnetConnect(t, mallory, victim)
	inLobby(t, honest, victim)
	ignored := tr.get(func() int { return tr.rejected[pubsub.RejectValidationIgnored] })
	inject()
	tr.waitFor(t, "replay after restart ignored", func() bool { return tr.rejected[pubsub.RejectValidationIgnored] > ignored })
	stillServes(t, honest, victim, "after replays")
	if n := victim.messages("say it once"); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
	victim.exec("/history lobby 100")
	info := victim.ev.wait(t, "history", func(e events.Event) bool {
		i, ok := e.(events.Info)
		return ok && i.Data != nil && isHistory(i.Data)
	}).(events.Info)
	if n := countText(info.Data.([]events.Message), "say it once"); n != 1 {
		t.Fatalf("history holds the message %d times", n)
	}
}
