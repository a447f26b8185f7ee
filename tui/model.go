package tui

import (
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/command"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
)

// Options configure a Model.
type Options struct {
	// Backend is the node (required).
	Backend Backend
	// Commands runs typed slash commands (required).
	Commands Commands
	// Submit queues one action for the executor; actions run one at a
	// time, in order. It must not block: it reports false when the queue
	// is full (required).
	Submit func(a action) bool
	// Styles default to NewStyles(lipgloss.DefaultRenderer(), false).
	Styles *Styles
	// Now defaults to time.Now; Location (of the timestamps shown) to
	// time.Local.
	Now      func() time.Time
	Location *time.Location
	// Copy puts text on the terminal's clipboard (OSC 52); nil when the
	// UI cannot, and F3 then only shows the address.
	Copy func(text string)
	// Shown, when set, is told of every event from the node once the
	// model has taken it in (it is drawn from the next frame on and kept
	// in its conversation): node.Node.Shown with node.Config.ConfirmShown.
	Shown func(events.Event)
}

// Messages the runner sends to the model.
type (
	// eventsMsg carries events from the node's queue, oldest first.
	eventsMsg []events.Event
	// execDoneMsg says that the executor ran an action.
	execDoneMsg struct {
		a     action
		reply command.Reply
		err   error
	}
	// tickMsg refreshes the snapshots (presence timeouts, rates, ETAs).
	tickMsg time.Time
)

// tickEvery is how often the model refreshes its snapshots of the node
// without an event.
const tickEvery = 2 * time.Second

// maxInput bounds the input line (the node refuses longer texts anyway).
const maxInput = 16 << 10

type focusArea int

const (
	focusInput focusArea = iota
	focusPeers
)

// Model is the bubbletea model of the terminal UI.
type Model struct {
	be     Backend
	cmds   Commands
	submit func(action) bool
	st     Styles
	keys   keyMap
	now    func() time.Time
	loc    *time.Location

	width, height int

	// copy puts text on the clipboard; nil when it cannot (Options.Copy).
	copy func(text string)
	// shown confirms events taken in; nil when unused (Options.Shown).
	shown func(events.Event)
	// addrs are the node's own full addresses (MULTIADDR/p2p/ID), from
	// its ready event.
	addrs []string

	// Snapshots of the node, refreshed on events and ticks.
	self     node.Status
	rooms    []node.RoomRow
	peers    []node.PeerView
	peerByID map[peer.ID]node.PeerView
	commands []command.Info

	convs  map[string]*conv
	order  []string // sidebar order of conversation keys
	active string
	seq    int // creation counter for private conversations
	dmInfo map[peer.ID]*dmPeer

	input   textinput.Model
	history history
	comp    *completion

	focus   focusArea
	peerSel int

	help       bool
	helpScroll int

	transfers transfers

	quitting bool
}

// dmPeer is what the UI shows about the other side of a private
// conversation.
type dmPeer struct {
	nick string // cleaned, "" when unknown
	fp   string // short fingerprint
}

// New returns a model showing the node's rooms and status.
func New(o Options) *Model {
	st := o.Styles
	if st == nil {
		def := NewStyles(defaultRenderer(), false)
		st = &def
	}
	m := &Model{
		be: o.Backend, cmds: o.Commands, submit: o.Submit, st: *st, keys: defaultKeys(),
		now: o.Now, loc: o.Location, copy: o.Copy, shown: o.Shown,
		convs: make(map[string]*conv), dmInfo: make(map[peer.ID]*dmPeer),
		width: 80, height: 24,
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.loc == nil {
		m.loc = time.Local
	}
	m.input = textinput.New()
	m.input.Prompt = ""
	m.input.CharLimit = maxInput
	m.input.Placeholder = "type a message · /help or F1 for help"
	m.input.PromptStyle = m.st.NewStyle()
	m.input.TextStyle = m.st.NewStyle()
	m.input.PlaceholderStyle = m.st.Dim
	m.input.Cursor.Style = m.st.NewStyle().Reverse(true)
	m.input.Cursor.TextStyle = m.st.NewStyle()
	m.input.Cursor.SetMode(cursor.CursorStatic)
	// Ctrl+V would read the clipboard by running xclip or pbpaste:
	// Parley runs no programs. The terminal's own paste still works.
	m.input.KeyMap.Paste = key.NewBinding(key.WithDisabled())
	m.input.Focus()
	m.transfers = newTransfers()

	m.convs[statusKey] = newConv(statusKey, convStatus, "")
	m.commands = m.cmds.Commands()
	m.refresh()
	m.restoreDMs()
	if cur := m.cmds.Current(); cur != "" {
		m.activate(roomKey(cur))
	} else {
		m.activate(statusKey)
	}
	return m
}

// Init does nothing: the runner sends the events and the ticks.
func (m *Model) Init() tea.Cmd { return nil }

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.clampScroll()
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	case tea.MouseMsg:
		m.mouse(msg)
		return m, nil
	case eventsMsg:
		structural := false
		for _, e := range msg {
			if m.handle(e) {
				structural = true
			}
		}
		if structural {
			m.refresh()
		}
		if m.shown != nil {
			for _, e := range msg {
				m.shown(e)
			}
		}
		return m, nil
	case execDoneMsg:
		m.refresh()
		m.execDone(msg)
		return m, nil
	case tickMsg:
		m.refresh()
		return m, nil
	}
	return m, nil
}

