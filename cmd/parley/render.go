package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/charmbracelet/x/term"

	slash "github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/present"
)

// renderer writes events to stdout: one JSON object per line with --json,
// human-readable lines otherwise. Text from peers is made inert.
type renderer struct {
	w    *bufio.Writer
	json bool
	// namer names peers in human mode; it may be nil.
	namer present.Namer
	// lastProgress throttles progress lines for people to one a second
	// per transfer (JSON mode gets every event).
	lastProgress map[string]time.Time
	// shown, when set, is told of every event once it is written out and
	// flushed (node.Config.ConfirmShown).
	shown func(events.Event)
	// inPlace: w is a terminal, so a progress line is redrawn where it
	// stands instead of adding a line each time; open says the cursor
	// still stands at the end of one (no line break written yet).
	inPlace, open bool
}

// humanProgressEvery is the least time between two progress lines of one
// transfer in human mode.
const humanProgressEvery = time.Second

func newRenderer(w io.Writer, json bool, namer present.Namer) *renderer {
	r := &renderer{w: bufio.NewWriter(w), json: json, namer: namer, lastProgress: make(map[string]time.Time)}
	if f, ok := w.(*os.File); ok && !json && term.IsTerminal(f.Fd()) {
		r.inPlace = true
	}
	return r
}

// skip reports whether a human-mode progress line is too soon after the
// previous one of the same transfer.
func (r *renderer) skip(e events.Event) bool {
	switch e := e.(type) {
	case events.FileProgress:
		if e.Waiting {
			return false // the change of state, always shown
		}
		return r.tooSoon(e.TransferID, e.Bytes, e.Size)
	case events.FileHashing:
		return r.tooSoon(e.TransferID, e.Bytes, e.Size)
	case events.FileDone:
		delete(r.lastProgress, e.TransferID)
	case events.FileFailed:
		delete(r.lastProgress, e.TransferID)
	case events.DMStatus:
		// Line mode shows a private message queued (or why it waits),
		// then delivered or failed: "sent" is only a step between.
		return e.State == events.DMSent && e.Reason == ""
	case events.RoomSync:
		// Line mode shows where a sync ends (complete, gaps) and being
		// cut off (waiting), not each session starting.
		return e.State == events.SyncSyncing
	}
	return false
}

// isProgress reports whether e is a progress line, which a terminal shows
// in place.
func isProgress(e events.Event) bool {
	switch e.(type) {
	case events.FileProgress, events.FileHashing:
		return true
	}
	return false
}

// tooSoon reports whether a progress line of a transfer came less than
// humanProgressEvery after the last one shown; the first and the last
// (bytes = size) are always shown.
func (r *renderer) tooSoon(id string, bytes, size int64) bool {
	if bytes >= size {
		return false
	}
	now := time.Now()
	if now.Sub(r.lastProgress[id]) < humanProgressEvery {
		return true
	}
	r.lastProgress[id] = now
	return false
}

// drain writes events until the queue is closed and empty.
func (r *renderer) drain(q *events.Queue) error {
	ctx := context.Background()
	var firstErr error
	for {
		e, ok := q.Next(ctx)
		if !ok {
			if r.open {
				_, _ = io.WriteString(r.w, "\n") // a write error shows in Flush
				r.open = false
			}
			if err := r.w.Flush(); err != nil && firstErr == nil {
				firstErr = err
			}
			return firstErr
		}
		err := r.write(e)
		if err == nil && r.shown != nil {
			r.shown(e)
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("write event: %w", err)
		}
	}
}

func (r *renderer) write(e events.Event) error {
	if sa, ok := e.(node.ShareAnnounced); ok {
		e = slash.ShareInfo(sa)
	}
	if r.json {
		b, err := events.MarshalJSON(e)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if _, err := r.w.Write(b); err != nil {
			return err
		}
	} else if r.skip(e) {
		return nil
	} else if err := r.writeHuman(e); err != nil {
		return err
	}
	return r.w.Flush()
}

// writeHuman writes e's line for people; on a terminal a progress line
// replaces the one before it, and the next other line starts below it.
func (r *renderer) writeHuman(e events.Event) error {
	line := r.humanLine(e)
	switch {
	case r.inPlace && isProgress(e):
		line = "\r\x1b[K" + line
		r.open = true
	case r.open:
		line = "\n" + line + "\n"
		r.open = false
	default:
		line += "\n"
	}
	_, err := io.WriteString(r.w, line)
	return err
}

// humanLine renders an event for people (package present).
func (r *renderer) humanLine(e events.Event) string { return present.Event(e, r.namer) }
