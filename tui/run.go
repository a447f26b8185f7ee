package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/events"
)

// Config configures Run.
type Config struct {
	// Backend is the node (required).
	Backend Backend
	// Commands runs the slash commands typed (required).
	Commands Commands
	// Events is the node's event queue (required); Run consumes it.
	Events *events.Queue
	// Input and Output are the terminal.
	Input  io.Reader
	Output io.Writer
	// NoColor drops colours (NO_COLOR).
	NoColor bool
	// Mouse turns on mouse reporting (wheel scrolling, clicks). Terminals
	// then need Shift for selecting text.
	Mouse bool
	// Logger gets what Run logs after the UI closed; it defaults to
	// slog.Default(). Do not point it at Output.
	Logger *slog.Logger
	// Shown, when set, is told of every event once the UI has taken it
	// in (Options.Shown): node.Node.Shown, with node.Config.ConfirmShown.
	Shown func(events.Event)
}

// Bounds of the runner.
const (
	// lineQueue is how many typed lines may wait for the node.
	lineQueue = 64
	// maxBatch is how many queued events one update takes at most, so
	// that a flood costs one redraw per batch, not per event.
	maxBatch = 256
	// execGrace is how long Run waits, after the UI closed, for a
	// command still running (commands take the context, which is
	// cancelled then).
	execGrace = 2 * time.Second
)

// Run shows the UI until the user leaves (Ctrl+C or /quit) or ctx ends.
// The UI's actions (typed lines, text, answers to offers) run one at a time, in order, on their
// own goroutine, so a slow command (/connect) never freezes the screen.
// Run returns after restoring the terminal; closing the node is the
// caller's job.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Backend == nil || cfg.Commands == nil || cfg.Events == nil {
		return errors.New("tui: config needs a backend, commands and an event queue")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	lines := make(chan action, lineQueue)
	submit := func(a action) bool {
		select {
		case lines <- a:
			return true
		default:
			return false
		}
	}
	st := NewStyles(lipgloss.NewRenderer(cfg.Output), cfg.NoColor)
	m := New(Options{Backend: cfg.Backend, Commands: cfg.Commands, Submit: submit, Styles: &st,
		Copy: osc52Copy(cfg.Output, os.Getenv("TERM"), os.Getenv("TMUX")), Shown: cfg.Shown})
	opts := []tea.ProgramOption{
		tea.WithInput(cfg.Input), tea.WithOutput(cfg.Output), tea.WithAltScreen(),
		// The caller's ctx carries SIGINT and SIGTERM.
		tea.WithoutSignalHandler(),
	}
	if cfg.Mouse {
		opts = append(opts, tea.WithMouseCellMotion())
	}
	p := tea.NewProgram(m, opts...)

	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		execLoop(ctx, cfg.Backend, cfg.Commands, lines, p)
	}()
	go func() {
		defer wg.Done()
		pump(ctx, cfg.Events, p)
	}()
	go func() {
		defer wg.Done()
		ticks(ctx, p)
	}()
	stop := context.AfterFunc(ctx, p.Quit)
	defer stop()

	_, err := p.Run()
	cancel()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(execGrace):
		log.Warn("a command was still running when the terminal UI closed")
	}
	if err != nil {
		return fmt.Errorf("terminal UI: %w", err)
	}
	return nil
}

// execLoop runs the UI's actions in order; /quit ends the program.
func execLoop(ctx context.Context, be Backend, cmds Commands, actions <-chan action, p *tea.Program) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-actions:
			r, err := a.do(ctx, be, cmds)
			if errors.Is(err, command.ErrQuit) {
				p.Quit()
				return
			}
			p.Send(execDoneMsg{a: a, reply: r, err: err})
		}
	}
}

// ticks makes the model refresh its snapshots every tickEvery.
func ticks(ctx context.Context, p *tea.Program) {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.Send(tickMsg(now))
		}
	}
}

// pump feeds the node's events to the program in batches.
func pump(ctx context.Context, q *events.Queue, p *tea.Program) {
	// now is done: Next on it returns only what is already queued.
	now, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	for {
		e, ok := q.Next(ctx)
		if !ok {
			return
		}
		batch := eventsMsg{e}
		for len(batch) < maxBatch {
			e, ok := q.Next(now)
			if !ok {
				break
			}
			batch = append(batch, e)
		}
		p.Send(batch)
	}
}

// LogSink is an io.Writer for the node's logger while the UI owns the
// terminal: each line becomes a LogLine event in the status
// conversation. Detach sends later lines to another writer (stderr,
// once the terminal is back).
type LogSink struct {
	mu     sync.Mutex
	emit   events.Emitter // guarded by mu; nil once detached
	direct io.Writer      // guarded by mu
}

// NewLogSink returns a sink that emits log lines to emit.
func NewLogSink(emit events.Emitter) *LogSink { return &LogSink{emit: emit} }

// Write emits one LogLine per line of p.
func (s *LogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.emit == nil {
		if s.direct == nil {
			return len(p), nil
		}
		return s.direct.Write(p)
	}
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		s.emit.Emit(LogLine{Text: l})
	}
	return len(p), nil
}

// Detach sends the lines written from now on to w.
func (s *LogSink) Detach(w io.Writer) {
	s.mu.Lock()
	s.emit, s.direct = nil, w
	s.mu.Unlock()
}

func defaultRenderer() *lipgloss.Renderer { return lipgloss.DefaultRenderer() }
