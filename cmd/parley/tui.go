package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/charmbracelet/x/term"

	slash "github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/tui"
)

// useTUI reports whether chat opens the full-screen terminal UI: stdin
// and stdout are terminals and neither --line nor --json was given. Pipes
// and scripts get line mode (or JSON) exactly as before.
func (s *settings) useTUI(stdin io.Reader, stdout io.Writer) bool {
	return !s.json && !s.line && isTerminal(stdin) && isTerminal(stdout)
}

func isTerminal(v any) bool {
	f, ok := v.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(f.Fd())
}

// runTUI shows the terminal UI (docs/TUI.md) until the user leaves with
// Ctrl+C or /quit, or ctx ends (SIGINT, SIGTERM). Colours follow NO_COLOR.
// What Run itself logs comes after the screen is restored: it goes to
// stderr.
func runTUI(ctx context.Context, n *node.Node, queue *events.Queue, stdin io.Reader, stdout, stderr io.Writer) error {
	return tui.Run(ctx, tui.Config{
		Backend:  n,
		Commands: slash.New(n),
		Events:   queue,
		Input:    stdin,
		Output:   stdout,
		NoColor:  os.Getenv("NO_COLOR") != "",
		Mouse:    true,
		Logger:   slog.New(slog.NewTextHandler(stderr, nil)),
		Shown:    n.Shown,
	})
}

// flushLogs writes the log lines the UI never showed (the node failed to
// start, or they came as it closed) to w, and sends later ones there.
func flushLogs(sink *tui.LogSink, queue *events.Queue, w io.Writer) {
	sink.Detach(w)
	queue.Close()
	for {
		e, ok := queue.Next(context.Background())
		if !ok {
			return
		}
		if l, isLog := e.(tui.LogLine); isLog {
			_, _ = io.WriteString(w, l.Text+"\n")
		}
	}
}
