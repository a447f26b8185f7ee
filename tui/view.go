package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/present"
)

// Layout sizes, in terminal cells.
const (
	minWidth, minHeight = 40, 10
	sideWidth           = 22 // conversations (and, when narrow, peers)
	narrowSideWidth     = 16 // below 60 columns
	peersWidth          = 28 // the peers column, from wideAt columns on
	// wideAt is where the peers get a column of their own: from there
	// the messages keep at least 60 cells, more than at 80 columns (57),
	// so a wider terminal never narrows them.
	wideAt       = sideWidth + 1 + 60 + 1 + peersWidth
	maxStripRows = 3 // transfer progress rows above the input
)

// layout is where things are on the screen; View draws it and mouse
// clicks are mapped through it.
type layout struct {
	w, h     int
	tooSmall bool
	sideW    int
	// peersW is 0 when the peers are stacked under the conversations
	// in the sidebar.
	peersW int
	msgW   int
	bodyH  int // rows of the panes
	stripH int // rows of transfer progress
	// convRows is how many sidebar rows the conversations take (with
	// their header) when the peers are stacked under them.
	convRows int
}

func (m *Model) layout() layout {
	l := layout{w: m.width, h: m.height}
	if l.w < minWidth || l.h < minHeight {
		l.tooSmall = true
		return l
	}
	l.stripH = min(m.transfers.active(), maxStripRows)
	l.bodyH = l.h - 2 - l.stripH
	l.sideW = sideWidth
	if l.w < 60 {
		l.sideW = narrowSideWidth
	}
	if l.w >= wideAt {
		l.peersW = peersWidth
		l.msgW = l.w - l.sideW - l.peersW - 2
		l.convRows = l.bodyH
		return l
	}
	l.msgW = l.w - l.sideW - 1
	need := 1 + len(m.order)
	peersNeed := 1 + max(1, len(m.peers))
	switch {
	case need+peersNeed <= l.bodyH:
		l.convRows = need
	default:
		l.convRows = min(need, max(l.bodyH/2, l.bodyH-peersNeed))
	}
	return l
}

// msgRows is the number of message lines below the pane's header.
func (l layout) msgRows() int { return max(1, l.bodyH-1) }

// pageLines is how far PgUp and PgDn move.
func (l layout) pageLines() int { return max(1, l.msgRows()-1) }

// convAt maps a click to a conversation.
func (l layout) convAt(m *Model, x, y int) (string, bool) {
	if l.tooSmall || x >= l.sideW || y < 1 || y >= l.convRows {
		return "", false
	}
	first := listStart(len(m.order), l.convRows-1, indexOf(m.order, m.active))
	i := first + y - 1
	if i < 0 || i >= len(m.order) {
		return "", false
	}
	return m.order[i], true
}

// peerAt maps a click to a peer.
func (l layout) peerAt(m *Model, x, y int) (int, bool) {
	if l.tooSmall {
		return 0, false
	}
	top, rows := 0, l.bodyH
	switch {
	case l.peersW > 0 && x > l.sideW+l.msgW+1:
	case l.peersW == 0 && x < l.sideW && y >= l.convRows:
		top, rows = l.convRows, l.bodyH-l.convRows
	default:
		return 0, false
	}
	first := listStart(len(m.peers), rows-1, m.peerSel)
	i := first + y - top - 1
	if y-top < 1 || y >= top+rows || i >= len(m.peers) {
		return 0, false
	}
	return i, true
}

func indexOf(keys []string, k string) int {
	for i, x := range keys {
		if x == k {
			return i
		}
	}
	return 0
}

// listStart is the first item shown of a list of n items in rows rows,
// so that item sel is visible.
func listStart(n, rows, sel int) int {
	if n <= rows || rows <= 0 {
		return 0
	}
	return max(0, min(sel-rows+1, n-rows))
}