// refresh takes fresh snapshots of the node and adds conversations for
// rooms the UI has not heard of.
func (m *Model) refresh() {
	m.self = m.be.Status()
	m.rooms = m.be.RoomList()
	m.peers = m.be.PeerList()
	m.peerByID = make(map[peer.ID]node.PeerView, len(m.peers))
	for _, p := range m.peers {
		m.peerByID[p.PeerID] = p
		if d, ok := m.dmInfo[p.PeerID]; ok && p.Nick != "" {
			d.nick = clean(p.Nick)
		}
	}
	joined := make(map[string]bool, len(m.rooms))
	for _, r := range m.rooms {
		joined[roomKey(r.Room)] = true
		m.roomConv(r.Room)
	}
	// A message still in flight when a room was left recreated it.
	for k, c := range m.convs {
		if c.kind == convRoom && !joined[k] {
			delete(m.convs, k)
			m.reorder()
			if m.active == k {
				m.active = statusKey
			}
		}
	}
	if m.peerSel >= len(m.peers) {
		m.peerSel = max(0, len(m.peers)-1)
	}
	m.transfers.prune(m.now())
}

// execDone shows the outcome of an action: the answer or the error in
// the conversation shown, and the room or private conversation a command
// moved to (/join, /switch, /leave, /create, /msg).
func (m *Model) execDone(d execDoneMsg) {
	if d.err != nil {
		m.system(m.activeConv(), entryError, clean(d.err.Error()))
		return
	}
	if d.reply.Text != "" {
		m.system(m.activeConv(), entrySystem, cleanBlock(d.reply.Text))
	}
	switch {
	case d.reply.RoomChanged && d.reply.Room != "":
		m.activate(roomKey(d.reply.Room))
	case d.reply.RoomChanged:
		if c := m.convs[m.active]; c != nil && c.kind == convRoom {
			m.activate(statusKey)
		}
	}
	if l, ok := d.a.(lineAction); ok && commandName(l.line) == "msg" && d.reply.Peer != "" {
		m.activate(m.dmConv(d.reply.Peer).key)
	}
}

// roomConv returns the conversation of a room, creating it with the
// room's stored history.
func (m *Model) roomConv(room string) *conv {
	k := roomKey(room)
	if c, ok := m.convs[k]; ok {
		return c
	}
	c := newConv(k, convRoom, room)
	m.convs[k] = c
	if msgs, err := m.be.RoomHistory(room, historyOnOpen); err == nil {
		for _, msg := range msgs {
			c.add(m.messageEntry(msg))
		}
	}
	m.reorder()
	return c
}

// dmConv returns the private conversation with a peer, creating it with
// the stored messages.
func (m *Model) dmConv(peerID peer.ID) *conv {
	k := dmKey(peerID)
	if c, ok := m.convs[k]; ok {
		return c
	}
	c := newConv(k, convDM, peerID.String())
	c.peer = peerID
	m.seq++
	c.seq, c.lastActive = m.seq, m.now()
	m.convs[k] = c
	d := &dmPeer{}
	if p, ok := m.peerByID[peerID]; ok {
		d.nick, d.fp = clean(p.Nick), p.Fingerprint
	} else {
		p := m.be.Peer(peerID)
		d.nick, d.fp = clean(p.Nick), p.Fingerprint
	}
	m.dmInfo[peerID] = d
	if hist, err := m.be.DMHistory(peerID, historyOnOpen); err == nil {
		for _, h := range hist {
			c.add(m.dmEntry(h, peerID))
		}
	}
	m.evictDMs()
	m.reorder()
	return c
}

// restoreDMs lists again the private conversations of earlier runs, the
// maxRestoredDMs most recent, in the order they were last active.
func (m *Model) restoreDMs() {
	convs, err := m.be.DMConversations(maxRestoredDMs)
	if err != nil {
		return // a node without DMs (or a damaged store): nothing to list
	}
	for i := len(convs) - 1; i >= 0; i-- {
		m.dmConv(convs[i].Peer).lastActive = convs[i].Last
	}
}

