package mailbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/internal/pbframe"
	"github.com/parley-chat/parley/mailbox/pb"
)

// Client talks the holder protocol on streams it opens with Open.
type Client struct {
	// Open opens a stream of protocol proto to p (reaching it if needed).
	Open func(ctx context.Context, p peer.ID, proto string) (network.Stream, error)
	// Timeout is the deadline of each frame. Default 10 s.
	Timeout time.Duration
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultStreamTimeout
	}
	return c.Timeout
}

// session is one open stream to a holder.
type session struct {
	str network.Stream
	br  *bufio.Reader
	d   time.Duration
}

func (c *Client) session(ctx context.Context, p peer.ID, proto string) (*session, func(), error) {
	str, err := c.Open(ctx, p, proto)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s stream to %s: %w", proto, p, err)
	}
	if err := str.Scope().SetService(ServiceName); err != nil {
		_ = str.Reset()
		return nil, nil, fmt.Errorf("attach stream to %s: %w", ServiceName, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = str.Reset() })
	done := func() {
		stop()
		_ = str.Close()
	}
	return &session{str: str, br: bufio.NewReaderSize(str, 4<<10), d: c.timeout()}, done, nil
}

func (s *session) write(reqs ...*pb.Request) error {
	var buf []byte
	for _, r := range reqs {
		var err error
		if buf, err = pbframe.Append(buf, r); err != nil {
			return err
		}
	}
	if err := s.str.SetWriteDeadline(time.Now().Add(s.d)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := s.str.Write(buf); err != nil {
		return fmt.Errorf("write %d requests: %w", len(reqs), err)
	}
	return nil
}

func (s *session) read() (*pb.Response, error) {
	if err := s.str.SetReadDeadline(time.Now().Add(s.d)); err != nil {
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	var r pb.Response
	if err := pbframe.Read(s.br, MaxResponseSize, &r); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return &r, nil
}

// DepositReq is one seal to leave in a mailbox.
type DepositReq struct {
	Mailbox []byte
	Sealed  []byte
	Expires time.Time
}

// Deposit leaves the seals at holder p, at most MaxFramesPerStream per
// stream, and returns the status of each, in order. An error means the
// statuses from the failing stream on are unknown (their entries are
// STATUS_UNSPECIFIED): those seals may or may not be stored.
func (c *Client) Deposit(ctx context.Context, p peer.ID, reqs []DepositReq) ([]pb.Status, error) {
	out := make([]pb.Status, len(reqs))
	for start := 0; start < len(reqs); start += MaxFramesPerStream {
		end := min(start+MaxFramesPerStream, len(reqs))
		if err := c.depositBatch(ctx, p, reqs[start:end], out[start:end]); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (c *Client) depositBatch(ctx context.Context, p peer.ID, reqs []DepositReq, out []pb.Status) error {
	s, done, err := c.session(ctx, p, ProtocolID)
	if err != nil {
		return err
	}
	defer done()
	frames := make([]*pb.Request, len(reqs))
	for i, r := range reqs {
		frames[i] = &pb.Request{Kind: &pb.Request_Deposit{Deposit: &pb.Deposit{
			Mailbox: r.Mailbox, Sealed: r.Sealed, ExpiresMs: r.Expires.UnixMilli()}}}
	}
	if err := s.write(frames...); err != nil {
		_ = s.str.Reset()
		return err
	}
	for i := range reqs {
		r, err := s.read()
		if err != nil {
			_ = s.str.Reset()
			return fmt.Errorf("deposit %d of %d: %w", i+1, len(reqs), err)
		}
		d := r.GetDeposit()
		if d == nil || d.Status == pb.Status_STATUS_UNSPECIFIED {
			_ = s.str.Reset()
			return fmt.Errorf("%w: expected a deposit result", ErrProtocol)
		}
		out[i] = d.Status
	}
	return nil
}

// Item is one deposit picked up.
type Item struct {
	ID        uint64
	Sealed    []byte
	Deposited time.Time
}

// Pickup is an open pickup at one holder: the items it handed out, and
// Delete to remove the ones handled.
type Pickup struct {
	Items []Item
	// More: the holder has more deposits than it sent.
	More bool

	s    *session
	done func()
}

// Pickup presents the owner's record to holder p and reads up to max
// items (0: the holder's batch). The caller must Close it (after Delete).
func (c *Client) Pickup(ctx context.Context, p peer.ID, record []byte, max int) (*Pickup, error) {
	s, done, err := c.session(ctx, p, ProtocolID)
	if err != nil {
		return nil, err
	}
	pk := &Pickup{s: s, done: done}
	if err := s.write(&pb.Request{Kind: &pb.Request_Pickup{Pickup: &pb.Pickup{Record: record, Max: uint32(max)}}}); err != nil { // #nosec G115 -- max is a small batch size
		pk.abort()
		return nil, err
	}
	for range MaxPickupBatch + 1 {
		r, err := s.read()
		if err != nil {
			pk.abort()
			return nil, fmt.Errorf("pickup: %w", err)
		}
		switch k := r.Kind.(type) {
		case *pb.Response_Item:
			pk.Items = append(pk.Items, Item{ID: k.Item.Id, Sealed: k.Item.Sealed, Deposited: time.UnixMilli(k.Item.DepositedMs)})
		case *pb.Response_End:
			pk.More = k.End.More
			return pk, nil
		default:
			pk.abort()
			return nil, fmt.Errorf("%w: unexpected frame in pickup", ErrProtocol)
		}
	}
	pk.abort()
	return nil, fmt.Errorf("%w: more than %d items in a pickup", ErrProtocol, MaxPickupBatch)
}

// Delete removes handled items from the mailbox; it returns how many the
// holder removed.
func (pk *Pickup) Delete(ids []uint64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if err := pk.s.write(&pb.Request{Kind: &pb.Request_Delete{Delete: &pb.Delete{Ids: ids}}}); err != nil {
		return 0, err
	}
	r, err := pk.s.read()
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	d := r.GetDeleted()
	if d == nil {
		return 0, fmt.Errorf("%w: expected a delete result", ErrProtocol)
	}
	return int(d.Count), nil
}

// Close ends the pickup stream.
func (pk *Pickup) Close() { pk.done() }

func (pk *Pickup) abort() {
	_ = pk.s.str.Reset()
	pk.done()
}

// Lookup asks holder p for the record of owner; nil when it has none.
func (c *Client) Lookup(ctx context.Context, p, owner peer.ID) (*Record, error) {
	s, done, err := c.session(ctx, p, ProtocolID)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := s.write(&pb.Request{Kind: &pb.Request_Lookup{Lookup: &pb.Lookup{PeerId: []byte(owner)}}}); err != nil {
		_ = s.str.Reset()
		return nil, err
	}
	return readFound(s, owner)
}

// OwnRecord asks p for its own record (RecordProtocolID).
func (c *Client) OwnRecord(ctx context.Context, p peer.ID) (*Record, error) {
	s, done, err := c.session(ctx, p, RecordProtocolID)
	if err != nil {
		return nil, err
	}
	defer done()
	return readFound(s, p)
}

// readFound reads a Found frame with a record of owner, nil when empty.
func readFound(s *session, owner peer.ID) (*Record, error) {
	r, err := s.read()
	if err != nil {
		_ = s.str.Reset()
		return nil, fmt.Errorf("lookup: %w", err)
	}
	f := r.GetFound()
	if f == nil {
		_ = s.str.Reset()
		return nil, fmt.Errorf("%w: expected a found frame", ErrProtocol)
	}
	if len(f.Record) == 0 {
		return nil, nil
	}
	rec, err := OpenRecord(f.Record)
	if err != nil {
		return nil, err
	}
	if rec.Peer != owner {
		return nil, fmt.Errorf("%w: asked for %s, got the record of %s", ErrBadSignature, owner, rec.Peer)
	}
	return rec, nil
}

// statusError is the error of a deposit status other than stored.
func statusError(st pb.Status) error {
	switch st {
	case pb.Status_STATUS_STORED:
		return nil
	case pb.Status_STATUS_FULL:
		return ErrFull
	case pb.Status_STATUS_REJECTED:
		return ErrRefused
	}
	return errors.New("deposit status unknown")
}
