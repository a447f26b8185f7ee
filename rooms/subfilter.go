package rooms

import (
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// MaxPeerTopics is how many room topics another peer may announce at a
// time. GossipSub keeps, for every topic a peer announces, an entry that
// lives while the peer is connected; without a bound one peer could make a
// node hold millions (about 300 bytes each). Announcements beyond it are
// dropped: this node does not learn that the peer is in those rooms, and
// does not send it their messages (it can still receive the peer's).
const MaxPeerTopics = 256

// subFilter is the GossipSub subscription filter of the rooms service. It
// admits only topics that are room topics of this protocol version, and
// at most MaxPeerTopics of them per peer. GossipSub calls it from its
// event loop; the network notifications that forget a peer's topics come
// from other goroutines, hence the mutex.
type subFilter struct {
	net   network.Network
	mu    sync.Mutex
	peers map[peer.ID]map[string]struct{} // guarded by mu; topics each peer announced
}

var _ pubsub.SubscriptionFilter = (*subFilter)(nil)

func newSubFilter(n network.Network) *subFilter {
	f := &subFilter{net: n, peers: make(map[peer.ID]map[string]struct{})}
	n.Notify(f.notifiee())
	return f
}

// close stops the network notifications.
func (f *subFilter) close() { f.net.StopNotify(f.notifiee()) }

// notifiee forgets a peer's topics when its last connection closes (as
// GossipSub does).
func (f *subFilter) notifiee() network.Notifiee { return (*subFilterNotifiee)(f) }

type subFilterNotifiee subFilter

func (n *subFilterNotifiee) Disconnected(net network.Network, c network.Conn) {
	p := c.RemotePeer()
	if connected(net, p) {
		return
	}
	f := (*subFilter)(n)
	f.mu.Lock()
	delete(f.peers, p)
	f.mu.Unlock()
}

// connected reports whether p still has a connection (a limited, relayed
// one counts too).
func connected(n network.Network, p peer.ID) bool {
	c := n.Connectedness(p)
	return c == network.Connected || c == network.Limited
}

func (*subFilterNotifiee) Listen(network.Network, ma.Multiaddr)      {}
func (*subFilterNotifiee) ListenClose(network.Network, ma.Multiaddr) {}
func (*subFilterNotifiee) Connected(network.Network, network.Conn)   {}

// CanSubscribe reports whether topic is a room topic: the public prefix
// and a canonical room name, or the private prefix and 32 lowercase hex
// digits.
func (f *subFilter) CanSubscribe(topic string) bool { return isRoomTopic(topic) }

func isRoomTopic(topic string) bool {
	if name, ok := strings.CutPrefix(topic, PublicTopicPrefix); ok {
		return isCanonicalName(name)
	}
	if id, ok := strings.CutPrefix(topic, PrivateTopicPrefix); ok {
		return len(id) == 2*topicIDSize && strings.IndexFunc(id, notLowerHex) < 0
	}
	return false
}

func notLowerHex(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }

// FilterIncomingSubscriptions keeps the announcements of room topics, and
// of at most MaxPeerTopics topics per peer.
//
// GossipSub may filter an RPC that was read before its peer disconnected
// after the Disconnected notification: the topics of a peer that is no
// longer connected are not recorded, or they would stay for good. The
// check runs under mu, so a disconnection after it waits for mu and then
// forgets what was recorded.
func (f *subFilter) FilterIncomingSubscriptions(from peer.ID, subs []*pubsubpb.RPC_SubOpts) ([]*pubsubpb.RPC_SubOpts, error) {
	subs = pubsub.FilterSubscriptions(subs, f.CanSubscribe)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !connected(f.net, from) {
		delete(f.peers, from)
		return nil, nil
	}
	topics := f.peers[from]
	out := subs[:0]
	for _, s := range subs {
		t := s.GetTopicid()
		_, known := topics[t]
		switch {
		case !s.GetSubscribe():
			delete(topics, t)
		case known:
		case len(topics) >= MaxPeerTopics:
			continue
		default:
			if topics == nil {
				topics = make(map[string]struct{})
				f.peers[from] = topics
			}
			topics[t] = struct{}{}
		}
		out = append(out, s)
	}
	if len(topics) == 0 {
		delete(f.peers, from)
	}
	return out, nil
}