// View draws the screen.
func (m *Model) View() string {
	if m.quitting {
		return "leaving…\n"
	}
	l := m.layout()
	if l.tooSmall {
		return tooSmallView(l.w, l.h)
	}
	var body []string
	if m.help {
		body = m.helpView(l.w, l.bodyH)
	} else {
		side := m.sideView(l)
		msgs := m.messagesView(l.msgW, l.bodyH)
		var peers []string
		if l.peersW > 0 {
			peers = m.peersView(l.peersW, l.bodyH, false)
		}
		sep := m.st.Dim.Render("│")
		body = make([]string, l.bodyH)
		for i := range body {
			row := side[i] + sep + msgs[i]
			if peers != nil {
				row += sep + peers[i]
			}
			body[i] = row
		}
	}
	var b strings.Builder
	for _, row := range body {
		b.WriteString(row)
		b.WriteByte('\n')
	}
	for _, row := range m.stripView(l.w, l.stripH) {
		b.WriteString(row)
		b.WriteByte('\n')
	}
	b.WriteString(m.inputView(l.w))
	b.WriteByte('\n')
	b.WriteString(m.statusView(l.w))
	return b.String()
}

// tooSmallView says, wrapped to the w x h cells there are, how big the
// terminal must be; the minimum comes first so that it shows even when
// the rest does not fit.
func tooSmallView(w, h int) string {
	w, h = max(1, w), max(1, h)
	text := fmt.Sprintf("terminal too small: parley needs at least %dx%d (this is %dx%d)", minWidth, minHeight, w, h)
	lines := wrap(text, w)
	lines = lines[:min(len(lines), h)]
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i := range lines {
		lines[i] = fit(lines[i], w)
	}
	return strings.Join(lines, "\n")
}

// sideView draws the conversations and, when narrow, the peers under
// them.
func (m *Model) sideView(l layout) []string {
	w := l.sideW
	out := make([]string, 0, l.bodyH)
	out = append(out, fit(m.st.Header.Render(" Conversations"), w))
	rows := l.convRows - 1
	first := listStart(len(m.order), rows, indexOf(m.order, m.active))
	for i := first; i < len(m.order) && len(out) < l.convRows; i++ {
		out = append(out, m.convRow(m.convs[m.order[i]], w))
	}
	for len(out) < l.convRows {
		out = append(out, fit("", w))
	}
	if l.peersW == 0 {
		out = append(out, m.peersView(w, l.bodyH-l.convRows, true)...)
	}
	return out
}

// convTitle names a conversation in the sidebar and the prompt.
func (m *Model) convTitle(c *conv) string {
	switch c.kind {
	case convRoom:
		return "#" + clean(c.name)
	case convDM:
		d := m.dmInfo[c.peer]
		if d == nil {
			return "@" + present.Peer("", c.peer, false)
		}
		return "@" + m.dmName(c.peer, d)
	}
	return "status"
}

// dmName names the other side of a private conversation as present.Peer
// does: its nick, with the short fingerprint when another peer shares it,
// or the fingerprint alone.
func (m *Model) dmName(p peer.ID, d *dmPeer) string {
	switch {
	case d.nick == "":
		return d.fp
	case m.dmNickShared(p, d.nick):
		return d.nick + " (" + d.fp + ")"
	}
	return d.nick
}

// dmNickShared reports whether another peer the UI knows goes by nick.
func (m *Model) dmNickShared(id peer.ID, nick string) bool {
	if p, ok := m.peerByID[id]; ok && p.NickShared {
		return true
	}
	for other, d := range m.dmInfo {
		if other != id && identity.SameNick(d.nick, nick) {
			return true
		}
	}
	return false
}

func (m *Model) convRow(c *conv, w int) string {
	count := ""
	if c.unread > 0 {
		count = fmt.Sprintf("%d", min(c.unread, 999))
	}
	mark := " "
	if c.key == m.active {
		mark = ">"
	}
	nameW := w - 2 - len(count) - 1
	name := fit(cut(m.convTitle(c), nameW), nameW)
	if c.key == m.active {
		return m.st.Selected.Render(fit(mark+name+" "+count, w))
	}
	return fit(mark+name+" "+m.st.Unread.Render(count), w)
}

// peersView draws the peers list with its header in w x h cells; stacked
// under the conversations, the header is a rule.
func (m *Model) peersView(w, h int, stacked bool) []string {
	if h <= 0 {
		return nil
	}
	online := 0
	for _, p := range m.peers {
		if p.Online {
			online++
		}
	}
	out := make([]string, 0, h)
	title := fmt.Sprintf("Peers %d online", online)
	if len(m.peers) > online {
		title = fmt.Sprintf("Peers %d/%d online", online, len(m.peers))
	}
	if stacked {
		title = "─ " + title + " " + strings.Repeat("─", w)
		out = append(out, m.st.Header.Render(ansi.Truncate(title, w, "")))
	} else {
		out = append(out, fit(m.st.Header.Render(" "+title), w))
	}
	first := listStart(len(m.peers), h-1, m.peerSel)
	for i := first; i < len(m.peers) && len(out) < h; i++ {
		out = append(out, m.peerRow(m.peers[i], i, w))
	}
	if len(m.peers) == 0 && len(out) < h {
		out = append(out, fit(m.st.Dim.Render(" nobody yet"), w))
	}
	for len(out) < h {
		out = append(out, fit("", w))
	}
	return out
}

