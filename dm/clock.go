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
	now := time.Now().UnixNano()
	last := s.clockWarned.Load()
	if last != 0 && time.Duration(now-last) < clockWarnEvery {
		return
	}
	if !s.clockWarned.CompareAndSwap(last, now) {
		return
	}
	s.emit.Emit(events.Error{
		Error: fmt.Sprintf("%s refused a direct message written just now as sent at an impossible time (%s by this clock): this computer's clock is probably wrong; turn on automatic time (NTP) and send again",
			overlay.ShortPeer(p), written.UTC().Format(time.RFC3339)),
		Code: events.ErrClockSkew,
	})
}
