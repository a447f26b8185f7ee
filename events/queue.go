package events

import (
	"context"
	"sync"
)

// Queue is an Emitter that never blocks the emitting goroutine: events wait
// in memory until the consumer calls Next. At most limit events wait; past
// that, Emit drops the newest event and counts it in Dropped, so a flood
// cannot exhaust memory. Room floods are bounded by the rooms rate limit
// long before this.
type Queue struct {
	mu      sync.Mutex
	items   []Event // guarded by mu
	dropped uint64  // guarded by mu
	closed  bool    // guarded by mu
	limit   int
	notify  chan struct{} // capacity 1: "items may be non-empty"
}

// NewQueue returns an empty queue holding at most limit events.
func NewQueue(limit int) *Queue {
	return &Queue{limit: limit, notify: make(chan struct{}, 1)}
}

// Emit appends e. It never blocks.
func (q *Queue) Emit(e Event) {
	q.mu.Lock()
	if q.closed || len(q.items) >= q.limit {
		if !q.closed {
			q.dropped++
		}
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// Next waits for the next event. ok is false when ctx is done, or when the
// queue is closed and drained.
func (q *Queue) Next(ctx context.Context) (e Event, ok bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			e = q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			q.mu.Unlock()
			return e, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// Close stops accepting events; Next drains what is queued, then reports
// ok=false.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// Dropped returns how many events were dropped because the queue was full.
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
