package rooms

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// sendTracker is a pubsub.RawTracer that follows this node's own messages
// out of GossipSub: Topic.Publish returns once a message is queued for
// the router, and the router writes it to each peer later, from its own
// goroutines. Leave and Close use it to wait until a leaving announcement
// has been handed to the transport for every peer on the room's topic
// before they stop GossipSub, which would drop it otherwise.
//
// It records only while a caller waits (watching > 0), so that the hot
// path of every other RPC is a mutex and a counter check.
type sendTracker struct {
	self peer.ID

	mu       sync.Mutex
	watching int                             // guarded by mu; callers between watch and unwatch
	done     map[string]map[peer.ID]struct{} // guarded by mu; by seqno: peers written to or dropped
	gone     map[peer.ID]struct{}            // guarded by mu; peers whose outbound stream closed
	changed  chan struct{}                   // guarded by mu; closed and replaced on every record
}

func newSendTracker(self peer.ID) *sendTracker {
	return &sendTracker{
		self:    self,
		done:    make(map[string]map[peer.ID]struct{}),
		gone:    make(map[peer.ID]struct{}),
		changed: make(chan struct{}),
	}
}

// watch starts recording; unwatch stops (and forgets) when the last
// watcher is done.
func (t *sendTracker) watch() {
	t.mu.Lock()
	t.watching++
	t.mu.Unlock()
}

func (t *sendTracker) unwatch() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.watching--
	if t.watching == 0 {
		clear(t.done)
		clear(t.gone)
	}
}

// record notes that rpc's own messages are done with for peer p.
func (t *sendTracker) record(rpc *pubsub.RPC, p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.watching == 0 {
		return
	}
	recorded := false
	for _, m := range rpc.GetPublish() {
		if peer.ID(m.GetFrom()) != t.self {
			continue
		}
		key := string(m.GetSeqno())
		ps := t.done[key]
		if ps == nil {
			ps = make(map[peer.ID]struct{})
			t.done[key] = ps
		}
		ps[p] = struct{}{}
		recorded = true
	}
	if recorded {
		t.signal()
	}
}

// closed notes that p's outbound stream closed: what was queued for p
// will not be written.
func (t *sendTracker) closed(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.watching == 0 {
		return
	}
	t.gone[p] = struct{}{}
	t.signal()
}

// signal wakes the waiters. The caller holds mu.
func (t *sendTracker) signal() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// wait returns once the message with seqno was written to (or dropped
// for) each of peers, or the stream to a remaining peer closed or it is
// no longer connected, or ctx ends. The caller has called watch before
// publishing.
func (t *sendTracker) wait(ctx context.Context, net network.Network, seqno string, peers []peer.ID) error {
	for {
		t.mu.Lock()
		ps, ch := t.done[seqno], t.changed
		left := 0
		for _, p := range peers {
			_, sent := ps[p]
			_, gone := t.gone[p]
			if !sent && !gone && net.Connectedness(p) == network.Connected {
				left++
			}
		}
		t.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (t *sendTracker) SendRPCCompleted(rpc *pubsub.RPC, p peer.ID, _ time.Duration) { t.record(rpc, p) }
func (t *sendTracker) DropRPC(rpc *pubsub.RPC, p peer.ID)                           { t.record(rpc, p) }
func (t *sendTracker) OnClosedOutboundStream(p peer.ID)                             { t.closed(p) }

func (*sendTracker) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (*sendTracker) Join(string)                              {}
func (*sendTracker) Leave(string)                             {}
func (*sendTracker) Graft(peer.ID, string)                    {}
func (*sendTracker) Prune(peer.ID, string)                    {}
func (*sendTracker) ValidateMessage(*pubsub.Message)          {}
func (*sendTracker) DeliverMessage(*pubsub.Message)           {}
func (*sendTracker) RejectMessage(*pubsub.Message, string)    {}
func (*sendTracker) DuplicateMessage(*pubsub.Message)         {}
func (*sendTracker) ThrottlePeer(peer.ID)                     {}
func (*sendTracker) RecvRPC(*pubsub.RPC)                      {}
func (*sendTracker) SendRPC(*pubsub.RPC, peer.ID)             {}
func (*sendTracker) UndeliverableMessage(*pubsub.Message)     {}
