package dm

import (
	"errors"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
)

// Protocol constants. They are part of the wire contract
// (docs/PROTOCOL.md): another implementation must use the same limits.
const (
	// ProtocolID is the libp2p protocol of direct messages.
	ProtocolID = "/parley/dm/1.0.0"
	// ServiceName is the resource-manager service of dm streams.
	ServiceName = "parley.dm"
	// IDLen is the length of a message id in bytes.
	IDLen = 16
	// MaxTextBytes is the largest message text, in bytes of UTF-8.
	MaxTextBytes = 8 << 10
	// MaxFrameSize is the largest Message frame (without its length
	// prefix) a recipient reads.
	MaxFrameSize = 16 << 10
	// MaxAckSize is the largest Ack frame a sender reads.
	MaxAckSize = 64
	// MaxMessagesPerStream is how many messages one stream may carry; the
	// recipient closes the stream after that many.
	MaxMessagesPerStream = 64
	// MaxRetryAfter bounds the wait a busy ack may ask for
	// (Ack.retry_after_ms); a sender caps what it reads at it too.
	MaxRetryAfter = time.Minute
	// StorageRetryAfter is the wait a recipient asks for when it could
	// not store a message (a full disk): it retries the write then.
	StorageRetryAfter = 5 * time.Second
)

// Defaults of Config's knobs.
const (
	DefaultTTL               = 7 * 24 * time.Hour
	DefaultRetryMin          = 2 * time.Second
	DefaultRetryMax          = 5 * time.Minute
	DefaultDialTimeout       = 20 * time.Second
	DefaultStreamTimeout     = 10 * time.Second
	DefaultMaxStreamsPerPeer = 4
	DefaultMaxInboundStreams = 256
	DefaultMaxPending        = 10000
	DefaultMaxDeliveries     = 16
	DefaultPeerRate          = 10
	DefaultPeerBurst         = 2 * MaxMessagesPerStream
	DefaultMaxClockSkew      = time.Hour
	DefaultMaxMessageAge     = 30 * 24 * time.Hour
	DefaultAddrTTL           = 10 * time.Minute
	DefaultPruneInterval     = time.Hour
)

// Config configures a Service. Host and DB are required; every zero knob
// takes its documented default.
type Config struct {
	Host host.Host
	// DB holds the buckets "dm/outbox" and "dm/inbox"; the caller owns it
	// and closes it after the Service.
	DB *bolt.DB
	// Emitter receives dm and dm_status events. Default events.Discard.
	Emitter events.Emitter
	// Logger defaults to slog.Default(). Message text is never logged.
	Logger *slog.Logger
	// Nick returns the node's current nick, sent with each message for
	// display only. Default: no nick. An invalid nick is not sent.
	Nick func() string

	// TTL is how long a message may wait for delivery before it fails
	// with ErrExpired. Default 7 days. It is fixed per message when the
	// message is queued.
	TTL time.Duration
	// RetryMin and RetryMax bound the exponential backoff (with jitter)
	// between delivery attempts to an unreachable peer. A new connection
	// to the peer, or the peer starting to speak the protocol on one,
	// retries at once and resets the backoff; a new message
	// retries early, at most once per RetryMin. A busy recipient is not
	// backed off from: it says when to come back. Defaults 2 s and 5 min.
	RetryMin, RetryMax time.Duration
	// DialTimeout bounds connecting to the peer and opening a stream.
	// Default 20 s.
	DialTimeout time.Duration
	// StreamTimeout is the deadline for each frame: a whole Message
	// frame must arrive within it of the previous one (so a peer sending
	// a byte a minute is cut off), and an Ack within it of its Message.
	// Default 10 s.
	StreamTimeout time.Duration
	// MaxStreamsPerPeer bounds concurrent inbound streams from one peer;
	// MaxInboundStreams bounds them in total. Defaults 4 and 256.
	MaxStreamsPerPeer, MaxInboundStreams int
	// MaxPending bounds the messages waiting for delivery (queued or
	// sent); Send returns ErrOutboxFull beyond it. Default 10000.
	MaxPending int
	// MaxDeliveries bounds how many recipients are being delivered to
	// (and dialed) at the same time, e.g. after a restart with a full
	// outbox. Default 16.
	MaxDeliveries int
	// PeerRate (messages per second) and PeerBurst bound how fast one
	// peer may deliver messages; beyond it the recipient answers "busy"
	// and the sender retries later. Defaults 10/s, burst 128 (two full
	// streams, so a backlog after a reconnect passes at once).
	PeerRate  float64
	PeerBurst int
	// MaxClockSkew is how far in the future a message's sent_at may be.
	// Default 1 h.
	MaxClockSkew time.Duration
	// MaxMessageAge is how far in the past a message's sent_at may be,
	// and how long delivered, failed and received messages are kept
	// (they are the dedup records). It must exceed TTL. Default 30 days.
	MaxMessageAge time.Duration
	// AddrTTL is how long addresses restored from the outbox stay in the
	// peerstore; they are restored again before every attempt. Default
	// 10 min.
	AddrTTL time.Duration
	// PruneInterval is how often old records are removed. Default 1 h.
	PruneInterval time.Duration
	// ConfirmShown: every dm event and dm_status state change is stored
	// as not shown, with the message or state, until MarkShown records
	// that the user saw it; New emits the ones not shown again (the
	// process died before they reached the user). Without it an event
	// counts as shown once emitted.
	ConfirmShown bool
	// Known reports whether a peer is a contact (a trusted peer, a peer
	// the user wrote to, a member of a private room). The received
	// messages stored from everyone else, strangers, are bounded:
	// StrangerInboxBytes in all, StrangerInboxPerPeer per sender (bytes
	// of text and nick plus 64 per message; defaults 4 MiB and 256 KiB).
	// Past it a stranger is answered "busy" (reason storage, retry after
	// MaxRetryAfter) until pruning (MaxMessageAge) frees room; contacts'
	// messages are always stored. nil: every peer is a stranger. It must
	// not block.
	Known                                    func(peer.ID) bool
	StrangerInboxBytes, StrangerInboxPerPeer int
	// StrangerInboxPerSubnet bounds the stored messages of the strangers
	// of one subnet (an IPv4 /24, an IPv6 /48, of the connection they came
	// on; default a quarter of StrangerInboxBytes), and
	// StrangerInboxNewcomers those of all newcomers together (default a
	// quarter of StrangerInboxBytes).
	StrangerInboxPerSubnet, StrangerInboxNewcomers int
	// Newcomer reports whether a stranger's identity was first seen less
	// than an hour ago (node: fair.Ages). nil: no stranger is a newcomer.
	// It must not block.
	Newcomer func(peer.ID) bool

	// hooks lets tests in this package inject faults.
	hooks *testHooks
}

