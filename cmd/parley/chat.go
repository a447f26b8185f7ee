package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"

	slash "github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/config"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/rooms"
	"github.com/parley-chat/parley/transfer"
	"github.com/parley-chat/parley/tui"
)

// shutdownTimeout bounds a clean shutdown after /quit, EOF or a signal,
// from closing the node to writing the last events.
const shutdownTimeout = 5 * time.Second

// eventQueueLimit bounds the events waiting for the output writer.
const eventQueueLimit = 1 << 16

// chatCmd is a parsed `parley chat` command line.
type chatCmd struct {
	settings
	fs *flagSet
}

func parseChat(args []string, stdout io.Writer) (*chatCmd, error) {
	c := &chatCmd{}
	c.fs = newCommandFlags("chat", cmdChat, &c.settings)
	if err := c.fs.parse(args, stdout); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *chatCmd) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	s, fs := &c.settings, c.fs
	queue := events.NewQueue(eventQueueLimit)
	ui := s.useTUI(stdin, stdout)
	var logOut io.Writer = stderr
	var logSink *tui.LogSink
	if ui {
		// The terminal UI owns the screen: log lines go to its status
		// conversation until it closes, then to stderr again.
		logSink = tui.NewLogSink(queue)
		logOut = logSink
		defer flushLogs(logSink, queue, stderr)
	}
	logger, id, err := s.prepare(fs, stdin, stderr, logOut)
	if err != nil {
		return err
	}
	ocfg, err := s.overlayConfig()
	if err != nil {
		return err
	}
	nick := s.nick
	if nick == "" {
		nick = defaultNick(id)
	}
	if fs.given("nick") {
		if err := config.SaveNick(s.dataDir, nick); err != nil {
			return err
		}
	}

	holder, err := s.holderConfig()
	if err != nil {
		return err
	}
	grace, err := s.epochKeyGrace()
	if err != nil {
		return err
	}
	n, err := node.New(ctx, node.Config{
		RoomsConfig:       rooms.Config{EpochKeyGrace: grace},
		DataDir:           s.dataDir,
		Identity:          id,
		Nick:              nick,
		SaveNick:          func(nick string) error { return config.SaveNick(s.dataDir, nick) },
		Overlay:           ocfg,
		RelayForOwnPeople: !s.noRelayService,
		HoldMailboxes:     s.holdMailboxes,
		Holder:            holder,
		Rooms:             s.rooms,
		Transfer:          transfer.Config{DownloadDir: s.downloads, MaxFileSize: s.maxFile},
		AutoAcceptFrom:    s.autoAcceptFrom,
		AutoAcceptMax:     s.autoAcceptMax,
		Emitter:           queue,
		ConfirmShown:      true, // the line writer, or the terminal UI, confirms what it showed
		Logger:            logger,
		Version:           version,
	})
	if err != nil {
		return err
	}
	writerDone := make(chan error, 1)
	var loopErr error
	if ui {
		queue.Emit(n.Ready())
		loopErr = runTUI(ctx, n, queue, stdin, stdout, stderr)
		n.UIDone() // what comes now is not shown: Close need not wait for it
		logSink.Detach(stderr)
		writerDone <- nil
	} else {
		out := newRenderer(stdout, s.json, n)
		out.shown = n.Shown
		go func() { writerDone <- out.drain(queue) }()
		queue.Emit(n.Ready())
		loopErr = commandLoop(ctx, slash.New(n), stdin, queue)
	}

	closeErr := shutdown(n.Close, queue, writerDone)
	if loopErr != nil {
		return loopErr
	}
	return closeErr
}

// shutdown runs closeFn, closes the event queue and waits for the writer
// to flush what is left, all within shutdownTimeout: closeFn gets what
// remains after reserving shutdownFlushReserve for the writer, and the
// writer gets the rest (at least the reserve). It returns the first error
// of the two.
func shutdown(closeFn func() error, queue *events.Queue, writerDone <-chan error) error {
	return shutdownWithin(shutdownTimeout, shutdownFlushReserve, closeFn, queue, writerDone)
}

// shutdownFlushReserve is the part of shutdownTimeout kept for writing
// the last events after the node closed.
const shutdownFlushReserve = 500 * time.Millisecond

func shutdownWithin(total, flushReserve time.Duration, closeFn func() error, queue *events.Queue, writerDone <-chan error) error {
	deadline := time.Now().Add(total)
	closed := make(chan error, 1)
	go func() { closed <- closeFn() }()
	closeTimer := time.NewTimer(total - flushReserve)
	defer closeTimer.Stop()
	var closeErr error
	select {
	case closeErr = <-closed:
	case <-closeTimer.C:
		closeErr = fmt.Errorf("the node did not close within %v; exiting anyway", total-flushReserve)
	}
	queue.Close()
	flushTimer := time.NewTimer(time.Until(deadline))
	defer flushTimer.Stop()
	select {
	case err := <-writerDone:
		if err != nil && closeErr == nil {
			closeErr = err
		}
	case <-flushTimer.C:
		// Output that cannot be written in time (a stalled pipe) is
		// given up: the bound matters more.
	}
	return closeErr
}

// commandLoop feeds stdin lines to the node until EOF, /quit or ctx ends
// (SIGINT, SIGTERM). A line longer than slash.MaxLine is discarded with
// an error event on emit, and the loop goes on.
func commandLoop(ctx context.Context, interp *slash.Interp, stdin io.Reader, emit events.Emitter) error {
	// A line, or the error of a discarded one: handled in order.
	type input struct {
		line string
		long *lineTooLongError
	}
	lines := make(chan input)
	readErr := make(chan error, 1)
	go func() {
		lr := newLineReader(stdin, slash.MaxLine)
		for {
			var in input
			var err error
			in.line, err = lr.next()
			if err != nil && !errors.As(err, &in.long) {
				readErr <- err
				return
			}
			select {
			case lines <- in:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if !errors.Is(err, io.EOF) {
				return fmt.Errorf("read commands from stdin: %w", err)
			}
			return nil
		case in := <-lines:
			if in.long != nil {
				emit.Emit(events.Error{Error: in.long.Error(), Command: slash.EchoPrefix(in.long.prefix)})
				continue
			}
			if err := interp.Run(ctx, in.line, emit); errors.Is(err, slash.ErrQuit) {
				return nil
			}
		}
	}
}

// newLogger returns the text logger on stderr and installs it as the
// default. libp2p's own loggers write to the same stderr but only at warn
// and above, and only when Parley's level is info or debug: at the default
// level the user sees Parley's one-line errors, not libp2p's internals.
// GOLOG_LOG_LEVEL, when set, configures libp2p's loggers instead.
func newLogger(stderr io.Writer, level slog.Level) *slog.Logger {
	if os.Getenv("GOLOG_LOG_LEVEL") == "" {
		libp2pLevel := slog.LevelError + 100 // silent
		if level <= slog.LevelInfo {
			libp2pLevel = slog.LevelWarn
		}
		gologshim.SetDefaultHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: libp2pLevel}))
	}
	l := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(l)
	return l
}
