package rooms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/parley-chat/parley/internal/testnet"
)

func TestIsRoomTopic(t *testing.T) {
	keys, err := deriveKeys(testKey(1), "priv")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		topic string
		ok    bool
	}{
		{PublicTopicPrefix + "lobby", true},
		{PublicTopicPrefix + "café", true},
		{keys.topic, true},
		{PublicTopicPrefix + "Lobby", false}, // not canonical
		{PublicTopicPrefix, false},
		{PublicTopicPrefix + "a/b", false},
		{PrivateTopicPrefix + strings.Repeat("a", 31), false},
		{PrivateTopicPrefix + strings.Repeat("A", 32), false},
		{PrivateTopicPrefix + strings.Repeat("a", 33), false},
		{"parley/room/2/public/lobby", false},
		{"/ipfs/something", false},
		{"", false},
	} {
		if got := isRoomTopic(tc.topic); got != tc.ok {
			t.Errorf("isRoomTopic(%q) = %v", tc.topic, got)
		}
	}
}

func subOpts(subscribe bool, topics ...string) []*pubsubpb.RPC_SubOpts {
	out := make([]*pubsubpb.RPC_SubOpts, len(topics))
	for i := range topics {
		out[i] = &pubsubpb.RPC_SubOpts{Subscribe: &subscribe, Topicid: &topics[i]}
	}
	return out
}

func TestSubFilterBoundsTopicsPerPeer(t *testing.T) {
	a, b := testnet.NewHost(t), testnet.NewHost(t)
	f := newSubFilter(a.Network())
	defer f.close()
	testnet.Connect(t, b, a)
	var many []string
	for i := range MaxPeerTopics + 100 {
		many = append(many, fmt.Sprintf("%sroom-%d", PublicTopicPrefix, i))
	}
	many = append(many, "not/a/room/topic")
	got, err := f.FilterIncomingSubscriptions(b.ID(), subOpts(true, many...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxPeerTopics {
		t.Fatalf("admitted %d topics, want %d", len(got), MaxPeerTopics)
	}
	// Announcing a known topic again passes; a new one does not.
	first := got[0].GetTopicid()
	if again, _ := f.FilterIncomingSubscriptions(b.ID(), subOpts(true, first, PublicTopicPrefix+"one-more")); len(again) != 1 {
		t.Fatalf("re-announcement: %d", len(again))
	}
	// Leaving one makes room for another.
	if out, _ := f.FilterIncomingSubscriptions(b.ID(), subOpts(false, first)); len(out) != 1 {
		t.Fatalf("unsubscribe dropped")
	}
	if out, _ := f.FilterIncomingSubscriptions(b.ID(), subOpts(true, PublicTopicPrefix+"one-more")); len(out) != 1 {
		t.Fatalf("topic refused after a leave")
	}
	// A disconnected peer is forgotten.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.peers)
		f.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d peers remembered after disconnect", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An RPC filtered after its peer disconnected records nothing (GossipSub
// may process it after the Disconnected notification).
func TestSubFilterForgetsNothingOfGonePeers(t *testing.T) {
	a, b := testnet.NewHost(t), testnet.NewHost(t)
	f := newSubFilter(a.Network())
	defer f.close()
	got, err := f.FilterIncomingSubscriptions(b.ID(), subOpts(true, PublicTopicPrefix+"lobby"))
	if err != nil || len(got) != 0 {
		t.Fatalf("never-connected peer: %d topics, %v", len(got), err)
	}
	f.mu.Lock()
	n := len(f.peers)
	f.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d peers remembered that are not connected", n)
	}
}
