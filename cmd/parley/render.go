package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/node"
)

// renderer writes events to stdout: one JSON object per line with --json,
// human-readable lines otherwise. Text from peers is made inert.
type renderer struct {
	w    *bufio.Writer
	json bool
	// lastProgress throttles progress lines for people to one a second
	// per transfer (JSON mode gets every event).
	lastProgress map[string]time.Time
}

// humanProgressEvery is the least time between two progress lines of one
// transfer in human mode.
const humanProgressEvery = time.Second

func newRenderer(w io.Writer, json bool) *renderer {
	return &renderer{w: bufio.NewWriter(w), json: json, lastProgress: make(map[string]time.Time)}
}

// skip reports whether a human-mode progress line is too soon after the
// previous one of the same transfer.
func (r *renderer) skip(e events.Event) bool {
	switch e := e.(type) {
	case events.FileProgress:
		if e.Bytes >= e.Size {
			return false
		}
		now := time.Now()
		if now.Sub(r.lastProgress[e.TransferID]) < humanProgressEvery {
			return true
		}
		r.lastProgress[e.TransferID] = now
	case events.FileDone:
		delete(r.lastProgress, e.TransferID)
	case events.FileFailed:
		delete(r.lastProgress, e.TransferID)
	}
	return false
}

// drain writes events until the queue is closed and empty.
func (r *renderer) drain(q *events.Queue) error {
	ctx := context.Background()
	var firstErr error
	for {
		e, ok := q.Next(ctx)
		if !ok {
			if err := r.w.Flush(); err != nil && firstErr == nil {
				firstErr = err
			}
			return firstErr
		}
		if err := r.write(e); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("write event: %w", err)
		}
	}
}

func (r *renderer) write(e events.Event) error {
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
	} else if _, err := io.WriteString(r.w, humanLine(e)+"\n"); err != nil {
		return err
	}
	return r.w.Flush()
}

// humanLine renders an event for people. Every field goes through
// safetext, also those the node fills itself (addresses may come from
// peers: a DNS name can hold escapes); multi-line answers of our own
// (help, /id) keep their layout.
func humanLine(e events.Event) string {
	l := safetext.Line
	switch e := e.(type) {
	case events.Ready:
		var b strings.Builder
		fmt.Fprintf(&b, "* ready: %s (%s), peer id %s", l(e.Nick), l(e.Fingerprint), l(e.PeerID))
		for _, a := range e.Addrs {
			fmt.Fprintf(&b, "\n*   listening on %s", l(a))
		}
		return b.String()
	case events.PeerConnected:
		return fmt.Sprintf("* connected: %s (%s)", l(e.PeerID), l(e.Addr))
	case events.PeerDisconnected:
		if e.Reason == "liveness" {
			return fmt.Sprintf("* disconnected: %s (stopped answering pings)", l(e.PeerID))
		}
		return fmt.Sprintf("* disconnected: %s", l(e.PeerID))
	case events.Error:
		return "! " + safetext.Line(e.Error)
	case events.Info:
		return safetext.Block(e.Text)
	case events.Message:
		return node.FormatMessage(e)
	case events.Joined:
		return fmt.Sprintf("* joined #%s", safetext.Line(e.Room))
	case events.Left:
		return fmt.Sprintf("* left #%s", safetext.Line(e.Room))
	case events.Presence:
		state := "is here"
		if !e.Online {
			state = "is gone"
		}
		return fmt.Sprintf("* #%s: %s (%s) %s", safetext.Line(e.Room), safetext.Line(e.Nick), shortID(e.PeerID), state)
	case events.Reachability:
		line := "* reachability: " + l(e.Reachability)
		if len(e.Relays) > 0 {
			line += fmt.Sprintf(", reachable through %d relay(s)", len(e.Relays))
		}
		return line
	case events.PeerPath:
		return fmt.Sprintf("* %s now %s (was %s) via %s", shortID(e.PeerID), l(e.Path), l(e.Previous), l(e.Addr))
	case events.DM:
		return fmt.Sprintf("[%s] [dm] <%s %s> %s", clock(e.SentAt), safetext.Line(e.Nick), shortID(e.From), safetext.Line(e.Text))
	case events.DMStatus:
		line := fmt.Sprintf("  (dm %s to %s: %s", shortHex(e.ID), shortID(e.To), l(e.State))
		if e.Error != "" {
			line += ": " + safetext.Line(e.Error)
		}
		return line + ")"
	case events.FileOffer:
		where := "from " + shortID(e.From)
		if e.Room != "" {
			where = fmt.Sprintf("shared in #%s by %s; /fetch %s", safetext.Line(e.Room), shortID(e.From), shortHex(e.TransferID))
		} else {
			where += fmt.Sprintf("; /accept %s or /reject %s", shortHex(e.TransferID), shortHex(e.TransferID))
		}
		return fmt.Sprintf("* file offer %s: %s (%s) %s", shortHex(e.TransferID), safetext.Line(e.Name), node.FormatBytes(e.Size), where)
	case events.FileProgress:
		return fmt.Sprintf("  %s %s %s", shortHex(e.TransferID), l(e.Direction), node.FormatProgress(e.Bytes, e.Size, e.Rate))
	case events.FileDone:
		return fmt.Sprintf("* file %s done: %s (%s, blake3 %s)", shortHex(e.TransferID), safetext.Line(e.Path), node.FormatBytes(e.Size), shortHex(e.Hash))
	case events.FileFailed:
		return fmt.Sprintf("! file %s failed: %s", shortHex(e.TransferID), safetext.Line(e.Error))
	case events.FileRejected:
		return fmt.Sprintf("* file %s was rejected", shortHex(e.TransferID))
	case events.TrustWarning:
		return "!!! WARNING: " + safetext.Line(e.Text)
	default:
		b, err := events.MarshalJSON(e)
		if err != nil {
			return "! cannot render " + e.Type() + " event"
		}
		return "* " + safetext.Line(string(b))
	}
}

// clock renders a time as local HH:MM.
func clock(t time.Time) string { return t.Local().Format("15:04") }

// shortID abbreviates a peer ID for display: its last 6 characters.
func shortID(id string) string {
	if len(id) <= 8 {
		return safetext.Line(id)
	}
	return "…" + safetext.Line(id[len(id)-6:])
}

// shortHex abbreviates a message or transfer ID.
func shortHex(id string) string {
	if len(id) <= 8 {
		return safetext.Line(id)
	}
	return safetext.Line(id[:8])
}
