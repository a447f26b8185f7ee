package node

import "errors"

// Sentinel errors of the node's operations; match them with errors.Is.
// The wrapped errors name the value that failed.
var (
	// ErrNotJoined: the operation names a room this node is not in.
	ErrNotJoined = errors.New("not in room")
	// ErrOwnAddress: /connect was given this node's own address.
	ErrOwnAddress = errors.New("this node's own address")
	// ErrNotRunning: the service an operation needs is not running (a
	// node built for one job, such as parley send or serve).
	ErrNotRunning = errors.New("not running")
	// ErrClosed: the node is closing or closed.
	ErrClosed = errors.New("node closed")
)
