package dm

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/dm/pb"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/overlay"
)

// clockWarnEvery bounds how often a refused timestamp warns the user.
const clockWarnEvery = 10 * time.Minute

// clockRefused tells the user, at most once per clockWarnEvery, that a
// recipient refused a message as sent at an impossible time although this
// node wrote it moments ago: this node's clock is what is off (a +1 day
// clock has every DM refused). An old message refused for its age says
// nothing about the clock and does not warn.
func (s *Service) clockRefused(p peer.ID, rec *pb.OutboxRecord) {
	written := time.UnixMilli(rec.CreatedMs)
	if time.Since(written).Abs() > time.Minute {
		return
	}
	if !s.clockWarnDue() {
		return
	}
	s.emit.Emit(events.Error{
		Error: fmt.Sprintf("%s refused a direct message written just now as sent at an impossible time (%s by this clock): this computer's clock is probably wrong "+
			"(or the recipient's); turn on automatic time (NTP) and send again",
			overlay.ShortPeer(p), written.UTC().Format(time.RFC3339)),
		Code: events.ErrClockSkew,
	})
}

// clockFuture tells the user, at most once per clockWarnEvery (shared
// with clockRefused), that a direct message was refused as sent in the
// future by this node's clock: a clock behind by more than MaxClockSkew
// refuses every honest sender's messages, which the senders see failed
// while this node's user would hear nothing. A sender that lies about the
// time can make this warning appear, no more.
func (s *Service) clockFuture(p peer.ID, sent, now time.Time) {
	if !s.clockWarnDue() {
		return
	}
	s.log.Warn("dm: refused a message sent in the future", "peer", p, "ahead", sent.Sub(now).Round(time.Minute))
	s.emit.Emit(events.Error{
		Error: fmt.Sprintf("refused a direct message from %s sent %s ahead of this computer's clock: if this clock is behind, set it right "+
			"(turn on automatic time, NTP), or direct messages from every peer are refused",
			overlay.ShortPeer(p), sent.Sub(now).Round(time.Minute)),
		Code: events.ErrClockSkew,
	})
}

// clockWarnDue reports whether a clock warning may be given now (none in
// the last clockWarnEvery), and records it as given.
func (s *Service) clockWarnDue() bool {
	now := time.Now().UnixNano()
	last := s.clockWarned.Load()
	if last != 0 && time.Duration(now-last) < clockWarnEvery {
		return false
	}
	return s.clockWarned.CompareAndSwap(last, now)
}
