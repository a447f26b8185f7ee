package present

import (
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
)

// Message renders a room message: local time, room, author and text, with
// every control character neutralised. The author is the nick, with the
// short fingerprint when another member shares it. A multi-line text keeps
// its line breaks, but every continuation line is indented, so that no
// line of a message can pass for a message of its own.
func Message(m events.Message) string {
	text := strings.ReplaceAll(safetext.Block(m.Text), "\n", "\n    ")
	return fmt.Sprintf("[%s] #%s <%s> %s", Clock(m.SentAt), safetext.Line(m.Room), Peer(m.Nick, m.From, m.NickShared), text)
}

// Event renders an event as line mode shows it: one line, or a block for
// multi-line answers of the node's own (help, /id). namer names peers the
// event gives only by ID; it may be nil. Every field goes through
// safetext, also those the node fills itself (addresses may come from
// peers: a DNS name can hold escapes).
func Event(e events.Event, namer Namer) string {
	l := safetext.Line
	switch e := e.(type) {
	case events.Ready:
		var b strings.Builder
		fmt.Fprintf(&b, "* ready: %s (%s), peer id %s", l(e.Nick), l(e.Fingerprint), e.PeerID)
		for _, a := range e.Addrs {
			fmt.Fprintf(&b, "\n*   listening on %s", l(a))
		}
		return b.String()
	case events.PeerConnected:
		return fmt.Sprintf("* connected: %s at %s", MemberBy(namer, e.PeerID), l(e.Addr))
	case events.PeerDisconnected:
		if e.Reason == "liveness" {
			return fmt.Sprintf("* disconnected: %s (stopped answering pings)", MemberBy(namer, e.PeerID))
		}
		return "* disconnected: " + MemberBy(namer, e.PeerID)
	case events.Error:
		return "! " + l(e.Error)
	case events.Info:
		return safetext.Block(e.Text)
	case events.Message:
		return Message(e)
	case events.Joined:
		return "* joined #" + l(e.Room)
	case events.Left:
		return "* left #" + l(e.Room)
	case events.Presence:
		return fmt.Sprintf("* #%s: %s %s", l(e.Room), Member(e.Nick, e.PeerID), presenceState(e.Online))
	case events.RoomSync:
		return fmt.Sprintf("* #%s: %s", l(e.Room), RoomSync(e))
	case events.Membership:
		return fmt.Sprintf("* #%s: %s", l(e.Room), Membership(e, namer))
	case events.Reachability:
		return "* " + Reachability(e.Reachability, len(e.Relays))
	case events.PeerPath:
		via := ""
		if e.Via != "" {
			via = MemberBy(namer, e.Via)
		}
		return "* " + PeerPath(e, MemberBy(namer, e.PeerID), via)
	case events.PeerDialFailed:
		return "! " + DialFailed(MemberBy(namer, e.PeerID), e)
	case events.DM:
		return fmt.Sprintf("[%s] [dm] <%s> %s", Clock(e.SentAt), Member(e.Nick, e.From), l(e.Text))
	case events.DMStatus:
		line := fmt.Sprintf("  (dm %s to %s: %s", ShortID(e.ID), MemberBy(namer, e.To), l(e.State))
		if e.Error != "" {
			line += ": " + l(e.Error)
		}
		if e.Detail != "" {
			line += ", waiting: " + l(e.Detail)
		}
		return line + ")"
	case events.MailboxPickup:
		if e.Items == 0 {
			return fmt.Sprintf("* %s keeps sealed direct messages for you while you are offline", MemberBy(namer, e.Holder))
		}
		return fmt.Sprintf("* picked up %d sealed deposits from %s", e.Items, MemberBy(namer, e.Holder))
	case events.FileOffer:
		id := ShortID(e.TransferID)
		where := fmt.Sprintf("from %s; /accept %s or /reject %s", MemberBy(namer, e.From), id, id)
		if e.Room != "" {
			where = fmt.Sprintf("shared in #%s by %s; /fetch %s", l(e.Room), MemberBy(namer, e.From), id)
		}
		return fmt.Sprintf("* file offer %s: %s (%s) %s", id, l(e.Name), Bytes(e.Size), where)
	case events.FileHashing:
		return fmt.Sprintf("  %s hashing %s %s", ShortID(e.TransferID), l(e.Name), Progress(e.Bytes, e.Size, 0))
	case events.FileProgress:
		if e.Waiting && e.Code != "" {
			return fmt.Sprintf("  %s %s %s, waiting: %s (%s, then /resume %s)", ShortID(e.TransferID), l(e.Direction),
				Progress(e.Bytes, e.Size, 0), l(e.Reason), waitFix(e.Code), ShortID(e.TransferID))
		}
		if e.Waiting {
			other := "sender"
			if e.Direction == "send" {
				other = "recipient"
			}
			return fmt.Sprintf("  %s %s %s, waiting for the %s (resumes when it is back, or /resume)", ShortID(e.TransferID), l(e.Direction), Progress(e.Bytes, e.Size, 0), other)
		}
		return fmt.Sprintf("  %s %s %s", ShortID(e.TransferID), l(e.Direction), Progress(e.Bytes, e.Size, e.Rate))
	case events.FileDone:
		return fmt.Sprintf("* file %s done: %s (%s, blake3 %s)", ShortID(e.TransferID), l(e.Path), Bytes(e.Size), ShortID(e.Hash))
	case events.FileFailed:
		return fmt.Sprintf("! file %s failed: %s", ShortID(e.TransferID), l(e.Error))
	case events.FileRejected:
		return fmt.Sprintf("* file %s was rejected", ShortID(e.TransferID))
	case events.TrustWarning:
		return "!!! " + TrustWarning(e)
	default:
		b, err := events.MarshalJSON(e)
		if err != nil {
			return "! cannot render " + l(e.Type()) + " event"
		}
		return "* " + l(string(b))
	}
}

