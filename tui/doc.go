// Package tui is Parley's full-screen terminal UI, built on bubbletea,
// bubbles and lipgloss. cmd/parley opens it when stdin and stdout are both
// terminals and neither --line nor --json is given; everywhere else line
// mode (or JSON events) stays in charge.
//
// The package owns:
//
//   - Run, the runner: it feeds the node's event queue to the model in
//     batches, runs typed lines through Backend.Exec one at a time, in
//     order and off the UI goroutine, ticks to refresh its snapshots, and
//     restores the terminal before it returns (closing the node is the
//     caller's job).
//   - Model, the bubbletea model (New, Options): the conversations (the
//     status window, joined rooms, private conversations) with bounded
//     scrollback, the peers list, the input line with its history and Tab
//     completion, the help overlay, and the file transfers: the offer
//     popup answered with Alt+A and Alt+R and the progress rows above the
//     input.
//   - The views that draw all of this at any size from 40x10 up, the key
//     bindings, and Styles, which honour NO_COLOR.
//   - Backend and TransferLister, what the UI needs from a node, and
//     LogSink, which shows the node's log lines in the status window
//     while the UI owns the terminal.
//
// The UI changes nothing by itself: every action, including accepting a
// file, is a slash command line given to Backend.Exec, exactly as line
// mode would send it; the rest of Backend is read-only snapshots.
//
// Nicks, room names, message texts, file names, addresses, error texts
// and log lines are untrusted: they come from peers or quote them. Every
// such string goes through internal/safetext (clean, cleanBlock) before
// it is measured, wrapped or styled: control characters, escape
// sequences and bidi overrides are shown as visible escapes such as \x1b,
// invalid UTF-8 as U+FFFD, and none of it acts on the terminal. The only escape
// sequences the UI writes are its own lipgloss styles and bubbletea's
// screen control; it never sets the window title or runs a program.
// The injection golden tests check this screen by screen.
//
// docs/TUI.md describes the screen, the keys and how to update the golden
// screens in testdata.
package tui
