package present

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/trust"
)

// Reached answers /connect PEER: who is now connected and by which path.
func Reached(w trust.WhoisInfo) string {
	return fmt.Sprintf("connected to %s: %s", Member(w.Nick, w.ID), PathText(string(w.Path), w.Via, w.ViaNick, w.HolePunched))
}

// Forgot answers /forget PEER.
func Forgot(typed string, p peer.ID, known bool) string {
	if !known {
		return fmt.Sprintf("nothing was known about %s", safetext.Line(typed))
	}
	return fmt.Sprintf("forgot %s (%s): its nick, trust mark and nick pins; a nick it held goes to the next peer seen with it", safetext.Line(typed), ShortID(p.String()))
}
