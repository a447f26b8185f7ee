package command

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/nodetest"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/rooms"
)

// checkSink asserts, for every event, what the renderers rely on: an
// error event's echo of the command line is inert on a terminal.
type checkSink struct{ bad chan string }

func (s checkSink) Emit(e events.Event) {
	if er, ok := e.(events.Error); ok && !safetext.IsClean(er.Command) {
		select {
		case s.bad <- er.Command:
		default:
		}
	}
}

// FuzzExec feeds arbitrary lines to the slash-command parser and every
// command of a running node (loopback only, no peers): Exec never panics,
// returns nil or ErrQuit, and never echoes terminal control characters.
func FuzzExec(f *testing.F) {
	for _, seed := range []string{
		"hello", "//not a command", "/help", "/id", "/peers", "/nick ann", "/nick \x1b[31m",
		"/join dev", "/join parley-invite:AQ", "/create secret", "/invite", "/switch lobby",
		"/leave dev", "/rooms", "/who", "/history lobby 5", "/history 3", "/msg nobody hi",
		"/msg 12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE hi", "/verify x", "/trust x",
		"/untrust x", "/whois x", "/connect /ip4/127.0.0.1/tcp/1", "/quit", "/JOIN\u202e", "/\xff",
		"$(rm -rf ~)", "/admin_debug", "DIAG_REQUEST", "/transfers", "/accept 00", "/reject x",
		"/cancel x", "/resume x", "/fetch parley-file:x",
	} {
		f.Add(seed)
	}
	sink := checkSink{bad: make(chan string, 1)}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, _ := nodetest.New(f, func(c *node.Config) {
		c.Nick = "fuzzer"
		c.Overlay.Logger = quiet
		c.RoomsConfig = rooms.Config{MeshWait: time.Millisecond}
		c.Emitter = sink
		c.Logger = quiet
	})
	in := New(n)
	f.Fuzz(func(t *testing.T, line string) {
		if readsLocalFile(line) {
			t.Skip("/send and /share read a local path; transfer tests cover them")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := in.Run(ctx, line, sink); err != nil && !errors.Is(err, ErrQuit) {
			t.Fatalf("Exec(%q) = %v", line, err)
		}
		select {
		case echo := <-sink.bad:
			t.Fatalf("Exec(%q) echoed %q", line, echo)
		default:
		}
	})
}

// readsLocalFile reports whether line is a command that opens and hashes
// a local file, which a fuzzer must not point at arbitrary paths.
func readsLocalFile(line string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(line, " "), " ")
	name = strings.ToLower(name)
	return name == "/send" || name == "/share"
}
