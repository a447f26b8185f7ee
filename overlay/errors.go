package overlay

import "errors"

var (
	// ErrNoPeerID is returned for a peer multiaddr without /p2p/<id>.
	ErrNoPeerID = errors.New("multiaddr has no /p2p/<peer-id> part")
	// ErrSelfDial is returned when asked to keep a connection to ourselves.
	ErrSelfDial = errors.New("multiaddr points at this node itself")
)
