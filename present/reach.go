package present

import (
	"fmt"

	"github.com/parley-chat/parley/trust"
)

// Reached answers /connect PEER: who is now connected and by which path.
func Reached(w trust.WhoisInfo) string {
	return fmt.Sprintf("connected to %s: %s", Member(w.Nick, w.ID), PathText(string(w.Path), w.Via, w.ViaNick, w.HolePunched))
}
