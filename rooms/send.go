package rooms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/rooms/pb"
)

// Send publishes a chat line in a joined room and returns it as it will be
// delivered. The node's own subscription delivers it too, which emits the
// same message event (and stores it in the history). Publishing right
// after joining waits up to MeshWait for a peer on the room's topic.
func (s *Service) Send(ctx context.Context, name, text string) (events.Message, error) {
	r, err := s.joined(name)
	if err != nil {
		return events.Message{}, err
	}
	if err := checkText(text); err != nil {
		return events.Message{}, err
	}
	nick := s.cfg.Nick()
	env, err := newEnvelope(pb.Kind_KIND_TEXT, nick, s.nextSentAt())
	if err != nil {
		return events.Message{}, err
	}
	env.text = text
	if err := s.publish(ctx, r, &outgoing{env: env}, true); err != nil {
		return events.Message{}, err
	}
	return s.messageEvent(r, s.self, &env, r.nickShared(s.self, s.self, nick, nick)), nil
}

// nextSentAt is the sent_at of this node's next line: the wall clock, but
// at least a millisecond after the previous line's. History is ordered by
// sent_at in milliseconds, and lines sent in one millisecond (a paced
// burst, now that delivery no longer slows the sender with a store write
// per message) would otherwise be kept in the random order of their IDs.
func (s *Service) nextSentAt() time.Time {
	for {
		now := s.wallNow()
		last := s.lastSentMs.Load()
		ms := max(now.UnixMilli(), last+1)
		if s.lastSentMs.CompareAndSwap(last, ms) {
			if ms == now.UnixMilli() {
				return now
			}
			return time.UnixMilli(ms)
		}
	}
}

// ShareFile announces a file in a joined room. Other members' services
// emit a FileShared event for it.
func (s *Service) ShareFile(ctx context.Context, name string, share FileShare) error {
	r, err := s.joined(name)
	if err != nil {
		return err
	}
	if err := share.Validate(); err != nil {
		return err
	}
	env, err := newEnvelope(pb.Kind_KIND_FILE_SHARE, s.cfg.Nick(), time.Now())
	if err != nil {
		return err
	}
	env.file = share
	return s.publish(ctx, r, &outgoing{env: env}, true)
}

// publish encodes out.env and publishes it, first waiting (bounded, see
// waitPeers) for a peer on the topic if wait is set. The local validator
// runs synchronously inside Publish and fills in out's verdict and
// sequence number.
func (s *Service) publish(ctx context.Context, r *room, out *outgoing, wait bool) error {
	env := &out.env
	if err := identity.ValidateNick(env.nick); err != nil {
		return fmt.Errorf("own nick: %w", err)
	}
	if wait {
		if err := s.waitPeers(ctx, r); err != nil {
			return err
		}
	}
	data, err := s.encode(r, env)
	if err != nil {
		return err
	}
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: message of %d bytes over the %d limit", ErrInvalidText, len(data), MaxMessageSize)
	}
	err = r.topic.Publish(ctx, data, pubsub.WithValidatorData(out))
	switch {
	case err == nil:
		return nil
	case out.v.reason == reasonRate:
		return fmt.Errorf("%w in %s: at most %d messages at once, then %v per second", ErrRateLimited, r.name, s.cfg.RateBurst, float64(s.cfg.RateLimit))
	case out.v.reason == reasonClosed:
		return ErrClosed
	case errors.Is(err, pubsub.ErrTopicClosed):
		return fmt.Errorf("%w: %q", ErrNotJoined, r.name)
	case out.v.reason != "" && out.v.reason != reasonOK:
		return fmt.Errorf("%w in %s: refused by own validator (%s)", ErrPublish, r.name, out.v.reason)
	default:
		return fmt.Errorf("%w in %s: %w", ErrPublish, r.name, err)
	}
}

// waitPeers waits until the room's topic has a peer, at most until MeshWait
// after joining. Flood publishing then sends to every peer on the topic.
//
// GossipSub announces a peer on the topic (PeerJoin) when its subscription
// arrives, but lists it (ListPeers, the peers it would send to) only once
// its own stream to the peer is open, which can come later and has no
// event of its own. So after a PeerJoin, and as a safety net without one,
// the topic is checked again after peerPollMin, doubling to peerPollMax.
func (s *Service) waitPeers(ctx context.Context, r *room) error {
	deadline := r.joinedAt.Add(s.cfg.MeshWait)
	poll := peerPollMax
	for {
		wake := r.peerWait()
		if len(r.topic.ListPeers()) > 0 {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(min(left, poll))
		select {
		case <-wake:
			t.Stop()
			poll = peerPollMin
		case <-t.C:
			poll = min(2*poll, peerPollMax)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for peers in %s: %w", r.name, ctx.Err())
		}
	}
}

// Bounds of the interval at which waitPeers checks the topic again.
const (
	peerPollMin = 5 * time.Millisecond
	peerPollMax = 250 * time.Millisecond
)

// announceLeaving publishes a leaving presence in each room, in parallel,
// and waits until GossipSub has handed each to the transport for every
// peer on the room's topic: at most leaveAnnounceTimeout in all. When the
// node is closing (its host closes next), it then also waits, within the
// same bound, until those peers have read the announcements (flushGossip):
// a stream write only queues the bytes in the connection's muxer, and
// closing the host drops what the muxer has not sent yet.
func (s *Service) announceLeaving(rs []*room, closing bool) {
	ctx, cancel := context.WithTimeout(s.ctx, leaveAnnounceTimeout)
	defer cancel()
	s.sent.watch()
	defer s.sent.unwatch()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written = make(map[peer.ID]struct{})
	)
	for _, r := range rs {
		wg.Go(func() {
			peers, err := s.announceLeavingIn(ctx, r)
			if err != nil {
				s.log.Debug("leaving announcement", "room", r.name, "err", err)
				return
			}
			mu.Lock()
			for _, p := range peers {
				written[p] = struct{}{}
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if !closing || len(written) == 0 {
		return
	}
	if err := s.flushGossip(ctx, slices.Collect(maps.Keys(written))); err != nil {
		s.log.Debug("leaving announcement", "step", "flush", "err", err)
	}
}

// announceLeavingIn publishes a leaving presence in r and waits until it
// was written to the peers on r's topic, which it returns. The caller
// watches s.sent.
func (s *Service) announceLeavingIn(ctx context.Context, r *room) ([]peer.ID, error) {
	peers := r.topic.ListPeers()
	env, err := newEnvelope(pb.Kind_KIND_PRESENCE, s.cfg.Nick(), time.Now())
	if err != nil {
		return nil, err
	}
	env.leaving = true
	out := &outgoing{env: env}
	if err := s.publish(ctx, r, out, false); err != nil {
		return nil, err
	}
	if err := s.sent.wait(ctx, s.cfg.Host.Network(), out.seqno, peers); err != nil {
		return nil, fmt.Errorf("write to %d peers: %w", len(peers), err)
	}
	return peers, nil
}
