package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
)

// ErrQuit is returned by Exec for /quit.
var ErrQuit = errors.New("quit")

// maxLineLen bounds one command line from the user.
const maxLineLen = 64 << 10

// command is one slash command.
type command struct {
	name  string
	usage string // arguments, e.g. "MULTIADDR"
	help  string
	run   func(ctx context.Context, args string) error
	// secret commands carry a secret in their arguments: error events
	// show only the command name.
	secret bool
}

func (n *Node) registerCommands() {
	n.commands = make(map[string]*command)
	for _, group := range [][]*command{n.coreCommands(), n.roomCommands(), n.dmCommands(), n.transferCommands()} {
		for _, c := range group {
			n.register(c)
		}
	}
}

func (n *Node) register(c *command) {
	n.commands[c.name] = c
	n.order = append(n.order, c)
}

// Exec runs one line of user input: a slash command, or text for the
// current room. Failures are reported as error events naming the line;
// Exec returns ErrQuit for /quit and nil otherwise.
func (n *Node) Exec(ctx context.Context, line string) error {
	line = strings.TrimRightFunc(line, unicode.IsSpace)
	if line == "" {
		return nil
	}
	err := n.exec(ctx, line)
	if errors.Is(err, ErrQuit) {
		return ErrQuit
	}
	if err != nil {
		n.emit.Emit(events.Error{Error: err.Error(), Command: n.echo(line)})
	}
	return nil
}

// echo is how a failed command line is shown back: truncated, with control
// characters escaped, and without the arguments of secret commands.
func (n *Node) echo(line string) string {
	if strings.HasPrefix(line, "/") {
		name, _, _ := strings.Cut(line[1:], " ")
		if c, ok := n.commands[strings.ToLower(name)]; ok && c.secret {
			return "/" + c.name + " …"
		}
	}
	return safetext.Line(truncate(line, 200))
}

func (n *Node) exec(ctx context.Context, line string) error {
	if len(line) > maxLineLen {
		return fmt.Errorf("line of %d bytes is too long (max %d)", len(line), maxLineLen)
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		// "//text" sends "/text" as a message.
		text := strings.TrimPrefix(line, "/")
		return n.say(ctx, text)
	}
	name, args, _ := strings.Cut(line[1:], " ")
	name = strings.ToLower(name)
	c, ok := n.commands[name]
	if !ok {
		return fmt.Errorf("unknown command /%s; type /help for the list", safetext.Line(truncate(name, 40)))
	}
	return c.run(ctx, strings.TrimSpace(args))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

func (n *Node) helpText() string {
	cs := append([]*command(nil), n.order...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	var b strings.Builder
	b.WriteString("commands:")
	for _, c := range cs {
		use := "/" + c.name
		if c.usage != "" {
			use += " " + c.usage
		}
		fmt.Fprintf(&b, "\n  %-28s %s", use, c.help)
	}
	b.WriteString("\n  text without a leading / goes to the current room; //text sends /text")
	return b.String()
}

// noArgs wraps a command that takes no arguments.
func noArgs(name string, f func(ctx context.Context) error) func(context.Context, string) error {
	return func(ctx context.Context, args string) error {
		if args != "" {
			return fmt.Errorf("/%s takes no arguments", name)
		}
		return f(ctx)
	}
}
