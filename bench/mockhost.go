package bench

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultMocknetFrom is the room size from which the rooms scenario runs
// its members on an in-memory mocknet instead of real TCP hosts: 200 and
// more hosts' TCP, Noise and yamux do not fit 2 cores beside the work
// measured.
const DefaultMocknetFrom = 200

// mockHost adds a host with key to mn. Its address is a loopback one that
// nothing listens on: mocknet carries the bytes in memory. Stream bytes
// written through the returned host are counted by c (mocknet has no
// bandwidth reporter); libp2p's own protocols (identify) are not.
func mockHost(mn mocknet.Mocknet, key crypto.PrivKey, idx int, c *byteCounter) (host.Host, error) {
	a, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 10000+idx))
	if err != nil {
		return nil, fmt.Errorf("mock address: %w", err)
	}
	h, err := mn.AddPeer(key, a)
	if err != nil {
		return nil, fmt.Errorf("add mock peer: %w", err)
	}
	return &countingHost{Host: h, c: c}, nil
}

// countingHost counts the bytes written on the streams it opens and
// handles.
type countingHost struct {
	host.Host
	c *byteCounter
}

func (h *countingHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return &countingStream{Stream: s, c: h.c}, nil
}

func (h *countingHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(&countingStream{Stream: s, c: h.c}) })
}

func (h *countingHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(&countingStream{Stream: s, c: h.c}) })
}

type countingStream struct {
	network.Stream
	c *byteCounter
}

func (s *countingStream) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	s.c.LogSentMessageStream(int64(n), s.Protocol(), "")
	return n, err
}
