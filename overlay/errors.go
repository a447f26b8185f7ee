package overlay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

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

// Dial failure kinds, the machine-readable part of a DialError. The set
// is closed: a consumer can rely on seeing only these.
const (
	// DialRefused: the address answered, but nothing listens on the port.
	DialRefused = "refused"
	// DialUnreachable: no route to the address (host or network down).
	DialUnreachable = "unreachable"
	// DialTimedOut: the address did not answer in time.
	DialTimedOut = "timed_out"
	// DialWrongPeer: a different peer answered at the address (its key
	// does not match the peer ID that was dialled).
	DialWrongPeer = "wrong_peer"
	// DialNoAddress: no address is known for the peer.
	DialNoAddress = "no_address"
	// DialFailed: any other failure (protocol, gater, resource limits).
	DialFailed = "failed"
)

// DialError is a failed dial, classified (ClassifyDial): what happened,
// in one line, with the libp2p error kept for errors.Is/As and logs.
type DialError struct {
	// Peer is the peer that was dialled.
	Peer peer.ID
	// Kind is one of the Dial* kinds.
	Kind string
	// Addr is the address the failure is about, empty when none.
	Addr string
	// Actual is the peer that answered instead, with DialWrongPeer.
	Actual peer.ID
	// Cause is the libp2p error; its text may span lines.
	Cause error
}

// Error is one line: "the peer at 127.0.0.1:4001 is 12D3…Xt8g, not
// 12D3…SYd1", "127.0.0.1:4001 refused the connection", ….
func (e *DialError) Error() string {
	at := e.Addr
	if at == "" {
		at = "its known addresses"
	}
	switch e.Kind {
	case DialWrongPeer:
		return fmt.Sprintf("the peer at %s is %s, not %s", at, ShortPeer(e.Actual), ShortPeer(e.Peer))
	case DialRefused:
		return fmt.Sprintf("%s refused the connection (nothing listens there)", at)
	case DialUnreachable:
		return fmt.Sprintf("%s is unreachable (no route)", at)
	case DialTimedOut:
		return fmt.Sprintf("%s did not answer in time", at)
	case DialNoAddress:
		return fmt.Sprintf("no address is known for %s", ShortPeer(e.Peer))
	}
	return fmt.Sprintf("cannot connect to %s at %s: %s", ShortPeer(e.Peer), at, oneLine(innermost(e.Cause)))
}

// Unwrap returns the libp2p error.
func (e *DialError) Unwrap() error { return e.Cause }

// ShortPeer abbreviates a peer ID for messages: "12D3…Xt8g".
func ShortPeer(p peer.ID) string {
	s := p.String()
	if len(s) <= 12 {
		return s
	}
	return s[:4] + "…" + s[len(s)-4:]
}

// ClassifyDial turns the error of a dial to p into a DialError, or
// returns nil when err is nil. A DialError in err is returned as it is.
// The kind is decided by errors.As / errors.Is on the libp2p and system
// errors (the security handshake's sec.ErrPeerIDMismatch, ECONNREFUSED,
// timeouts); of several failed addresses the most telling one wins (a
// wrong peer over a refusal over a timeout).
func ClassifyDial(p peer.ID, err error) *DialError {
	if err == nil {
		return nil
	}
	if de, ok := errors.AsType[*DialError](err); ok {
		return de
	}
	out := &DialError{Peer: p, Kind: DialFailed, Cause: err}
	if errors.Is(err, swarm.ErrNoAddresses) || errors.Is(err, routing.ErrNotFound) || errors.Is(err, kb.ErrLookupFailure) {
		out.Kind = DialNoAddress
		return out
	}
	var sd *swarm.DialError
	if !errors.As(err, &sd) || len(sd.DialErrors) == 0 {
		out.Kind, out.Actual = kindOf(err)
		return out
	}
	best := -1
	for _, te := range sd.DialErrors {
		kind, actual := kindOf(te.Cause)
		if r := kindRank(kind); r > best {
			best = r
			out.Kind, out.Actual, out.Addr = kind, actual, hostPort(te.Address)
		}
	}
	return out
}

// kindOf classifies the error of one address.
func kindOf(err error) (string, peer.ID) {
	var mismatch sec.ErrPeerIDMismatch
	var mismatchp *sec.ErrPeerIDMismatch
	var nerr net.Error
	switch {
	case errors.As(err, &mismatch):
		return DialWrongPeer, mismatch.Actual
	case errors.As(err, &mismatchp) && mismatchp != nil:
		return DialWrongPeer, mismatchp.Actual
	case errors.Is(err, syscall.ECONNREFUSED):
		return DialRefused, ""
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return DialUnreachable, ""
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return DialTimedOut, ""
	case strings.Contains(err.Error(), "connection refused"):
		// QUIC and some transports lose the errno on the way.
		return DialRefused, ""
	case strings.Contains(err.Error(), "peer id mismatch"):
		return DialWrongPeer, ""
	}
	return DialFailed, ""
}

// kindRank orders kinds by how much they tell the user.
func kindRank(kind string) int {
	switch kind {
	case DialWrongPeer:
		return 5
	case DialRefused:
		return 4
	case DialUnreachable:
		return 3
	case DialTimedOut:
		return 2
	case DialFailed:
		return 1
	}
	return 0
}

// hostPort renders a dial address as people write it: "127.0.0.1:4001",
// "[::1]:4001", or the multiaddr when it is no plain IP and port.
func hostPort(a ma.Multiaddr) string {
	if a == nil {
		return ""
	}
	if na, err := manet.ToNetAddr(a); err == nil {
		return na.String()
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return a.String()
	}
	for _, c := range a {
		if c.Code() == ma.P_UDP || c.Code() == ma.P_TCP {
			return net.JoinHostPort(ip.String(), c.Value())
		}
	}
	return a.String()
}

// innermost returns the deepest single-wrapped error of err.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// oneLine joins the lines of s.
func oneLine(s error) string {
	return strings.Join(strings.Fields(s.Error()), " ")
}
