package present

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/transfer"
	"github.com/parley-chat/parley/trust"
)

// The answers of slash commands, for line mode and the terminal UI.

// ID answers /id.
func ID(info node.IDInfo) string {
	var b strings.Builder
	reach := reachVerdict(info.Reachability, len(info.Relays))
	fmt.Fprintf(&b, "peer id:     %s\nfingerprint: %s\nnick:        %s\ndata dir:    %s\ndownloads:   %s\nreachable:   %s",
		info.PeerID, info.Fingerprint, safetext.Line(info.Nick), safetext.Line(info.DataDir), safetext.Line(info.Downloads), reach)
	for _, a := range info.Addrs {
		fmt.Fprintf(&b, "\naddr:        %s", safetext.Line(a))
	}
	return b.String()
}

// reachVerdict is AutoNAT's verdict with the relays holding a
// reservation: "private, through 2 relay(s)".
func reachVerdict(verdict string, relays int) string {
	s := safetext.Line(verdict)
	if relays > 0 {
		s += fmt.Sprintf(", through %d relay(s)", relays)
	}
	return s
}

// Peers answers /peers.
func Peers(rows []node.PeerRow, reachability string, relays int) string {
	var b strings.Builder
	reach := reachVerdict(reachability, relays)
	fmt.Fprintf(&b, "%d connected peer(s); reachability: %s", len(rows), reach)
	for _, r := range rows {
		fmt.Fprintf(&b, "\n  %s  %s %s, rtt %s", Member(r.Nick, r.PeerID),
			PathText(string(r.Path), r.Via, r.ViaNick, r.HolePunched), safetext.Line(r.Addr), RTT(r.RTT))
	}
	return b.String()
}

// Created answers /create.
func Created(ref node.RoomRef) string {
	return fmt.Sprintf("created private room %s; give this invite code to the people you want in it (it holds the room key):\n  %s",
		safetext.Line(ref.Room), ref.Invite)
}

// Invite answers /invite.
func Invite(ref node.RoomRef) string {
	return fmt.Sprintf("invite code for %s (it holds the room key):\n  %s", safetext.Line(ref.Room), ref.Invite)
}

// Current answers /switch.
func Current(room string) string { return "current room: " + safetext.Line(room) }

// Rooms answers /rooms.
func Rooms(rows []node.RoomRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d room(s)", len(rows))
	for _, r := range rows {
		mark, kind := " ", "public"
		if r.Current {
			mark = "*"
		}
		if r.Private {
			kind = "private"
		}
		fmt.Fprintf(&b, "\n %s %s (%s, %d online)", mark, safetext.Line(r.Room), kind, r.Members)
	}
	return b.String()
}

// Who answers /who.
func Who(room string, rows []node.MemberRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "members of %s:", safetext.Line(room))
	for _, m := range rows {
		state := "online"
		switch {
		case m.Self:
			state = "you"
		case !m.Online:
			state = "gone, last seen " + m.LastSeen.Local().Format("Jan 2 15:04")
		}
		fmt.Fprintf(&b, "\n  %s (%s) %s", safetext.Line(m.Nick), safetext.Line(m.Fingerprint), state)
	}
	return b.String()
}

// History answers /history.
func History(room string, msgs []events.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "last %d message(s) in %s:", len(msgs), safetext.Line(room))
	for _, m := range msgs {
		b.WriteString("\n")
		b.WriteString(Message(m))
	}
	return b.String()
}

// Safety answers /verify; typed is what the user typed to name the peer.
// It is one of the two answers (with /id and /whois) that show a peer's
// full ID and fingerprint: they are what is compared.
func Safety(si node.SafetyInfo, typed string) string {
	name := Peer(si.Nick, si.PeerID, false)
	next := fmt.Sprintf("If it matches, run /trust %s.", safetext.Line(typed))
	if si.Trusted {
		next = fmt.Sprintf("You already trust %s (/untrust %s undoes it).", name, safetext.Line(typed))
	}
	return fmt.Sprintf("safety number with %s, peer id %s, fingerprint %s:\n  %s\nCompare it with %s over a channel you trust (in person, a call).\n%s",
		name, si.PeerID, identity.Fingerprint(si.PeerID), si.SafetyNumber, name, next)
}

// Trusted answers /trust (trusted true) and /untrust.
func Trusted(info trust.PeerInfo, p peer.ID, trusted bool) string {
	if trusted {
		return Member(info.Nick, p) + " is now trusted"
	}
	return Member(info.Nick, p) + " is no longer trusted"
}

// RTT renders a round-trip time for people: "12ms", "<1ms" on a loopback
// or LAN link that rounds to nothing, "not measured yet" for 0.
func RTT(d time.Duration) string {
	switch {
	case d <= 0:
		return "not measured yet"
	case d < time.Millisecond:
		return "<1ms"
	}
	return d.Round(time.Millisecond).String()
}

