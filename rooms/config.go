package rooms

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/parley-chat/parley/events"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"
)

// Protocol limits, the same for every peer (see docs/PROTOCOL.md).
const (
	// MaxMessageSize bounds the data of one GossipSub message on a room
	// topic (the Envelope, or the Sealed for private rooms).
	MaxMessageSize = 64 << 10
	// MaxTextLen is the maximum text length in characters (runes).
	MaxTextLen = 4096
	// idSize is the size of an envelope ID.
	idSize = 16
)

// Defaults for the Config knobs.
const (
	DefaultPresenceInterval = 30 * time.Second
	DefaultPresenceTimeout  = 90 * time.Second
	DefaultMaxClockSkew     = 5 * time.Minute
	DefaultRateLimit        = rate.Limit(2) // messages per second per author per room
	DefaultRateBurst        = 10
	DefaultMeshWait         = 5 * time.Second
	DefaultHistoryLimit     = 10000
	DefaultHistoryN         = 50
	DefaultReplayLimit      = 200000
	DefaultPruneInterval    = time.Minute
	DefaultSyncWindow       = 7 * 24 * time.Hour
	DefaultSyncMaxItems     = 10000
	DefaultSyncTimeout      = 20 * time.Second
	DefaultSyncPeers        = 2
)

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	// Host is the libp2p host; its peer ID is the author of every message
	// this node publishes. Required.
	Host host.Host
	// DB is the node's store. The service keeps its data in the top-level
	// buckets "rooms/joined", "rooms/history" and "rooms/replay". Required.
	DB *bolt.DB
	// Emitter receives message, joined, left and presence events. Emit
	// must not block (events.Queue does not). Default events.Discard.
	Emitter events.Emitter
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Nick returns the current nick; it is read for every message sent.
	// Required.
	Nick func() string

	// PresenceInterval is how often the node announces itself in each room
	// (with +/-10% jitter). Default 30s.
	PresenceInterval time.Duration
	// PresenceTimeout is how long after its last message a member is shown
	// as gone (presence event with online=false). Default 90s; at least
	// PresenceInterval.
	PresenceTimeout time.Duration
	// MaxClockSkew is how far sent_at may differ from the local clock, in
	// either direction. Default 5m. Every peer should use the same value.
	MaxClockSkew time.Duration
	// RateLimit and RateBurst are the token buckets every author gets in
	// each room, one for chat (text and file shares) and one for presence
	// announcements: RateBurst messages at once, refilled at RateLimit per
	// second. Defaults 2/s and 10. Every peer should use the same values.
	RateLimit rate.Limit
	RateBurst int
	// MeshWait bounds how long a publish waits, after joining a room, for
	// the first peer to appear on the room's topic. Default 5s.
	MeshWait time.Duration
	// HistoryLimit is the number of messages kept per room; older ones are
	// deleted. Default 10000.
	HistoryLimit int
	// ReplayLimit bounds, per room topic, the remembered (author, message
	// ID) pairs and the per-author rate-limit buckets. When a room reaches
	// it, its new messages are ignored until old records expire; other
	// rooms go on. Default 200000.
	ReplayLimit int
	// PruneInterval is how often expired replay records and idle rate
	// limiters are dropped. Default 1m.
	PruneInterval time.Duration

	// SyncWindow is how far back the room sync reconciles history: a
	// member catches up on messages sent at most this long ago. Default
	// 7 days.
	SyncWindow time.Duration
	// SyncMaxItems bounds the messages one sync session reconciles and
	// transfers, each way. Default 10000.
	SyncMaxItems int
	// SyncTimeout bounds one sync session. Default 20s.
	SyncTimeout time.Duration
	// SyncPeers is how many members the node syncs a room's history with
	// after joining it and after each reconnection. Default 2.
	SyncPeers int

	// EpochKeyGrace is how long a private room's epoch key is kept after
	// the next epoch started (for late messages and the history sync);
	// then it is deleted, from memory and the store. Default 7 days.
	EpochKeyGrace time.Duration

	// Known reports the authors whose room messages are never shed
	// under load (node's known peers: trusted, written to, members of
	// a private room). Default: nobody but this node.
	Known func(peer.ID) bool
	// Newcomer reports the authors whose identity was first seen less
	// than an hour ago (node: fair.Ages): strangers' messages of newcomers
	// share a quarter of the strangers' budget (shed.go). Default: none.
	Newcomer func(peer.ID) bool
	// NickPinned reports whether nick is pinned (trust) to an identity
	// other than author: its messages are flagged nick_shared, like those
	// of an author whose nick another member uses, so that a display
	// shows the fingerprint of whoever gets a trust warning (node:
	// trust.Store.PinnedToOther). Default: none. Called on delivery; it
	// must be quick.
	NickPinned func(author peer.ID, nick string) bool

	// PubSubOptions are appended to the service's GossipSub options (and
	// so may override them).
	PubSubOptions []pubsub.Option

	// testHookVerdict, if set, sees the outcome of every validation.
	testHookVerdict func(topic string, from peer.ID, v verdict)
	// testHookOwnAddrs, if set, replaces the addresses the node puts in
	// its signed peer record (before the sharing rule).
	testHookOwnAddrs func() []ma.Multiaddr
	// testClock, if set, is the clock of the membership code (epoch
	// starts, key grace periods).
	testClock func() time.Time
	// testWallClock, if set, is the clock that stamps this node's lines
	// and that the validator checks others' sent times against (a skewed
	// clock in tests).
	testWallClock func() time.Time
	// testHookEpochKey, if set, sees every epoch key this node installs
	// (made as an admin or received).
	testHookEpochKey func(topic string, epoch uint64)
	// testHookTakeMembers, if set, runs before this node takes in what a
	// members exchange brought (it may block, to hold a key back).
	testHookTakeMembers func()
	// testHookAdmission, if set, sees an admin's check of every invite
	// ticket shown to it (nil: admitted).
	testHookAdmission func(topic string, p peer.ID, err error)
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Host == nil {
		return cfg, fmt.Errorf("rooms config: Host is required")
	}
	if cfg.DB == nil {
		return cfg, fmt.Errorf("rooms config: DB is required")
	}
	if cfg.Nick == nil {
		return cfg, fmt.Errorf("rooms config: Nick is required")
	}
	if cfg.Emitter == nil {
		cfg.Emitter = events.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	setDefault(&cfg.PresenceInterval, DefaultPresenceInterval)
	setDefault(&cfg.PresenceTimeout, DefaultPresenceTimeout)
	setDefault(&cfg.MaxClockSkew, DefaultMaxClockSkew)
	setDefault(&cfg.RateLimit, DefaultRateLimit)
	setDefault(&cfg.RateBurst, DefaultRateBurst)
	setDefault(&cfg.MeshWait, DefaultMeshWait)
	setDefault(&cfg.HistoryLimit, DefaultHistoryLimit)
	setDefault(&cfg.ReplayLimit, DefaultReplayLimit)
	setDefault(&cfg.PruneInterval, DefaultPruneInterval)
	setDefault(&cfg.SyncWindow, DefaultSyncWindow)
	setDefault(&cfg.SyncMaxItems, DefaultSyncMaxItems)
	setDefault(&cfg.SyncTimeout, DefaultSyncTimeout)
	setDefault(&cfg.SyncPeers, DefaultSyncPeers)
	setDefault(&cfg.EpochKeyGrace, DefaultEpochKeyGrace)
	for name, d := range map[string]time.Duration{
		"PresenceInterval": cfg.PresenceInterval, "PresenceTimeout": cfg.PresenceTimeout,
		"MaxClockSkew": cfg.MaxClockSkew, "MeshWait": cfg.MeshWait, "PruneInterval": cfg.PruneInterval,
		"SyncWindow": cfg.SyncWindow, "SyncTimeout": cfg.SyncTimeout, "EpochKeyGrace": cfg.EpochKeyGrace,
	} {
		if d < 0 {
			return cfg, fmt.Errorf("rooms config: %s is negative", name)
		}
	}
	if cfg.RateLimit < 0 || cfg.RateBurst < 0 || cfg.HistoryLimit < 0 || cfg.ReplayLimit < 0 ||
		cfg.SyncMaxItems < 0 || cfg.SyncPeers < 0 {
		return cfg, fmt.Errorf("rooms config: negative limit")
	}
	if cfg.PresenceTimeout < cfg.PresenceInterval {
		return cfg, fmt.Errorf("rooms config: PresenceTimeout %v shorter than PresenceInterval %v", cfg.PresenceTimeout, cfg.PresenceInterval)
	}
	return cfg, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