func pathLabel(path string) string {
	switch path {
	case "relayed":
		return "relay"
	case "lan", "direct":
		return path
	case "":
		return ""
	}
	return cut(clean(path), 6)
}

// peerPathLabel is the peer list's six-cell path column: pathLabel, or
// "punch" for a direct connection hole punching opened.
func peerPathLabel(p node.PeerView) string {
	if p.HolePunched && p.Path != "relayed" {
		return "punch"
	}
	return pathLabel(p.Path)
}

// headerPath describes a connected peer's path in a DM's header: the
// relay named ("relayed via carol (ABCD)"), hole punching said.
func headerPath(p node.PeerView) string {
	switch {
	case p.Path == "relayed" && p.Via != "":
		return "relayed via " + present.Member(p.ViaNick, p.Via)
	case p.HolePunched:
		return pathLabel(p.Path) + ", hole-punched"
	}
	return pathLabel(p.Path)
}

// relayName names the relay of a relayed peer in the peer list: its nick
// or short fingerprint; "" when not relayed or the relay is unknown.
func relayName(p node.PeerView) string {
	if !p.Online || p.Path != "relayed" || p.Via == "" {
		return ""
	}
	if n := clean(p.ViaNick); n != "" {
		return n
	}
	return identity.ShortFingerprint(p.Via)
}

func (m *Model) peerRow(p node.PeerView, i, w int) string {
	sel := m.focus == focusPeers && i == m.peerSel
	mark := " "
	if sel {
		mark = ">"
	}
	dot := m.st.Dim.Render("○")
	if p.Online {
		dot = "●"
	}
	name := present.Peer(p.Nick, p.PeerID, p.NickShared)
	nameW := max(1, w-12)
	nameSt := m.st.Nick(p.PeerID)
	if !p.Online {
		nameSt = m.st.Dim
	}
	trust := " "
	switch {
	case p.Conflict:
		trust = m.st.Warning.Render("!")
	case p.Trusted:
		trust = m.st.Trusted.Render("✓")
	}
	cell := nameSt.Render(fit(cut(name, nameW), nameW))
	// The relay follows the name when both fit.
	if via := relayName(p); via != "" {
		if extra := " ↪" + via; ansi.StringWidth(name+extra) <= nameW {
			cell = nameSt.Render(name) + m.st.Dim.Render(fit(extra, nameW-ansi.StringWidth(name)))
		}
	}
	row := mark + dot + " " + cell + " " + trust + " " + fit(peerPathLabel(p), 6)
	if sel {
		return m.st.Selected.Render(fit(ansi.Strip(row), w))
	}
	return fit(row, w)
}

// messagesView draws the active conversation's header and the lines
// that fit under it (with a transfer offer on top when one waits).
func (m *Model) messagesView(w, h int) []string {
	c := m.activeConv()
	out := make([]string, 0, h)
	out = append(out, m.headerRow(c, w))
	rows := h - 1
	var popup []string
	if o := m.transfers.popup(); o != nil {
		popup = m.offerView(o, w)
		if len(popup) > rows/2 {
			popup = nil
		}
	}
	lines := m.visibleLines(c, w, rows-len(popup))
	if popup == nil {
		popup = m.firstRunHint(c, w, rows-len(lines))
	}
	out = append(out, popup...)
	for len(out)+len(lines) < h {
		out = append(out, fit("", w))
	}
	for _, l := range lines {
		out = append(out, fit(l, w))
	}
	return out
}

