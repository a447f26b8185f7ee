package tui

import (
	"hash/fnv"

	"github.com/charmbracelet/lipgloss"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/muesli/termenv"
)

// nickPalette are the colours nicks are drawn in: the terminal's own
// basic colours (so they follow the user's theme) without black, white and
// the greys that vanish on one background or the other.
var nickPalette = []string{"1", "2", "3", "4", "5", "6", "9", "10", "11", "12", "13", "14"}

// Styles are the UI's lipgloss styles, made from one renderer so that the
// colour profile (including NO_COLOR's "no colours") applies to all of
// them. Every style only ever wraps text that went through safetext.
type Styles struct {
	r *lipgloss.Renderer

	Time      lipgloss.Style // message timestamps
	Self      lipgloss.Style // this node's nick
	System    lipgloss.Style // "* joined", info answers, presence
	Error     lipgloss.Style // "! ..." command failures
	Warning   lipgloss.Style // trust warnings
	Mark      lipgloss.Style // delivery marks, queued and sent
	Delivered lipgloss.Style // delivery mark, delivered
	Failed    lipgloss.Style // delivery mark, failed
	Header    lipgloss.Style // pane titles
	Selected  lipgloss.Style // the active conversation, the peer under the cursor
	Unread    lipgloss.Style // unread counts
	Dim       lipgloss.Style // separators, offline peers, log lines
	Trusted   lipgloss.Style // trust mark
	Status    lipgloss.Style // status bar
	Prompt    lipgloss.Style // input prompt
	Popup     lipgloss.Style // transfer offer box
	Overlay   lipgloss.Style // help overlay box
	Bar       lipgloss.Style // filled part of a progress bar

	nicks []lipgloss.Style
}

// NewStyles returns the styles for r. With noColor, colours are dropped
// whatever the terminal supports (bold, reverse and underline remain, as
// NO_COLOR allows).
func NewStyles(r *lipgloss.Renderer, noColor bool) Styles {
	if noColor {
		r.SetColorProfile(termenv.Ascii)
	}
	s := Styles{
		r:         r,
		Time:      r.NewStyle().Foreground(lipgloss.Color("8")),
		Self:      r.NewStyle().Bold(true),
		System:    r.NewStyle().Foreground(lipgloss.Color("8")),
		Error:     r.NewStyle().Foreground(lipgloss.Color("9")).Bold(true),
		Warning:   r.NewStyle().Foreground(lipgloss.Color("9")).Bold(true).Underline(true),
		Mark:      r.NewStyle().Foreground(lipgloss.Color("8")),
		Delivered: r.NewStyle().Foreground(lipgloss.Color("2")),
		Failed:    r.NewStyle().Foreground(lipgloss.Color("9")).Bold(true),
		Header:    r.NewStyle().Bold(true),
		Selected:  r.NewStyle().Reverse(true),
		Unread:    r.NewStyle().Foreground(lipgloss.Color("11")).Bold(true),
		Dim:       r.NewStyle().Foreground(lipgloss.Color("8")),
		Trusted:   r.NewStyle().Foreground(lipgloss.Color("2")).Bold(true),
		Status:    r.NewStyle().Reverse(true),
		Prompt:    r.NewStyle().Bold(true),
		Popup:     r.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1),
		Overlay:   r.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1),
		Bar:       r.NewStyle().Foreground(lipgloss.Color("6")),
	}
	for _, c := range nickPalette {
		s.nicks = append(s.nicks, r.NewStyle().Foreground(lipgloss.Color(c)))
	}
	return s
}

// Nick returns the style of a peer's nick: a colour derived from its peer
// ID, so it stays the same across nick changes and restarts and differs
// between two peers that use the same nick (most of the time: there are
// 12 colours; the fingerprint tells them apart for sure).
func (s Styles) Nick(p peer.ID) lipgloss.Style {
	h := fnv.New32a()
	_, _ = h.Write([]byte(p.String()))
	return s.nicks[h.Sum32()%uint32(len(s.nicks))] // #nosec G115 -- a short, non-empty palette
}

// NewStyle returns an empty style of the same renderer.
func (s Styles) NewStyle() lipgloss.Style { return s.r.NewStyle() }