// Whois answers /whois.
func Whois(w trust.WhoisInfo) string {
	var b strings.Builder
	nick := safetext.Line(w.Nick)
	if w.Nick == "" {
		nick = "(no nick seen)"
	}
	fmt.Fprintf(&b, "%s  %s\n", nick, w.ID)
	fmt.Fprintf(&b, "  fingerprint: %s\n", w.Fingerprint)
	verdict := "not verified (compare /verify, then /trust)"
	if w.Trusted {
		verdict = "verified " + w.TrustedAt.Format(time.DateTime)
	}
	fmt.Fprintf(&b, "  trust:       %s\n", verdict)
	if w.Nick != "" && !w.Pinned {
		fmt.Fprintf(&b, "  WARNING:     the nick %q is pinned to another key\n", safetext.Line(w.Nick))
	}
	if !w.FirstSeen.IsZero() {
		last := w.LastSeen.Format(time.DateTime)
		if w.Path != overlay.PathNone {
			last = "now (connected)"
		}
		fmt.Fprintf(&b, "  seen:        first %s, last %s\n", w.FirstSeen.Format(time.DateTime), last)
	}
	path := PathText(string(w.Path), w.Via, w.ViaNick, w.HolePunched)
	if w.Path == overlay.PathNone {
		path = "not connected"
		if w.Unreachable != "" {
			path += ": " + safetext.Line(w.Unreachable)
		}
	}
	fmt.Fprintf(&b, "  connection:  %s\n", path)
	for _, c := range w.Conns {
		cp := string(c.Path)
		if c.HolePunched {
			cp += " (hole-punched)"
		}
		fmt.Fprintf(&b, "    %s %s %s\n", c.Direction, cp, safetext.Line(c.Addr))
	}
	if len(w.Addrs) > 0 {
		b.WriteString("  addresses:\n")
		for _, a := range w.Addrs {
			// Addresses come from the peer (identify): a DNS name may
			// hold newlines and escapes.
			fmt.Fprintf(&b, "    %s\n", safetext.Line(a))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Offered answers /send; to is the peer as the user named it. The file
// is hashed first; the offer goes out when that is done.
func Offered(path, to, id string) string {
	return fmt.Sprintf("offering %s to %s as transfer %s (hashing it first; /cancel %s stops it)",
		safetext.Line(filepath.Base(path)), safetext.Line(to), id, ShortID(id))
}

// SendWaiting is what parley send says once its offer is on its way: the
// file is hashed, then offered, and the command waits for the recipient
// (named as Member names it) to accept.
func SendWaiting(path, to, id string) string {
	return fmt.Sprintf("* offering %s to %s as transfer %s; waiting for %s to accept it (Ctrl-C stops; the same command resumes)",
		safetext.Line(filepath.Base(path)), to, ShortID(id), to)
}

// Sharing answers /share: the file is hashed first, then announced.
func Sharing(path, room, id string) string {
	return fmt.Sprintf("sharing %s in #%s as %s (hashing it first; /cancel %s stops it)",
		safetext.Line(filepath.Base(path)), safetext.Line(room), id, ShortID(id))
}

// Shared says that a share was hashed and announced in its room.
func Shared(sh transfer.Share, room string) string {
	return fmt.Sprintf("shared %s in #%s as %s", safetext.Line(sh.Name), safetext.Line(room), sh.ID)
}

// Transfers answers /transfers.
func Transfers(list []transfer.Info) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d transfer(s)", len(list))
	for _, t := range list {
		fmt.Fprintf(&b, "\n  %s %-7s %-9s %s %s", ShortID(t.ID), t.Direction, t.State, safetext.Line(t.Name), Progress(t.Bytes, t.Size, t.Rate))
		if t.Error != "" {
			fmt.Fprintf(&b, " (%s)", safetext.Line(t.Error))
		}
	}
	return b.String()
}

// Nick answers /nick without and with a new nick.
func Nick(nick string, changed bool) string {
	if changed {
		return "nick is now " + safetext.Line(nick)
	}
	return "nick: " + safetext.Line(nick)
}

// Command is one slash command for Help.
type Command struct {
	Name  string // without the slash
	Usage string // arguments, e.g. "PEER TEXT"
	Help  string
}

// Help answers /help; cmds are sorted by name.
func Help(cmds []Command) string {
	var b strings.Builder
	b.WriteString("commands:")
	for _, c := range cmds {
		use := "/" + c.Name
		if c.Usage != "" {
			use += " " + c.Usage
		}
		fmt.Fprintf(&b, "\n  %-28s %s", use, c.Help)
	}
	b.WriteString("\n  text without a leading / goes to the current room; //text sends /text")
	return b.String()
}
