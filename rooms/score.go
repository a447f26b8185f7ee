package rooms

import (
	"net"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer scoring. Values are documented in docs/PROTOCOL.md; in short,
// a peer earns up to +3 for time in a room's mesh and up to +10 for being
// first to deliver valid messages, and loses 10 x (invalid messages)^2,
// decaying over an hour: the first rejected message puts it below the
// gossip threshold, the third below the graylist threshold, where every RPC
// it sends is dropped.
const (
	scoreGossipThreshold    = -10
	scorePublishThreshold   = -50
	scoreGraylistThreshold  = -80
	scoreAcceptPXThreshold  = 100 // peer exchange is off; no peer reaches this
	scoreOpportunisticGraft = 1
	scoreTopicCap           = 20
	scoreInvalidWeight      = -10
	scoreIPColocationWeight = -5
	scoreIPColocationLimit  = 8
	scoreBehaviourWeight    = -10
	scoreBehaviourThreshold = 6
	scoreRetain             = 10 * time.Minute
)

func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:            map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:     scoreTopicCap,
		AppSpecificScore:  func(peer.ID) float64 { return 0 },
		AppSpecificWeight: 1,
		// Many peers behind one address (a campus NAT) lose a little;
		// loopback peers are other local processes and are exempt.
		IPColocationFactorWeight:    scoreIPColocationWeight,
		IPColocationFactorThreshold: scoreIPColocationLimit,
		IPColocationFactorWhitelist: []*net.IPNet{
			{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)},
			{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		},
		BehaviourPenaltyWeight:    scoreBehaviourWeight,
		BehaviourPenaltyThreshold: scoreBehaviourThreshold,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             pubsub.DefaultDecayInterval,
		DecayToZero:               pubsub.DefaultDecayToZero,
		RetainScore:               scoreRetain,
	}
}

func peerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             scoreGossipThreshold,
		PublishThreshold:            scorePublishThreshold,
		GraylistThreshold:           scoreGraylistThreshold,
		AcceptPXThreshold:           scoreAcceptPXThreshold,
		OpportunisticGraftThreshold: scoreOpportunisticGraft,
	}
}

// topicScoreParams are set on every room topic. Mesh delivery rate
// penalties (P3, P3b) are off: a quiet room would otherwise punish every
// member for delivering nothing.
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  300,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      10,
		InvalidMessageDeliveriesWeight: scoreInvalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}
