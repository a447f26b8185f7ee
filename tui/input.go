package tui

import (
	"slices"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
)

// maxHistory bounds the lines kept for Up/Down (in memory only; lines of
// secret commands such as /joinpass are never kept).
const maxHistory = 500

// history is the input history, browsed with Up and Down.
type history struct {
	lines    []string
	pos      int    // index of the line shown while browsing
	draft    string // what was typed before browsing started
	browsing bool
}

func (h *history) add(line string) {
	if n := len(h.lines); n == 0 || h.lines[n-1] != line {
		h.lines = append(h.lines, line)
		if len(h.lines) > maxHistory {
			h.lines = slices.Delete(h.lines, 0, len(h.lines)-maxHistory)
		}
	}
	h.reset()
}

func (h *history) reset() {
	h.pos, h.draft, h.browsing = len(h.lines), "", false
}

// prev returns the line before the one shown; cur is the input now.
func (h *history) prev(cur string) string {
	if len(h.lines) == 0 {
		return cur
	}
	if !h.browsing {
		h.browsing, h.draft, h.pos = true, cur, len(h.lines)
	}
	if h.pos > 0 {
		h.pos--
	}
	return h.lines[h.pos]
}

// next returns the line after the one shown, and finally the draft.
func (h *history) next(cur string) string {
	if !h.browsing {
		return cur
	}
	h.pos++
	if h.pos >= len(h.lines) {
		d := h.draft
		h.reset()
		return d
	}
	return h.lines[h.pos]
}

// completion is a Tab completion in progress: the input is head +
// cands[i] + tail, with the cursor after the candidate.
type completion struct {
	head, tail string
	cands      []string
	i          int
}

// Commands whose first argument is a room, or a peer.
var (
	roomArgCommands = []string{"join", "switch", "leave", "who", "invite", "history", "joinpass"}
	peerArgCommands = []string{"msg", "verify", "trust", "untrust", "whois", "send"}
)

// complete replaces the word before the cursor by the next (dir 1) or
// previous (dir -1) candidate: command names at the start of a line,
// rooms after /join and friends, nicks everywhere else.
func (m *Model) complete(dir int) {
	if m.comp == nil {
		val := []rune(m.input.Value())
		pos := min(m.input.Position(), len(val))
		before, after := string(val[:pos]), string(val[pos:])
		start := strings.LastIndexByte(before, ' ') + 1
		cands := m.candidates(before[:start], before[start:])
		if len(cands) == 0 {
			return
		}
		m.comp = &completion{head: before[:start], tail: after, cands: cands, i: -1}
		if dir < 0 {
			m.comp.i = 0
		}
	}
	c := m.comp
	n := len(c.cands)
	c.i = ((c.i+dir)%n + n) % n
	val := c.head + c.cands[c.i]
	m.input.SetValue(val + c.tail)
	m.input.SetCursor(len([]rune(val)))
}

// candidates lists the completions of word, which follows head on the
// line, sorted.
func (m *Model) candidates(head, word string) []string {
	fields := strings.Fields(head)
	var pool []string
	switch {
	case head == "" && strings.HasPrefix(word, "/"):
		for _, c := range m.commands {
			pool = append(pool, "/"+c.Name+" ")
		}
	case len(fields) == 1 && slices.Contains(roomArgCommands, commandName(fields[0])):
		for _, r := range m.rooms {
			pool = append(pool, r.Room+" ")
		}
	case len(fields) == 1 && slices.Contains(peerArgCommands, commandName(fields[0])):
		for _, n := range m.nicks() {
			pool = append(pool, n+" ")
		}
	default:
		suffix := " "
		if head == "" {
			suffix = ": "
		}
		for _, n := range m.nicks() {
			pool = append(pool, n+suffix)
		}
	}
	lw := strings.ToLower(word)
	var out []string
	for _, p := range pool {
		if strings.HasPrefix(strings.ToLower(p), lw) && safetext.IsClean(p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

// nicks returns the names peers go by, for completion: members of the
// shown room, listed peers and private conversations; a nick that two
// peers use comes as nick#FP (which /msg and friends understand).
func (m *Model) nicks() []string {
	type named struct {
		nick string
		id   peer.ID
		fp   string
	}
	var all []named
	if c := m.activeConv(); c.kind == convRoom {
		if ms, err := m.be.Members(c.name); err == nil {
			for _, mb := range ms {
				if !mb.Self {
					all = append(all, named{mb.Nick, mb.PeerID, mb.Fingerprint})
				}
			}
		}
	}
	for _, p := range m.peers {
		all = append(all, named{p.Nick, p.PeerID, p.Fingerprint})
	}
	for id, d := range m.dmInfo {
		all = append(all, named{d.nick, id, d.fp})
	}
	owners := make(map[string]map[peer.ID]bool)
	for _, n := range all {
		if n.nick == "" || n.id == m.self.PeerID {
			continue
		}
		k := identity.NickKey(n.nick)
		if owners[k] == nil {
			owners[k] = make(map[peer.ID]bool)
		}
		owners[k][n.id] = true
	}
	var out []string
	for _, n := range all {
		if n.nick == "" || n.id == m.self.PeerID {
			continue
		}
		name := n.nick
		if len(owners[identity.NickKey(n.nick)]) > 1 {
			name += "#" + n.fp
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}
