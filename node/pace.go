package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/rooms"
)

// maxPace bounds how long Say holds a line for the room's rate limit: a
// bot may write lines faster than the room takes them (a burst of 10,
// then 2 a second by default), and they go out paced instead of failing,
// until 30 s worth of them wait.
const maxPace = 30 * time.Second

// paceMargin is the share of the room's rate this node's own lines use.
const paceMargin = 0.8

// pacer returns the token bucket of this node's own lines in room: the
// bucket every member applies to them (rooms.Config.RateLimit), with a
// margin (paceMargin of the rate, one token less of burst), because a
// receiver sees the lines with network jitter: two lines sent exactly
// one token apart can arrive closer and be refused there.
func (n *Node) pacer(room string) *rate.Limiter {
	key := room
	if c, err := rooms.NormalizeName(room); err == nil {
		key = c
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pacers == nil {
		n.pacers = make(map[string]*rate.Limiter)
	}
	lim, ok := n.pacers[key]
	if !ok {
		every, burst := n.rooms.RateLimits()
		lim = rate.NewLimiter(every*paceMargin, max(burst-1, 1))
		n.pacers[key] = lim
	}
	return lim
}

// pace waits until room's bucket has a token for one more line, at most
// maxPace; a line that would wait longer is refused with
// rooms.ErrRateLimited.
func (n *Node) pace(ctx context.Context, room string) error {
	lim := n.pacer(room)
	r := lim.Reserve()
	d := r.Delay()
	if !r.OK() || d > maxPace {
		r.Cancel()
		return fmt.Errorf("%w in %s: more than %v of lines are already waiting for the room's rate limit (%v a second)", rooms.ErrRateLimited, room, maxPace, float64(lim.Limit()))
	}
	if d == 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sayPaced sends text to room at the room's pace. If the room's own
// validator still finds the bucket empty (its clock and ours differ by
// a little), it waits one token's time and tries once more.
func (n *Node) sayPaced(ctx context.Context, room, text string) (msg events.Message, err error) {
	if err := n.pace(ctx, room); err != nil {
		return msg, err
	}
	msg, err = n.rooms.Send(ctx, room, text)
	if !errors.Is(err, rooms.ErrRateLimited) {
		return msg, err
	}
	every, _ := n.rooms.RateLimits()
	if every <= 0 {
		return msg, err
	}
	t := time.NewTimer(time.Duration(float64(time.Second) / float64(every)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return msg, ctx.Err()
	case <-t.C:
	}
	return n.rooms.Send(ctx, room, text)
}
