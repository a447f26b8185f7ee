package tui

import "github.com/charmbracelet/bubbles/key"

// keyMap holds the UI's key bindings. Editing keys of the input line
// (arrows, Home/End, Ctrl+A/E/K/U/W, Alt+B/F...) are the text input's own.
type keyMap struct {
	Quit       key.Binding
	Help       key.Binding
	Send       key.Binding
	Complete   key.Binding
	CompleteBk key.Binding
	HistPrev   key.Binding
	HistNext   key.Binding
	PageUp     key.Binding
	PageDown   key.Binding
	NextConv   key.Binding
	PrevConv   key.Binding
	JumpConv   key.Binding
	Peers      key.Binding
	CopyAddr   key.Binding
	Accept     key.Binding
	Reject     key.Binding
	Close      key.Binding
	// In the peers list.
	Up     key.Binding
	Down   key.Binding
	Open   key.Binding
	Whois  key.Binding
	Verify key.Binding
}

func defaultKeys() keyMap {
	return keyMap{
		Quit:       key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("Ctrl+C", "leave (like /quit)")),
		Help:       key.NewBinding(key.WithKeys("f1"), key.WithHelp("F1", "this help (also /help)")),
		Send:       key.NewBinding(key.WithKeys("enter"), key.WithHelp("Enter", "send the line")),
		Complete:   key.NewBinding(key.WithKeys("tab"), key.WithHelp("Tab", "complete a command, room or nick; again for the next")),
		CompleteBk: key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("Shift+Tab", "previous completion")),
		HistPrev:   key.NewBinding(key.WithKeys("up"), key.WithHelp("Up", "previous line typed")),
		HistNext:   key.NewBinding(key.WithKeys("down"), key.WithHelp("Down", "next line typed")),
		PageUp:     key.NewBinding(key.WithKeys("pgup"), key.WithHelp("PgUp", "scroll back (or the mouse wheel)")),
		PageDown:   key.NewBinding(key.WithKeys("pgdown"), key.WithHelp("PgDn", "scroll forward")),
		NextConv:   key.NewBinding(key.WithKeys("ctrl+n", "alt+down"), key.WithHelp("Ctrl+N", "next conversation (also Alt+Down)")),
		PrevConv:   key.NewBinding(key.WithKeys("ctrl+p", "alt+up"), key.WithHelp("Ctrl+P", "previous conversation (also Alt+Up)")),
		JumpConv: key.NewBinding(key.WithKeys("alt+1", "alt+2", "alt+3", "alt+4", "alt+5", "alt+6", "alt+7", "alt+8", "alt+9"),
			key.WithHelp("Alt+1..9", "conversation 1 to 9")),
		Peers:    key.NewBinding(key.WithKeys("f2"), key.WithHelp("F2", "pick a peer: Up/Down, Enter to message, w whois, v verify, Esc back")),
		CopyAddr: key.NewBinding(key.WithKeys("f3"), key.WithHelp("F3", "copy your address (OSC 52) for a peer to /connect to")),
		Accept:   key.NewBinding(key.WithKeys("alt+a"), key.WithHelp("Alt+A", "accept the file offer shown")),
		Reject:   key.NewBinding(key.WithKeys("alt+r"), key.WithHelp("Alt+R", "reject the file offer shown")),
		Close:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("Esc", "close help, hide an offer (it stays in /transfers), leave the peers list")),
		Up:       key.NewBinding(key.WithKeys("up", "k")),
		Down:     key.NewBinding(key.WithKeys("down", "j")),
		Open:     key.NewBinding(key.WithKeys("enter")),
		Whois:    key.NewBinding(key.WithKeys("w")),
		Verify:   key.NewBinding(key.WithKeys("v")),
	}
}

// helpKeys are the bindings the help overlay lists, in order.
func (k keyMap) helpKeys() []key.Binding {
	return []key.Binding{k.Send, k.Complete, k.CompleteBk, k.HistPrev, k.HistNext, k.PageUp, k.PageDown,
		k.NextConv, k.PrevConv, k.JumpConv, k.Peers, k.CopyAddr, k.Accept, k.Reject, k.Close, k.Help, k.Quit}
}