// firstRunHint is what a room shows while nobody else is around and
// nothing was said in it: how peers arrive and how to reach one, in at
// most rows rows of w cells (nil when it does not fit or is not needed).
func (m *Model) firstRunHint(c *conv, w, rows int) []string {
	if c.kind != convRoom || rows < 4 || w < 20 {
		return nil
	}
	for _, p := range m.peers {
		if p.Online && p.PeerID != m.self.PeerID {
			return nil
		}
	}
	for _, e := range c.entries {
		if e.kind == entryMessage {
			return nil
		}
	}
	text := []string{
		"Nobody else here yet. Peers on your network appear by themselves.",
		"To reach someone elsewhere: press F3 to copy your address and send it to them; they type /connect and paste it. Or /connect theirs.",
		"F1 lists every key and command.",
	}
	var out []string
	for _, t := range text {
		for _, l := range wrap(t, w-2) {
			out = append(out, fit(m.st.Dim.Render(" "+l), w))
		}
	}
	if len(out) > rows-1 {
		return nil
	}
	return append(out, fit("", w))
}

func (m *Model) headerRow(c *conv, w int) string {
	var title string
	switch c.kind {
	case convStatus:
		title = "status · node events and command answers"
	case convRoom:
		kind, members, sync := "public", 0, ""
		for _, r := range m.rooms {
			if r.Room == c.name {
				members = r.Members
				if r.Private {
					kind = "private, encrypted"
				}
				sync = present.SyncShort(r.Sync)
			}
		}
		title = fmt.Sprintf("#%s · %s · %d online", clean(c.name), kind, members)
		if sync != "" {
			title += " · " + sync
		}
	case convDM:
		title = m.convTitle(c)
		if d := m.dmInfo[c.peer]; d != nil && d.nick != "" && !m.dmNickShared(c.peer, d.nick) {
			title += " (" + d.fp + ")"
		}
		online := false
		if p, ok := m.peerByID[c.peer]; ok && p.Online {
			online = true
			title += " · online, " + headerPath(p)
			if p.Trusted {
				title += " · ✓ verified"
			}
		}
		switch {
		case c.waiting != "":
			title += " · waiting: " + c.waiting
		case !online:
			title += " · away: messages wait in the queue"
		}
	}
	right := ""
	if c.scroll > 0 {
		right = "scrolled back"
		if c.below > 0 {
			right = fmt.Sprintf("%d new below", c.below)
		}
		right = " " + right + " (PgDn) "
	}
	tw := max(0, w-ansi.StringWidth(right)-1)
	return fit(m.st.Header.Render(" "+cut(title, tw)), w-ansi.StringWidth(right)) + m.st.Unread.Render(right)
}

