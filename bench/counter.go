package bench

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// byteCounter is a metrics.Reporter that counts the bytes hosts write to
// their streams, in total and on GossipSub's protocols, exactly and at
// once (libp2p's BandwidthCounter updates its totals once a second). One
// counter may serve many hosts. Its Get methods report nothing.
type byteCounter struct {
	out, pubsubOut, syncOut atomic.Int64
}

var _ metrics.Reporter = (*byteCounter)(nil)

// syncProtoPrefix starts the room sync's protocol IDs.
const syncProtoPrefix = "/parley/rooms/sync/"

func isPubSub(p protocol.ID) bool {
	return strings.HasPrefix(string(p), "/meshsub/") || strings.HasPrefix(string(p), "/floodsub/")
}

func (c *byteCounter) LogSentMessage(int64) {}
func (c *byteCounter) LogRecvMessage(int64) {}
func (c *byteCounter) LogSentMessageStream(n int64, p protocol.ID, _ peer.ID) {
	c.out.Add(n)
	switch {
	case isPubSub(p):
		c.pubsubOut.Add(n)
	case strings.HasPrefix(string(p), syncProtoPrefix):
		c.syncOut.Add(n)
	}
}
func (c *byteCounter) LogRecvMessageStream(int64, protocol.ID, peer.ID)  {}
func (c *byteCounter) GetBandwidthForPeer(peer.ID) metrics.Stats         { return metrics.Stats{} }
func (c *byteCounter) GetBandwidthForProtocol(protocol.ID) metrics.Stats { return metrics.Stats{} }
func (c *byteCounter) GetBandwidthTotals() metrics.Stats                 { return metrics.Stats{} }
func (c *byteCounter) GetBandwidthByPeer() map[peer.ID]metrics.Stats     { return nil }
func (c *byteCounter) GetBandwidthByProtocol() map[protocol.ID]metrics.Stats {
	return nil
}
func (c *byteCounter) Reset()             {}
func (c *byteCounter) TrimIdle(time.Time) {}
