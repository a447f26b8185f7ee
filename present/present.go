// Package present makes all of Parley's human text: the lines of line
// mode, the answers of slash commands, and the names, sizes and times the
// terminal UI shows. Line mode (cmd/parley) and the terminal UI (tui) use
// it; nothing below them formats text for people.
//
// Every string that came from a peer (nicks, room names, message texts,
// file names, addresses, error texts that quote them) goes through
// internal/safetext here, so what this package returns is inert on a
// terminal.
//
// A peer is named one way everywhere: by the nick it claims, with its
// short fingerprint where the nick is shared with another peer, and by
// the short fingerprint alone while its nick is unknown (Peer). Lines
// about a peer rather than by it (it came, left, connected, wrote
// privately, offers a file) always add the fingerprint (Member).
package present

import (
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/safetext"
)

// Namer looks up the nick a peer last claimed ("" when none);
// *node.Node implements it.
type Namer interface {
	PeerName(p peer.ID) string
}

// Peer names a peer: "alice", "alice (ABCD)" when the nick is shared, or
// "ABCD" (the short fingerprint) when the nick is unknown. The result is
// inert.
func Peer(nick string, p peer.ID, shared bool) string {
	fp := identity.ShortFingerprint(p)
	switch {
	case nick == "":
		return fp
	case shared:
		return safetext.Line(nick) + " (" + fp + ")"
	default:
		return safetext.Line(nick)
	}
}

// Member names the peer an event is about (it came, left, connected,
// wrote privately, offers a file): always with its short fingerprint,
// "alice (ABCD)", or "ABCD" while its nick is unknown, since these are
// the moments to tell peers apart.
func Member(nick string, p peer.ID) string {
	return Peer(nick, p, true)
}

// MemberBy is Member with the nick namer knows for p; namer may be nil.
func MemberBy(namer Namer, p peer.ID) string {
	if namer == nil {
		return Member("", p)
	}
	return Member(namer.PeerName(p), p)
}

// PathText describes a peer's connection path for people: "lan",
// "direct", "direct, hole-punched", "relayed via alice (ABCD)" or
// "relayed" when the relay is unknown. viaNick is the nick the relay last
// claimed. The result is inert.
func PathText(path string, via peer.ID, viaNick string, holePunched bool) string {
	s := safetext.Line(path)
	switch {
	case via != "":
		s += " via " + Member(viaNick, via)
	case holePunched:
		s += ", hole-punched"
	}
	return s
}

// ShortID abbreviates a message, transfer or hash id: its first 8
// characters.
func ShortID(id string) string {
	if len(id) <= 8 {
		return safetext.Line(id)
	}
	return safetext.Line(id[:8])
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 sequence,
// ending in "…" when cut. It does not make s inert.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Cut(s, n) + "…"
}

// Cut cuts s to at most n bytes without splitting a UTF-8 sequence
// (safetext.Cut). It does not make s inert.
func Cut(s string, n int) string { return safetext.Cut(s, n) }

// Clock renders a time as local HH:MM.
func Clock(t time.Time) string { return t.Local().Format("15:04") }

// Bytes renders a byte count with a binary unit: "512 B", "1.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", max(n, 0))
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ETA renders the time left for left bytes at rate bytes per second as
// "m:ss" or "h:mm:ss"; "--:--" when unknown.
func ETA(left, rate int64) string {
	if rate <= 0 || left < 0 {
		return "--:--"
	}
	s := left / rate
	if left%rate != 0 {
		s++
	}
	if s >= 100*3600 {
		return ">99h"
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// Progress renders progress as a bar with percentage, rate and ETA:
// "[#####-----]  50% 1.0 MiB/2.0 MiB  12.0 MiB/s  ETA 4s".
func Progress(done, size, rate int64) string {
	const width = 20
	frac := 1.0
	if size > 0 {
		frac = float64(done) / float64(size)
	}
	frac = min(max(frac, 0), 1)
	filled := int(frac * width)
	bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
	s := fmt.Sprintf("[%s] %3.0f%% %s/%s", bar, frac*100, Bytes(done), Bytes(size))
	if rate > 0 {
		s += fmt.Sprintf("  %s/s", Bytes(rate))
		if size > done {
			eta := time.Duration(float64(size-done) / float64(rate) * float64(time.Second))
			s += "  ETA " + eta.Round(time.Second).String()
		}
	}
	return s
}
