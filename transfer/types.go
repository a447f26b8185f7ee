package transfer

import (
	"context"
	"encoding/hex"
	"math/bits"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/transfer/pb"
)

// Direction says which side of a transfer this node is.
type Direction string

// Directions.
const (
	Send    Direction = "send"
	Receive Direction = "receive"
)

// State is where a transfer is in its life.
type State string

// States. Done, Failed, Rejected and Cancelled are terminal.
const (
	StateHashing   State = "hashing"   // send or share: the file is being hashed; nothing sent yet
	StateOffered   State = "offered"   // waiting for the recipient's answer
	StateShared    State = "shared"    // a share this node serves to any fetcher
	StateQueued    State = "queued"    // accepted; waiting for a free slot with the peer
	StateActive    State = "active"    // chunks are moving
	StateWaiting   State = "waiting"   // interrupted; resumes on reconnect or Resume
	StateDone      State = "done"      // the recipient verified the whole file
	StateFailed    State = "failed"    // gave up; see Info.Error
	StateRejected  State = "rejected"  // the recipient declined
	StateCancelled State = "cancelled" // either side cancelled
)

// Terminal reports whether s is final.
func (s State) Terminal() bool {
	switch s {
	case StateDone, StateFailed, StateRejected, StateCancelled:
		return true
	}
	return false
}

// Info is one line of List.
type Info struct {
	ID        string        `json:"id"`
	Direction Direction     `json:"direction"`
	Peer      peer.ID       `json:"peer,omitempty"` // empty for a share
	Name      string        `json:"name"`
	Size      int64         `json:"size"`
	State     State         `json:"state"`
	Bytes     int64         `json:"bytes"` // verified at the recipient (or sent, for share uploads; hashed, while hashing)
	Rate      int64         `json:"rate"`  // bytes per second, 0 when not moving
	ETA       time.Duration `json:"eta"`   // 0 when unknown
	Room      string        `json:"room,omitempty"`
	Path      string        `json:"path,omitempty"` // source file, or received file once done
	Error     string        `json:"error,omitempty"`
	// Holders: for a share being fetched, how many holders it is pulled
	// from at the moment (swarm.go); 0 otherwise.
	Holders int `json:"holders,omitempty"`
}

// Result describes a transfer the recipient verified.
type Result struct {
	ID   string
	Path string // receive: the file in the downloads dir; send: the source
	Size int64
	Hash string // hex BLAKE3-256 of the whole file
}

// Share is a file offered to a room, as announced by the rooms package.
type Share struct {
	ID   string `json:"id"`   // 32 hex digits
	Name string `json:"name"` // base name
	Size int64  `json:"size"`
	Hash string `json:"hash"` // 64 hex digits, BLAKE3-256 of the file
}

// transfer is one transfer in either direction, a share this node serves,
// or one upload of such a share. Fields above mu never change after the
// transfer is created, except hash (see there).
type transfer struct {
	id    string
	rawID []byte
	dir   Direction
	peer  peer.ID // empty for a share record
	name  string  // safe base name
	size  int64
	// hash is the file's hash. A transfer created by Offer or StartShare
	// starts in StateHashing without it: its hashing goroutine sets it,
	// under Service.mu, before the state leaves StateHashing. Read it
	// after seeing (under Service.mu) a state other than StateHashing.
	hash    [HashSize]byte
	room    string
	share   bool   // send: a share record or upload; receive: fetched from a share
	src     string // send: absolute path of the source file
	modTime int64  // send: source modification time (Unix ns) when hashed
	created time.Time
	// stranger: an incoming offer or a share upload of a peer that was not
	// known (Config.Known) when it came; subnet: the subnet it came from;
	// newcomer: its sender was a newcomer then (Config.Newcomer). They
	// place it in the budgets of budget.go.
	stranger bool
	subnet   string
	newcomer bool

	ctx    context.Context // done when the transfer ends or the service closes
	cancel context.CancelFunc
	done   chan struct{} // closed when the state becomes terminal
	// ready is closed once a transfer started by Offer has been hashed and
	// the recipient holds the offer, or once a share started by StartShare
	// has been hashed and is served. Only the hashing goroutine closes it;
	// it is closed at load for every restored transfer that got there.
	ready chan struct{}

	// kick wakes a receiving transfer waiting between attempts.
	kick chan struct{}
	// saveMu orders writes of this transfer's record.
	saveMu sync.Mutex

	// Guarded by Service.mu.
	state   State
	err     error  // why it ended, for Failed, Rejected and Cancelled
	bytes   int64  // progress
	rate    meter  // progress rate
	part    string // receive: part file name inside the downloads dir
	final   string // receive: final name inside the downloads dir
	man     *manifest
	notice  *pb.Notice // to deliver to peer; persisted until it is
	running bool       // receive: a runner goroutine owns the transfer
	serving int        // send: Get streams being served
	// idleSince: share uploads, when the last Get stream ended (or the
	// upload was created); see pruneUploadsAt.
	idleSince time.Time
	lastErr   string // most recent transient error
	// receive, share: the holders serving the fetch now (swarm.go), and
	// the holders dropped for sending chunks that failed verification.
	holders int
	liars   map[peer.ID]bool

	// Owned by the runner goroutine of a receiving transfer.
	bm  bitmap      // verified chunks; nil until loaded
	bad map[int]int // verification failures per chunk
}

func newTransfer(parent context.Context, raw []byte) *transfer {
	ctx, cancel := context.WithCancel(parent)
	return &transfer{
		id:      hex.EncodeToString(raw),
		rawID:   raw,
		created: time.Now(),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		ready:   make(chan struct{}),
		kick:    make(chan struct{}, 1),
	}
}

// meter estimates a rate in bytes per second, smoothed over updates at
// least 200 ms apart.
type meter struct {
	at    time.Time
	bytes int64
	rate  float64
}

func (m *meter) update(now time.Time, bytes int64) {
	if m.at.IsZero() {
		m.at, m.bytes = now, bytes
		return
	}
	dt := now.Sub(m.at)
	if dt < 200*time.Millisecond {
		return
	}
	inst := float64(bytes-m.bytes) / dt.Seconds()
	if m.rate == 0 {
		m.rate = inst
	} else {
		m.rate = 0.5*m.rate + 0.5*inst
	}
	m.at, m.bytes = now, bytes
}

func (m *meter) reset() { *m = meter{} }

// bitmap records which chunks are verified.
type bitmap []byte

func newBitmap(n int) bitmap { return make(bitmap, (n+7)/8) }

func (b bitmap) has(i int) bool { return b[i/8]&(1<<(i%8)) != 0 }
func (b bitmap) set(i int)      { b[i/8] |= 1 << (i % 8) }
func (b bitmap) clear(i int)    { b[i/8] &^= 1 << (i % 8) }

func (b bitmap) count() int {
	n := 0
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return n
}

// missing returns the chunks below n that are not set, as ranges.
func (b bitmap) missing(n int) []chunkRange {
	var out []chunkRange
	for i := 0; i < n; i++ {
		if b.has(i) {
			continue
		}
		j := i + 1
		for j < n && !b.has(j) {
			j++
		}
		out = append(out, chunkRange{i, j - i})
		i = j
	}
	return out
}
