// Package command is Parley's slash-command language: it parses one line
// typed by a user ("/join dev", "/msg bob hi", or text for the current
// room) into a call of the node's typed operations and answers with a
// Reply. Line mode and JSON mode (cmd/parley) and the terminal UI (tui)
// run typed lines through it; the terminal UI calls the node directly for
// what it does on its own (text in the room or conversation shown,
// accepting an offer with a key).
//
// An Interp holds one session's state: its current room, where text and
// room commands without a ROOM go. Its methods are safe for concurrent
// use, but lines should run one at a time, in order.
package command

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/present"
)

// MaxLine bounds one line typed by a user (64 KiB); longer lines are
// refused whole.
const MaxLine = 64 << 10

// Errors of the command language; match them with errors.Is.
var (
	// ErrQuit is returned by Exec for /quit.
	ErrQuit = errors.New("quit")
	// ErrNoCurrentRoom: text or a room command without ROOM, and no
	// current room.
	ErrNoCurrentRoom = errors.New("no current room; /join one first")
	// ErrUnknownCommand: the line names no command.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrUsage: the arguments do not fit the command.
	ErrUsage = errors.New("usage")
	// ErrTooLong: the line is longer than MaxLine.
	ErrTooLong = errors.New("line too long")
)

// Reply is the answer to one line.
type Reply struct {
	// Text is the human answer ("" when the command has none: its
	// events tell what happened); Data the same answer as structured
	// fields for JSON mode (events.Info.Data).
	Text string
	Data any
	// RoomChanged: the command changed the current room (to Room, ""
	// for none): /join, /create, /switch, /leave of the current room.
	RoomChanged bool
	Room        string
	// Peer is the peer a /msg or /send went to.
	Peer peer.ID
}

// Info is the reply as an info event, and whether there is one.
func (r Reply) Info() (events.Info, bool) {
	return events.Info{Text: r.Text, Data: r.Data}, r.Text != ""
}

// Info describes one command.
type Info struct {
	Name  string // without the slash
	Usage string // arguments, e.g. "PEER TEXT"
	Help  string
	// Secret commands carry a secret in their arguments: errors show
	// only the command name, and input histories skip them.
	Secret bool
}

type command struct {
	Info
	run func(ctx context.Context, args string) (Reply, error)
}

// Interp runs command lines against a node.
type Interp struct {
	n        *node.Node
	commands map[string]*command
	list     []Info // sorted by name

	mu      sync.Mutex
	current string // guarded by mu
}

// New returns an interpreter for n whose current room is n's start room.
func New(n *node.Node) *Interp {
	in := &Interp{n: n, commands: make(map[string]*command), current: n.StartRoom()}
	for _, group := range [][]*command{in.coreCommands(), in.roomCommands(), in.memberCommands(), in.dmCommands(), in.transferCommands()} {
		for _, c := range group {
			in.commands[c.Name] = c
			in.list = append(in.list, c.Info)
		}
	}
	slices.SortFunc(in.list, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return in
}

// Commands lists the commands, sorted by name.
func (in *Interp) Commands() []Info { return slices.Clone(in.list) }

// Current returns the current room, "" when none.
func (in *Interp) Current() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.current
}

// SetCurrent makes room (a joined room's canonical name, or "") the
// current room, as a user interface does when it shows a room.
func (in *Interp) SetCurrent(room string) {
	in.mu.Lock()
	in.current = room
	in.mu.Unlock()
}

// Exec runs one line: a slash command, or text for the current room
// ("//text" sends "/text"). It returns ErrQuit for /quit.
func (in *Interp) Exec(ctx context.Context, line string) (Reply, error) {
	line = strings.TrimRightFunc(line, unicode.IsSpace)
	if line == "" {
		return Reply{}, nil
	}
	if len(line) > MaxLine {
		return Reply{}, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLong, len(line), MaxLine)
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		return in.say(ctx, strings.TrimPrefix(line, "/"))
	}
	name, args, _ := strings.Cut(line[1:], " ")
	c, ok := in.commands[strings.ToLower(name)]
	if !ok {
		return Reply{}, fmt.Errorf("%w /%s; type /help for the list", ErrUnknownCommand, safetext.Line(present.Truncate(name, 40)))
	}
	return c.run(ctx, strings.TrimSpace(args))
}

// Run is Exec for line and JSON mode: the reply goes to emit as an info
// event, a failure as an error event naming the line (see Echo). It
// returns ErrQuit for /quit and nil otherwise.
func (in *Interp) Run(ctx context.Context, line string, emit events.Emitter) error {
	r, err := in.Exec(ctx, line)
	switch {
	case errors.Is(err, ErrQuit):
		return ErrQuit
	case err != nil:
		emit.Emit(events.Error{Error: err.Error(), Command: in.Echo(line)})
	default:
		if e, ok := r.Info(); ok {
			emit.Emit(e)
		}
	}
	return nil
}

// Echo is how a line is shown back in an error: without the arguments of
// a secret command, else its first 200 bytes; always inert.
func (in *Interp) Echo(line string) string {
	line = strings.TrimRightFunc(line, unicode.IsSpace)
	if strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//") {
		name, _, _ := strings.Cut(line[1:], " ")
		if c, ok := in.commands[strings.ToLower(name)]; ok && c.Secret {
			return "/" + c.Name + " …"
		}
	}
	return safetext.Line(present.Truncate(line, 200))
}

// EchoPrefix is Echo for a line of which only the start is known (it was
// too long to keep): the command name alone for a command, since its
// arguments may be a secret, else the start of the text.
func EchoPrefix(prefix string) string {
	if strings.HasPrefix(prefix, "/") && !strings.HasPrefix(prefix, "//") {
		name, _, _ := strings.Cut(prefix[1:], " ")
		return "/" + safetext.Line(present.Cut(name, 40)) + " …"
	}
	return safetext.Line(present.Cut(prefix, 200)) + "…"
}

// room resolves an optional ROOM argument: the current room when empty.
func (in *Interp) room(arg string) (string, error) {
	if arg == "" {
		cur := in.Current()
		if cur == "" {
			return "", ErrNoCurrentRoom
		}
		return cur, nil
	}
	return in.n.Room(arg)
}

func (in *Interp) say(ctx context.Context, text string) (Reply, error) {
	cur := in.Current()
	if cur == "" {
		return Reply{}, ErrNoCurrentRoom
	}
	_, err := in.n.Say(ctx, cur, text)
	return Reply{}, err
}

// usage is the error of a command whose arguments do not fit.
func usage(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}

// noArgs wraps a command that takes no arguments.
func noArgs(name string, f func(ctx context.Context) (Reply, error)) func(context.Context, string) (Reply, error) {
	return func(ctx context.Context, args string) (Reply, error) {
		if args != "" {
			return Reply{}, fmt.Errorf("/%s takes no arguments", name)
		}
		return f(ctx)
	}
}

// oneArg wraps a command that takes exactly one argument without spaces.
func oneArg(name, arg string, f func(ctx context.Context, arg string) (Reply, error)) func(context.Context, string) (Reply, error) {
	return func(ctx context.Context, args string) (Reply, error) {
		if args == "" || strings.ContainsAny(args, " \t") {
			return Reply{}, usage("/%s %s", name, arg)
		}
		return f(ctx, args)
	}
}