type testHooks struct {
	// dropAck is called after a message was stored; true resets the
	// stream instead of acknowledging, as if the ack were lost.
	dropAck func(id []byte) bool
}

func (c *Config) setDefaults() error {
	if c.Host == nil {
		return errors.New("dm config: Host is required")
	}
	if c.DB == nil {
		return errors.New("dm config: DB is required")
	}
	if c.Emitter == nil {
		c.Emitter = events.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Nick == nil {
		c.Nick = func() string { return "" }
	}
	setDur(&c.TTL, DefaultTTL)
	setDur(&c.RetryMin, DefaultRetryMin)
	setDur(&c.RetryMax, DefaultRetryMax)
	setDur(&c.DialTimeout, DefaultDialTimeout)
	setDur(&c.StreamTimeout, DefaultStreamTimeout)
	setDur(&c.MaxClockSkew, DefaultMaxClockSkew)
	setDur(&c.MaxMessageAge, DefaultMaxMessageAge)
	setDur(&c.AddrTTL, DefaultAddrTTL)
	setDur(&c.PruneInterval, DefaultPruneInterval)
	setInt(&c.MaxStreamsPerPeer, DefaultMaxStreamsPerPeer)
	setInt(&c.MaxInboundStreams, DefaultMaxInboundStreams)
	setInt(&c.MaxPending, DefaultMaxPending)
	setInt(&c.MaxDeliveries, DefaultMaxDeliveries)
	setInt(&c.PeerBurst, DefaultPeerBurst)
	setInt(&c.StrangerInboxBytes, DefaultStrangerInboxBytes)
	setInt(&c.StrangerInboxPerPeer, DefaultStrangerInboxPerPeer)
	setInt(&c.StrangerInboxPerSubnet, c.StrangerInboxBytes/4)
	setInt(&c.StrangerInboxNewcomers, c.StrangerInboxBytes/4)
	if c.PeerRate <= 0 {
		c.PeerRate = DefaultPeerRate
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.MaxMessageAge <= c.TTL {
		return errors.New("dm config: MaxMessageAge must exceed TTL, or retries of delivered messages could be shown twice")
	}
	return nil
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func setInt(n *int, def int) {
	if *n <= 0 {
		*n = def
	}
}
