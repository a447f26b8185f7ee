package mailbox

import "time"

// Protocol constants. They are part of the wire contract
// (docs/PROTOCOL.md, "Offline delivery").
const (
	// ProtocolID is the holder protocol: deposit, pickup, delete, lookup.
	ProtocolID = "/parley/mailbox/1.0.0"
	// RecordProtocolID hands out the node's own signed record.
	RecordProtocolID = "/parley/mailbox-record/1.0.0"
	// NotifyProtocolID is opened by a holder to a connected owner when
	// its mailbox has new deposits; nothing is written on it.
	NotifyProtocolID = "/parley/mailbox-notify/1.0.0"
	// ServiceName is the resource-manager service of mailbox streams.
	ServiceName = "parley.mailbox"
	// MaxRequestSize is the largest Request frame a holder reads.
	MaxRequestSize = MaxSealSize + 1<<10
	// MaxResponseSize is the largest Response frame a client reads.
	MaxResponseSize = MaxSealSize + 1<<10
	// MaxFramesPerStream bounds the Request frames on one stream.
	MaxFramesPerStream = 256
	// MaxPickupBatch is the most items one pickup returns.
	MaxPickupBatch = 256
)

// Defaults of HolderConfig.
const (
	DefaultMaxAge         = 14 * 24 * time.Hour
	DefaultMailboxCount   = 2000
	DefaultMailboxBytes   = 32 << 20
	DefaultDepositorCount = 2000
	DefaultDepositorBytes = 32 << 20
	DefaultTotalCount     = 200000
	DefaultTotalBytes     = 1 << 30
	// The shares of Total (docs/SECURITY.md, "Budgets"): a quarter
	// reserved for known depositors, an eighth for the strangers of one
	// subnet, and a quarter of the strangers' share for all newcomers.
	DefaultReservedCount     = DefaultTotalCount / 4
	DefaultReservedBytes     = DefaultTotalBytes / 4
	DefaultPerSubnetCount    = DefaultTotalCount / 8
	DefaultPerSubnetBytes    = DefaultTotalBytes / 8
	DefaultNewcomersCount    = (DefaultTotalCount - DefaultReservedCount) / 4
	DefaultNewcomersBytes    = (DefaultTotalBytes - DefaultReservedBytes) / 4
	DefaultStreamTimeout     = 10 * time.Second
	DefaultMaxStreamsPerPeer = 4
	DefaultMaxInboundStreams = 256
	DefaultPruneInterval     = 10 * time.Minute
)
