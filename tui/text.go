package tui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/parley-chat/parley/internal/safetext"
)

// Every string that came from a peer (nicks, room names, messages, file
// names, error texts that quote them) passes through clean or cleanBlock
// before it is styled or measured: control characters, escape sequences,
// bidi overrides and invalid UTF-8 become visible escapes such as \x1b, so
// nothing a peer sends can move the cursor, change colours or set the
// window title. Only the UI's own lipgloss styles emit escape sequences.

// clean makes s inert for display on one line.
func clean(s string) string { return safetext.Line(s) }

// cleanBlock makes s inert for display on several lines: newlines stay,
// tabs become spaces.
func cleanBlock(s string) string {
	return strings.ReplaceAll(safetext.Block(s), "\t", "    ")
}

// fit cuts s (which may hold the UI's own SGR sequences) to w cells,
// ending in "…" when cut, and pads it with spaces to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	sw := ansi.StringWidth(s)
	if sw > w {
		s = ansi.Truncate(s, w, "…")
		sw = ansi.StringWidth(s)
	}
	if sw < w {
		s += strings.Repeat(" ", w-sw)
	}
	return s
}

// cut shortens plain text to w cells, ending in "…" when cut.
func cut(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// render styles every line of s on its own, so that lipgloss neither pads
// lines to a common width nor lets a style run across a line break.
func render(st lipgloss.Style, s string) string {
	if !strings.Contains(s, "\n") {
		return st.Render(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = st.Render(l)
	}
	return strings.Join(lines, "\n")
}

// wrap breaks s (which may hold SGR sequences) into lines of at most w
// cells, at spaces where it can and inside words where it must.
func wrap(s string, w int) []string {
	if w < 1 {
		w = 1
	}
	return strings.Split(ansi.Wrap(s, w, ""), "\n")
}