// evictDMs drops the private conversations idle longest past maxDMConvs
// (their messages stay in the store).
func (m *Model) evictDMs() {
	var dms []*conv
	for _, c := range m.convs {
		if c.kind == convDM {
			dms = append(dms, c)
		}
	}
	if len(dms) <= maxDMConvs {
		return
	}
	slices.SortFunc(dms, func(a, b *conv) int { return a.lastActive.Compare(b.lastActive) })
	for _, c := range dms[:len(dms)-maxDMConvs] {
		if c.key == m.active {
			continue
		}
		delete(m.convs, c.key)
		delete(m.dmInfo, c.peer)
	}
}

// reorder sorts the sidebar: status, rooms by name, private
// conversations in the order they opened.
func (m *Model) reorder() {
	m.order = m.order[:0]
	var rooms, dms []*conv
	for _, c := range m.convs {
		switch c.kind {
		case convRoom:
			rooms = append(rooms, c)
		case convDM:
			dms = append(dms, c)
		}
	}
	slices.SortFunc(rooms, func(a, b *conv) int { return strings.Compare(a.name, b.name) })
	slices.SortFunc(dms, func(a, b *conv) int { return a.seq - b.seq })
	m.order = append(m.order, statusKey)
	for _, c := range rooms {
		m.order = append(m.order, c.key)
	}
	for _, c := range dms {
		m.order = append(m.order, c.key)
	}
}

// activate shows a conversation. For a room it also makes the room the
// current one of the UI's command session, so that /who, /invite, /leave
// without a room, and text typed in the status conversation, go to the
// room the user looked at last.
func (m *Model) activate(k string) {
	c, ok := m.convs[k]
	if !ok {
		if strings.HasPrefix(k, "#") {
			c = m.roomConv(k[1:])
		} else {
			c = m.convs[statusKey]
		}
	}
	m.active = c.key
	c.unread = 0
	c.lastActive = m.now()
	if c.kind == convRoom {
		m.cmds.SetCurrent(c.name)
	}
}

// step moves to the next (+1) or previous (-1) conversation.
func (m *Model) step(d int) {
	i := slices.Index(m.order, m.active)
	if i < 0 || len(m.order) == 0 {
		return
	}
	i = (i + d + len(m.order)) % len(m.order)
	m.activate(m.order[i])
}

func (m *Model) activeConv() *conv {
	if c, ok := m.convs[m.active]; ok {
		return c
	}
	return m.convs[statusKey]
}

// key handles a key press.
func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	if key.Matches(msg, k.Quit) {
		m.quitting = true
		return tea.Quit
	}
	if m.help {
		m.helpKey(msg)
		return nil
	}
	switch {
	case key.Matches(msg, k.Accept):
		m.answerOffer(true)
		return nil
	case key.Matches(msg, k.Reject):
		m.answerOffer(false)
		return nil
	case key.Matches(msg, k.Close) && m.transfers.popup() != nil:
		m.transfers.dismiss()
		return nil
	}
	switch {
	case key.Matches(msg, k.Help):
		m.help, m.helpScroll = true, 0
		return nil
	case key.Matches(msg, k.Peers):
		m.toggleFocus()
		return nil
	case key.Matches(msg, k.CopyAddr):
		return m.copyAddress()
	}
	if m.focus == focusPeers {
		m.peersKey(msg)
		return nil
	}
	switch {
	case key.Matches(msg, k.PageUp):
		m.scrollBy(m.layout().pageLines())
		return nil
	case key.Matches(msg, k.PageDown):
		m.scrollBy(-m.layout().pageLines())
		return nil
	case key.Matches(msg, k.NextConv):
		m.step(1)
		return nil
	case key.Matches(msg, k.PrevConv):
		m.step(-1)
		return nil
	case key.Matches(msg, k.JumpConv):
		if i := int(msg.Runes[0] - '1'); i >= 0 && i < len(m.order) {
			m.activate(m.order[i])
		}
		return nil
	case key.Matches(msg, k.Complete):
		m.complete(1)
		return nil
	case key.Matches(msg, k.CompleteBk):
		m.complete(-1)
		return nil
	case key.Matches(msg, k.HistPrev):
		m.comp = nil
		m.setInput(m.history.prev(m.input.Value()))
		return nil
	case key.Matches(msg, k.HistNext):
		m.comp = nil
		m.setInput(m.history.next(m.input.Value()))
		return nil
	case key.Matches(msg, k.Send):
		m.comp = nil
		m.send()
		return nil
	case key.Matches(msg, k.Close):
		return nil
	}
	m.comp = nil
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return cmd
}

func (m *Model) setInput(s string) {
	m.input.SetValue(s)
	m.input.CursorEnd()
}