// visibleLines returns the wrapped lines of c that fit in rows rows,
// c.scroll lines above the bottom.
func (m *Model) visibleLines(c *conv, w, rows int) []string {
	if rows <= 0 {
		return nil
	}
	out := make([]string, 0, rows)
	skip := c.scroll
	for i := len(c.entries) - 1; i >= 0 && len(out) < rows; i-- {
		ls := m.entryLines(c.entries[i], w)
		for j := len(ls) - 1; j >= 0 && len(out) < rows; j-- {
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, ls[j])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// deliveryMark renders the delivery state of an own private message.
func (m *Model) deliveryMark(e *entry) string {
	switch e.state {
	case "queued":
		return m.st.Mark.Render("… queued")
	case "sent":
		return m.st.Mark.Render("✓")
	case "delivered":
		return m.st.Delivered.Render("✓✓")
	case "failed":
		text := "✗ failed"
		if e.errText != "" {
			text += ": " + e.errText
		}
		return m.st.Failed.Render(text)
	}
	return ""
}

// entryLines renders an entry wrapped to w cells, with a hanging indent
// under the timestamp and nick. The result is cached per width.
func (m *Model) entryLines(e *entry, w int) []string {
	if e.rendered != nil && e.w == w {
		return e.rendered
	}
	ts := e.at.In(m.loc).Format("15:04")
	var prefix, body string
	var prefixW int
	switch e.kind {
	case entryMessage:
		nick := cut(e.nick, 20)
		st := m.st.Nick(e.from)
		if e.self {
			st = m.st.Self
		}
		prefix = m.st.Time.Render(ts) + " <" + st.Render(nick) + "> "
		prefixW = 5 + 2 + ansi.StringWidth(nick) + 2
		body = e.text
		if mark := m.deliveryMark(e); mark != "" {
			body += " " + mark
		}
	default:
		sym, st := "*", m.st.System
		switch e.kind {
		case entryError:
			sym, st = "!", m.st.Error
		case entryWarning:
			sym, st = "!!!", m.st.Warning
		case entryLog:
			sym, st = "·", m.st.Dim
		}
		prefix = m.st.Time.Render(ts) + " " + st.Render(sym) + " "
		prefixW = 5 + 1 + len(sym) + 1
		body = render(st, e.text)
	}
	indent := prefixW
	var lines []string
	if prefixW > w/2 {
		indent = min(6, w/2)
		lines = append(lines, prefix)
	}
	wrapped := wrap(body, w-indent)
	pad := strings.Repeat(" ", indent)
	for i, l := range wrapped {
		if i == 0 && len(lines) == 0 {
			lines = append(lines, prefix+l)
			continue
		}
		lines = append(lines, pad+l)
	}
	e.w, e.rendered = w, lines
	return lines
}

// inputView draws the prompt and the input line.
func (m *Model) inputView(w int) string {
	prompt := m.convTitle(m.activeConv())
	if cur := m.cmds.Current(); m.activeConv().kind == convStatus && cur != "" {
		prompt = "#" + clean(cur)
	}
	prompt = cut(prompt, max(4, w/4)) + "> "
	m.input.Width = max(1, w-ansi.StringWidth(prompt)-1)
	if m.focus == focusPeers {
		return fit(m.st.Dim.Render(prompt+"(picking a peer: Enter message · w whois · v verify · Esc back)"), w)
	}
	return fit(m.st.Prompt.Render(prompt)+m.input.View(), w)
}

// statusView draws the status bar: own nick, fingerprint, connections,
// reachability.
func (m *Model) statusView(w int) string {
	s := m.self
	reach := s.Reachability
	if reach == "" {
		reach = "unknown"
	}
	if s.Relays > 0 {
		reach += fmt.Sprintf(", %d relay", s.Relays)
		if s.Relays > 1 {
			reach += "s"
		}
	}
	peers := "peers"
	if s.Peers == 1 {
		peers = "peer"
	}
	left := fmt.Sprintf(" %s · %s · %d %s · reachability: %s", clean(s.Nick), clean(s.Fingerprint), s.Peers, peers, reach)
	right := "F1 help "
	lw := max(0, w-len(right))
	return m.st.Status.Render(fit(cut(left, lw), lw) + fit(right, w-lw))
}

// helpView draws the help overlay: keys, then commands.
func (m *Model) helpView(w, h int) []string {
	inner := max(10, w-4)
	var lines []string
	lines = append(lines, m.st.Header.Render("Keys"))
	for _, k := range m.keys.helpKeys() {
		hk := k.Help()
		lines = append(lines, wrapDef(fmt.Sprintf("%-10s", hk.Key), hk.Desc, inner)...)
	}
	lines = append(lines, "", m.st.Header.Render("Commands")+" (the same as line mode; text without / goes to the conversation shown)")
	for _, c := range m.commands {
		use := "/" + c.Name
		if c.Usage != "" {
			use += " " + c.Usage
		}
		lines = append(lines, wrapDef(fmt.Sprintf("%-22s", use), c.Help, inner)...)
	}
	rows := max(1, h-2)
	maxScroll := max(0, len(lines)-rows)
	m.helpScroll = min(m.helpScroll, maxScroll)
	shown := lines[m.helpScroll:min(len(lines), m.helpScroll+rows)]
	for len(shown) < rows {
		shown = append(shown, "")
	}
	box := make([]string, 0, h)
	title := " help · Esc, F1 or q to close · Up/Down/PgUp/PgDn to scroll "
	if maxScroll > 0 {
		title += fmt.Sprintf("· %d/%d ", m.helpScroll+1, maxScroll+1)
	}
	top := "─" + cut(title, inner)
	top += strings.Repeat("─", max(0, inner+2-ansi.StringWidth(top)))
	box = append(box, "╭"+top+"╮")
	for _, l := range shown {
		box = append(box, "│ "+fit(l, inner)+" │")
	}
	box = append(box, "╰"+strings.Repeat("─", inner+2)+"╯")
	for i := range box {
		box[i] = fit(box[i], w)
	}
	return box[:min(len(box), h)]
}

// wrapDef lays out "term  definition" with the definition wrapped under
// itself.
func wrapDef(term, def string, w int) []string {
	tw := ansi.StringWidth(term) + 1
	if tw > w/2 {
		return wrap(term+" "+def, w)
	}
	ls := wrap(def, w-tw)
	for i := range ls {
		if i == 0 {
			ls[i] = term + " " + ls[i]
		} else {
			ls[i] = strings.Repeat(" ", tw) + ls[i]
		}
	}
	return ls
}
