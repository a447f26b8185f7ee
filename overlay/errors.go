package overlay

import "errors"

var (
	// ErrNoPeerID is returned for a peer multiaddr without /p2p/<id>.
	ErrNoPeerID = errors.New("multiaddr has no /p2p/<peer-id> part")
	// ErrSelfDial is returned when asked to keep a connection to ourselves.
	ErrSelfDial = errors.New("multiaddr points at this node itself")
	// ErrBadNamespace is returned for an empty or too long rendezvous
	// namespace.
	ErrBadNamespace = errors.New("rendezvous namespace must be 1 to 256 bytes")
	// ErrNoDHT is returned by rendezvous calls on a host without a DHT.
	ErrNoDHT = errors.New("no DHT: rendezvous needs a DHT (DHTMode is off)")
	// ErrClosed is returned by calls on a closed host.
	ErrClosed = errors.New("overlay host is closed")
)