// RoomSync renders a room's history sync state, without the room:
// "history complete since Dec 1 12:00, 3 caught up".
func RoomSync(e events.RoomSync) string {
	caught := ""
	if e.CaughtUp > 0 {
		caught = fmt.Sprintf(", %d caught up", e.CaughtUp)
	}
	switch e.State {
	case events.SyncWaiting:
		return "history: waiting for a member to sync with"
	case events.SyncSyncing:
		return "history: syncing"
	case events.SyncComplete:
		return "history complete since " + stamp(e.Since) + caught
	case events.SyncGaps:
		var b strings.Builder
		b.WriteString("history has gaps:")
		for i, g := range e.Gaps {
			if i > 0 {
				b.WriteString(";")
			}
			if g.Missing == 0 {
				fmt.Fprintf(&b, " anything since %s may be missing (no member could be synced with)", stamp(g.From))
				continue
			}
			fmt.Fprintf(&b, " %d missing between %s and %s", g.Missing, stamp(g.From), stamp(g.To))
		}
		return b.String() + caught
	}
	return "history: " + safetext.Line(e.State)
}

// SyncShort renders a history sync state in a few words, for a header.
func SyncShort(state string) string {
	switch state {
	case events.SyncWaiting:
		return "history: no member to sync with"
	case events.SyncSyncing:
		return "syncing history"
	case events.SyncComplete:
		return "history complete"
	case events.SyncGaps:
		return "history has gaps"
	}
	return ""
}

// stamp renders a time with the date, in local time: "Dec 1 12:00".
func stamp(t time.Time) string { return t.Local().Format("Jan 2 15:04") }

// TrustWarning renders a trust_warning for people, beginning with
// "WARNING:" once (the event's text may begin with it already).
func TrustWarning(e events.TrustWarning) string {
	return "WARNING: " + strings.TrimPrefix(safetext.Line(e.Text), "WARNING: ")
}

func presenceState(online bool) string {
	if online {
		return "is here"
	}
	return "is gone"
}

// Presence renders a member arriving or leaving, without the room:
// "alice (ABCD) is here".
func Presence(e events.Presence) string {
	return Member(e.Nick, e.PeerID) + " " + presenceState(e.Online)
}

// Reachability renders the node's reachability verdict:
// "reachability: private, reachable through 1 relay(s)".
func Reachability(verdict string, relays int) string {
	s := "reachability: " + safetext.Line(verdict)
	if relays > 0 {
		s += fmt.Sprintf(", reachable through %d relay(s)", relays)
	}
	return s
}

// DialFailed renders a failed attempt to reach a kept peer, in one line:
// "cannot reach alice: 127.0.0.1:4001 refused the connection (nothing
// listens there); retrying in 2s".
// name is the peer as the caller names it (Member, MemberBy).
func DialFailed(name string, e events.PeerDialFailed) string {
	s := fmt.Sprintf("cannot reach %s: %s", name, safetext.Line(e.Error))
	if e.RetryIn > 0 {
		s += "; retrying in " + e.RetryIn.Round(100*time.Millisecond).String()
	}
	return s
}

// PeerPath describes a peer_path event for people, with name the peer's
// name and viaName the relay's (used only when e names a relay): "bob
// (ABCD) now relayed via carol (EFGH) (was lan), at ADDR".
func PeerPath(e events.PeerPath, name, viaName string) string {
	path := safetext.Line(e.Path)
	switch {
	case e.Via != "":
		path += " via " + viaName
	case e.HolePunched:
		path += ", hole-punched"
	}
	return fmt.Sprintf("%s now %s (was %s), at %s", name, path, safetext.Line(e.Previous), safetext.Line(e.Addr))
}

// waitFix says what the user does about a transfer waiting on its own
// node's disk (FileProgress.Code).
func waitFix(code string) string {
	if code == events.WaitNoSpace {
		return "this disk is full: free some space"
	}
	return "fix this disk"
}