func (m *Model) helpKey(msg tea.KeyMsg) {
	switch {
	case key.Matches(msg, m.keys.Close, m.keys.Help), msg.String() == "q":
		m.help = false
	case key.Matches(msg, m.keys.Up):
		m.helpScroll--
	case key.Matches(msg, m.keys.Down):
		m.helpScroll++
	case key.Matches(msg, m.keys.PageUp):
		m.helpScroll -= m.layout().pageLines()
	case key.Matches(msg, m.keys.PageDown):
		m.helpScroll += m.layout().pageLines()
	}
	m.helpScroll = max(0, m.helpScroll)
}

func (m *Model) toggleFocus() {
	if m.focus == focusPeers {
		m.focus = focusInput
		m.input.Focus()
		return
	}
	m.focus = focusPeers
	m.input.Blur()
}

func (m *Model) peersKey(msg tea.KeyMsg) {
	k := m.keys
	switch {
	case key.Matches(msg, k.Close):
		m.toggleFocus()
	case key.Matches(msg, k.Up):
		m.peerSel = max(0, m.peerSel-1)
	case key.Matches(msg, k.Down):
		m.peerSel = max(0, min(len(m.peers)-1, m.peerSel+1))
	case len(m.peers) == 0:
	case key.Matches(msg, k.Open):
		p := m.peers[m.peerSel]
		m.activate(m.dmConv(p.PeerID).key)
		m.toggleFocus()
	case key.Matches(msg, k.Whois):
		m.run(whoisAction{m.peers[m.peerSel].PeerID})
	case key.Matches(msg, k.Verify):
		m.run(verifyAction{m.peers[m.peerSel].PeerID})
	}
}

// run queues an action, reporting a full queue.
func (m *Model) run(a action) bool {
	if !m.submit(a) {
		m.system(m.activeConv(), entryError, "too many commands waiting; try again in a moment")
		return false
	}
	return true
}

// send handles Enter: a slash command runs as in line mode (/help opens
// the help overlay); text goes to the room or peer of the conversation
// shown, or, in the status conversation, to the current room.
func (m *Model) send() {
	line := strings.TrimRight(m.input.Value(), " \t")
	if strings.TrimSpace(line) == "" {
		return
	}
	m.input.Reset()
	name := commandName(line)
	if !m.isSecret(name) {
		m.history.add(line)
	} else {
		m.history.reset()
	}
	c := m.activeConv()
	c.scroll, c.below = 0, 0
	if name == "help" && strings.TrimSpace(line) == "/help" {
		m.help, m.helpScroll = true, 0
		return
	}
	text := strings.TrimPrefix(line, "/") // "//text" sends "/text"
	switch {
	case name != "" || c.kind == convStatus:
		m.run(lineAction{line})
	case c.kind == convDM:
		m.run(dmAction{c.peer, text})
	default:
		m.run(sayAction{c.name, text})
	}
}

// commandName returns the lower-case command of a slash line, "" for
// text (including "//text").
func commandName(line string) string {
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		return ""
	}
	name, _, _ := strings.Cut(line[1:], " ")
	return strings.ToLower(name)
}

func (m *Model) isSecret(name string) bool {
	for _, c := range m.commands {
		if c.Name == name {
			return c.Secret
		}
	}
	return false
}

// scrollBy moves the view of the active conversation d wrapped lines up
// (negative: down), within the scrollback.
func (m *Model) scrollBy(d int) {
	c := m.activeConv()
	c.scroll += d
	m.clampScroll()
	if c.scroll == 0 {
		c.below = 0
	}
}

func (m *Model) clampScroll() {
	c := m.activeConv()
	l := m.layout()
	total := 0
	for _, e := range c.entries {
		total += len(m.entryLines(e, l.msgW))
	}
	c.scroll = max(0, min(c.scroll, total-l.msgRows()))
}

// mouse scrolls with the wheel and picks conversations and peers with
// a click.
func (m *Model) mouse(msg tea.MouseMsg) {
	if m.help {
		switch msg.Button {
		case tea.MouseButtonWheelUp:
			m.helpScroll = max(0, m.helpScroll-3)
		case tea.MouseButtonWheelDown:
			m.helpScroll += 3
		}
		return
	}
	switch msg.Button {
	case tea.MouseButtonWheelUp:
		m.scrollBy(3)
	case tea.MouseButtonWheelDown:
		m.scrollBy(-3)
	case tea.MouseButtonLeft:
		if msg.Action != tea.MouseActionPress {
			return
		}
		l := m.layout()
		if k, ok := l.convAt(m, msg.X, msg.Y); ok {
			m.activate(k)
		} else if i, ok := l.peerAt(m, msg.X, msg.Y); ok {
			m.peerSel = i
			if m.focus != focusPeers {
				m.toggleFocus()
			}
		}
	}
}
