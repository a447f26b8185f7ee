// Package tui is Parley's full-screen terminal UI, built on bubbletea,
// bubbles and lipgloss. cmd/parley opens it when stdin and stdout are both
// terminals and neither --line nor --json is given; everywhere else line
// mode (or JSON events) stays in charge.
//
// The package owns:
//
//   - Run, the runner: it feeds the node's event queue to the model in
//     batches, runs the UI's actions (actions.go) one at a time, in order
//     and off the UI goroutine, ticks to refresh its snapshots, and
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
//   - Backend and TransferLister, what the UI needs from a node, Commands,
//     the slash-command session (package command) that runs the lines the
//     user types, and LogSink, which shows the node's log lines in the
//     status window while the UI owns the terminal.
//
// The UI calls the node's typed operations with the room or peer on
// screen: text in a room is Backend.Say with that room, text in a private
// conversation Backend.SendDM with that peer, Alt+A Backend.Accept with
// the offer shown. It builds no command strings and reads no display
// text: a slash command the user types goes to Commands.Exec, whose typed
// Reply says which room or conversation to show next. Human text (names,
// sizes, answers) comes from package present, as in line mode.
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
