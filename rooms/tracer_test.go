package rooms

import (
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// testTracer is a pubsub.RawTracer that reports the events tests wait for.
type testTracer struct {
	onReject func(m *pubsub.Message, reason string)
	onGraft  func(p peer.ID, topic string)
	onPrune  func(p peer.ID, topic string)
}

func (tr *testTracer) RejectMessage(m *pubsub.Message, reason string) {
	if tr.onReject != nil {
		tr.onReject(m, reason)
	}
}

func (tr *testTracer) Graft(p peer.ID, topic string) {
	if tr.onGraft != nil {
		tr.onGraft(p, topic)
	}
}

func (tr *testTracer) Prune(p peer.ID, topic string) {
	if tr.onPrune != nil {
		tr.onPrune(p, topic)
	}
}

func (*testTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (*testTracer) RemovePeer(peer.ID)                                   {}
func (*testTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*testTracer) OnClosedOutboundStream(peer.ID)                       {}
func (*testTracer) Join(string)                                          {}
func (*testTracer) Leave(string)                                         {}
func (*testTracer) ValidateMessage(*pubsub.Message)                      {}
func (*testTracer) DeliverMessage(*pubsub.Message)                       {}
func (*testTracer) DuplicateMessage(*pubsub.Message)                     {}
func (*testTracer) ThrottlePeer(peer.ID)                                 {}
func (*testTracer) RecvRPC(*pubsub.RPC)                                  {}
func (*testTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*testTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*testTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*testTracer) UndeliverableMessage(*pubsub.Message)                 {}
