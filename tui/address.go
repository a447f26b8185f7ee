package tui

import (
	"io"
	"strings"

	"github.com/aymanbagabas/go-osc52/v2"
	tea "github.com/charmbracelet/bubbletea"
)

// copyAddress answers F3: it shows the node's best address in the
// conversation on screen, on a line of its own, and puts it on the
// terminal's clipboard (OSC 52) when the UI can, so that a mouse copy of
// a wrapped line is never needed.
func (m *Model) copyAddress() tea.Cmd {
	c := m.activeConv()
	addr := bestAddr(m.addrs)
	if addr == "" {
		m.system(c, entryError, "no address yet: the node listens on nothing (see /id)")
		return nil
	}
	shown := clean(addr)
	if m.copy == nil {
		m.system(c, entrySystem, "your address (a peer types /connect and it to reach you):\n"+shown)
		return nil
	}
	m.system(c, entrySystem, "copied your address to the clipboard; a peer types /connect and it to reach you:\n"+shown)
	copyFn := m.copy
	return func() tea.Msg {
		copyFn(addr)
		return nil
	}
}

// bestAddr picks the address to give to a peer: the first that is
// neither loopback nor relayed, else the first that is not relayed, else
// the first.
func bestAddr(addrs []string) string {
	loopback := func(a string) bool {
		return strings.HasPrefix(a, "/ip4/127.") || strings.HasPrefix(a, "/ip6/::1/")
	}
	relayed := func(a string) bool { return strings.Contains(a, "/p2p-circuit") }
	for _, a := range addrs {
		if !loopback(a) && !relayed(a) {
			return a
		}
	}
	for _, a := range addrs {
		if !relayed(a) {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// osc52Copy returns a Copy function that writes text to out as an OSC 52
// clipboard sequence, wrapped for tmux or screen (term and tmux are the
// TERM and TMUX environment variables). Terminals that do not support
// OSC 52 ignore it.
func osc52Copy(out io.Writer, term, tmux string) func(string) {
	return func(text string) {
		seq := osc52.New(text)
		switch {
		case tmux != "":
			seq = seq.Tmux()
		case strings.HasPrefix(term, "screen"):
			seq = seq.Screen()
		}
		_, _ = seq.WriteTo(out) // nothing to do about a lost clipboard write
	}
}
