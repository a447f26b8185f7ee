package rooms

import (
	"context"
	"fmt"
	"slices"
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
	return t.await(ctx, net, peers, func(p peer.ID) bool {
		_, sent := t.done[seqno][p]
		return sent
	})
}

// waitClosed returns once the outbound stream to each of peers closed or
// the peer is no longer connected, or ctx ends. The caller watches.
func (t *sendTracker) waitClosed(ctx context.Context, net network.Network, peers []peer.ID) error {
	return t.await(ctx, net, peers, func(peer.ID) bool { return false })
}

// await returns once done(p) (called with mu held) holds for each of
// peers, or its outbound stream closed, or it is no longer connected, or
// ctx ends.
func (t *sendTracker) await(ctx context.Context, net network.Network, peers []peer.ID, done func(peer.ID) bool) error {
	for {
		t.mu.Lock()
		ch := t.changed
		left := 0
		for _, p := range peers {
			_, gone := t.gone[p]
			if !gone && !done(p) && net.Connectedness(p) == network.Connected {
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

// flushGossip makes sure that what GossipSub wrote to peers has reached
// them, before the host closes. A write to a stream returns once the
// bytes are queued in the connection's stream muxer (yamux), and closing
// the connection drops what is still queued: under load, the leaving
// announcement written just before was often lost that way. So it
// half-closes this node's outbound GossipSub stream to each peer, which
// queues an end of stream behind everything written, and waits until the
// peer's GossipSub, having read everything up to that end, closes its side
// too: GossipSub's reader of the outbound stream then sees the stream
// closed and reports it (OnClosedOutboundStream). A peer that does not
// answer is waited for until ctx ends. The caller watches s.sent; GossipSub
// must still run, and the node is closing (no more GossipSub traffic is
// needed to these peers).
func (s *Service) flushGossip(ctx context.Context, peers []peer.ID) error {
	net := s.cfg.Host.Network()
	closed := make([]peer.ID, 0, len(peers))
	for _, p := range peers {
		n := 0
		for _, c := range net.ConnsToPeer(p) {
			for _, st := range c.GetStreams() {
				if st.Stat().Direction != network.DirOutbound || !slices.Contains(pubsub.GossipSubDefaultProtocols, st.Protocol()) {
					continue
				}
				if err := st.CloseWrite(); err != nil {
					s.log.Debug("half-close gossipsub stream", "peer", p, "err", err)
					continue
				}
				n++
			}
		}
		if n > 0 {
			closed = append(closed, p)
		}
	}
	if err := s.sent.waitClosed(ctx, net, closed); err != nil {
		return fmt.Errorf("wait for %d peers to read: %w", len(closed), err)
	}
	return nil
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
