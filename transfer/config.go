package transfer

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/events"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxFileSize      = 16 << 30 // 16 GiB
	DefaultChunkSize        = 1 << 20  // 1 MiB
	DefaultMaxPerPeer       = 2
	DefaultMaxPendingOffers = 8
	DefaultChunkRetries     = 3
	DefaultMaxAttempts      = 5
	DefaultProgressInterval = 250 * time.Millisecond
	DefaultIdleTimeout      = 30 * time.Second
	DefaultControlTimeout   = 15 * time.Second
	DefaultOfferTTL         = 7 * 24 * time.Hour
	DefaultRetryBackoff     = time.Second
	maxRetryBackoff         = 30 * time.Second
	minProgressInterval     = 100 * time.Millisecond
)

// Config configures a Service. Host, DB and DownloadDir are required; every
// other zero value takes the documented default.
type Config struct {
	Host host.Host
	// DB stores transfer state in buckets named "transfer/...", so that
	// transfers survive restarts.
	DB      *bolt.DB
	Emitter events.Emitter // default events.Discard
	Logger  *slog.Logger   // default slog.Default()

	// DownloadDir receives every file, and nothing is written outside it.
	// It is created with mode 0700 when missing.
	DownloadDir string
	// MaxFileSize refuses bigger offers before anything is written.
	// Default DefaultMaxFileSize; never more than MaxSize.
	MaxFileSize int64
	// AutoAccept, when set, is asked about every offer; true accepts it at
	// once (for example: trusted peers, files under a size limit).
	AutoAccept func(from peer.ID, size int64) bool
	// ConfirmShown: every file_offer received and every end of a transfer
	// (file_done, file_failed, file_rejected) is stored as not shown, in
	// the transaction that records it, until MarkShown says the user saw
	// it; New emits the ones not shown again (the process died before
	// they reached the user). See shown.go.
	ConfirmShown bool
	// Known reports whether a peer is known to the user (a trusted
	// contact, a peer the user wrote to, a member of a private room): known
	// peers keep a reserved share of the pending offers and share uploads
	// that strangers cannot fill (docs/SECURITY.md, "Budgets"). nil: every
	// peer is a stranger. It is asked once per offer or new upload, and
	// must not block.
	Known func(peer.ID) bool
	// Newcomer reports whether a stranger's identity was first seen less
	// than an hour ago (node: fair.Ages): newcomers together hold at most
	// a quarter of the strangers' share of pending offers and uploads.
	// nil: no stranger is a newcomer. Asked like Known; must not block.
	Newcomer func(peer.ID) bool
	// StrangerOfferTTL: an offer from a stranger is dropped (file_failed,
	// code "expired") once it is this old and its sender is not connected
	// (default 1 h), so that offers nobody will complete hold no budget.
	StrangerOfferTTL time.Duration

	// ChunkSize is the chunk size of the files this node sends: a power of
	// two from MinChunkSize to MaxChunkSize, default 1 MiB. Files of more
	// than MaxChunks chunks use the smallest larger power of two.
	ChunkSize int64
	// MaxPerPeer caps the transfers moving at once with one peer, in each
	// direction (default 2). More accepted transfers wait as "queued"; a
	// peer pulling more at once is answered BUSY.
	MaxPerPeer int
	// MaxPendingOffers caps the offers from one peer waiting for an answer
	// (default 8); more are refused as BUSY.
	MaxPendingOffers int
	// OfferTTL is how long an offer waits for an answer (default 7 days,
	// like a queued private message). The recipient then drops it
	// (file_failed, code "expired") and tells the sender. The sender gives
	// up on its own when no answer came OfferTTL plus min(OfferTTL, 1 h)
	// after it offered, for a recipient that never came back. Offers
	// waiting count against MaxPendingOffers, so this also frees the slots
	// of offers nobody answers.
	OfferTTL time.Duration
	// ChunkRetries is how many times a chunk that failed verification is
	// fetched again before the transfer fails (default 3).
	ChunkRetries int
	// MaxAttempts is how many consecutive attempts without progress a
	// receiving transfer makes, with backoff, before it waits for the peer
	// to reconnect or for Resume (default 5).
	MaxAttempts int
	// RetryBackoff is the first delay between attempts; it doubles up to
	// 30 s (default 1 s).
	RetryBackoff time.Duration
	// ProgressInterval is the least time between two file_progress events
	// of one transfer (default 250 ms, at least 100 ms).
	ProgressInterval time.Duration
	// IdleTimeout bounds every read and write on a data stream: a peer that
	// moves nothing for this long is cut off (default 30 s).
	IdleTimeout time.Duration
	// ControlTimeout bounds an offer or notice exchange (default 15 s).
	ControlTimeout time.Duration
	// MaxFrameSize bounds control frames read (default and maximum
	// MaxFrameSize). A lower value refuses manifests of files with more
	// than about MaxFrameSize/32 chunks.
	MaxFrameSize int
	// Held, when set, is called once a share fetched from a room is in
	// place: this node now serves it to other fetchers too, and should say
	// so in room by announcing sh again (see swarm.go). It must not block.
	Held func(room string, sh Share)

	hooks testHooks // fault injection for tests
}

func (c *Config) setDefaults() error {
	switch {
	case c.Host == nil:
		return errors.New("transfer config: Host is required")
	case c.DB == nil:
		return errors.New("transfer config: DB is required")
	case c.DownloadDir == "":
		return errors.New("transfer config: DownloadDir is required")
	}
	if c.Emitter == nil {
		c.Emitter = events.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	c.MaxFileSize = min(c.MaxFileSize, MaxSize)
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.ChunkSize < MinChunkSize || c.ChunkSize > MaxChunkSize || bits.OnesCount64(uint64(c.ChunkSize)) != 1 {
		return fmt.Errorf("transfer config: ChunkSize %d is not a power of two from %d to %d", c.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	setDefault(&c.MaxPerPeer, DefaultMaxPerPeer)
	setDefault(&c.MaxPendingOffers, DefaultMaxPendingOffers)
	setDefault(&c.ChunkRetries, DefaultChunkRetries)
	setDefault(&c.MaxAttempts, DefaultMaxAttempts)
	setDefault(&c.RetryBackoff, DefaultRetryBackoff)
	setDefault(&c.ProgressInterval, DefaultProgressInterval)
	c.ProgressInterval = max(c.ProgressInterval, minProgressInterval)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.ControlTimeout, DefaultControlTimeout)
	setDefault(&c.OfferTTL, DefaultOfferTTL)
	setDefault(&c.StrangerOfferTTL, DefaultStrangerOfferTTL)
	if c.MaxFrameSize <= 0 || c.MaxFrameSize > MaxFrameSize {
		c.MaxFrameSize = MaxFrameSize
	}
	return nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
