// Package node composes a Parley node: identity, store, overlay host and
// the chat services. It is the one place where the separate services
// meet; each of them stays unaware of the others.
//
// User interfaces drive a Node through its typed operations (Join, Say,
// SendDM, Offer, Accept, Trust, ...) and read it through its queries
// (RoomList, Members, PeerList, ...). The slash-command language of line
// mode is package command, which parses a line into these calls.
//
// The services report typed domain events (peer.ID, time.Time) to the
// node's event loop, which runs the reactions that join services
// (recording the nicks peers claim in the trust store, handing files
// shared in rooms to the transfer service) and then passes every event
// on to Config.Emitter, in order. The JSON contract of docs/EVENTS.md is
// made from those events at the edge (events.MarshalJSON); human text in
// package present.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-chat/parley/dm"
	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/identity"
	"github.com/parley-chat/parley/internal/fair"
	"github.com/parley-chat/parley/mailbox"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/rooms"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/transfer"
	"github.com/parley-chat/parley/trust"
	"golang.org/x/time/rate"
)

// Config configures a Node.
type Config struct {
	// DataDir holds the key, config.toml and the store.
	DataDir string
	// Identity is the node's loaded key.
	Identity *identity.Identity
	// Nick is the initial nickname (validated by identity.ValidateNick).
	Nick string
	// SaveNick persists a nick chosen with /nick; nil keeps it in memory.
	SaveNick func(string) error
	// Overlay configures the host; PrivKey, Emitter and Logger are set by
	// the node.
	Overlay overlay.Config
	// Rooms are joined at start (besides the rooms joined in earlier
	// runs); the first becomes the current room.
	Rooms []string
	// NoDefaultRoom: with no Rooms, join no room (instead of the lobby);
	// for one-shot commands such as parley send.
	NoDefaultRoom bool
	// RoomsConfig tunes the rooms service; Host, DB, Emitter, Logger and
	// Nick are set by the node.
	RoomsConfig rooms.Config
	// Transfer configures file transfer; Host, DB, Emitter, Logger and
	// AutoAccept are set by the node. DownloadDir defaults to
	// DataDir/downloads.
	Transfer transfer.Config
	// AutoAcceptFrom lists peers whose file offers are accepted without
	// asking: peer IDs, or "trusted" for every peer marked with /trust.
	// AutoAcceptMax bounds the size of such offers (0: no bound beyond
	// Transfer.MaxFileSize).
	AutoAcceptFrom []string
	AutoAcceptMax  int64
	// DM tunes the direct-message service; Host, DB, Emitter, Logger,
	// Nick and OnNick are set by the node.
	DM dm.Config
	// Mailbox tunes offline delivery (sealed deposits, package mailbox);
	// Host, DB, Key, Outbox, Emitter, Logger, Nick and Eligible are set
	// by the node.
	Mailbox mailbox.Config
	// HoldMailboxes runs a mailbox holder for other peers, with the
	// quotas and expiry of Holder (Host, DB and Logger set by the node).
	// `parley chat --hold-mailboxes`; off by default.
	HoldMailboxes bool
	Holder        mailbox.HolderConfig
	// RelayForOwnPeople runs a circuit relay v2 service with
	// overlay.ChatRelayResources for the peers online in a room this node
	// has joined and the trusted peers, never for strangers: a peer must
	// be one of them to reserve a slot, and both ends of a circuit must
	// be (docs/OVERLAY.md). `parley chat` turns it on unless
	// --no-relay-service. Ignored when Overlay.RelayService is set.
	RelayForOwnPeople bool
	// Emitter receives every event (required).
	Emitter events.Emitter
	// ConfirmShown: the user interface calls Node.Shown for every event
	// once it has written it out, and the dm and dm_status events, room
	// messages, file offers and transfer outcomes it has not confirmed
	// when the process dies are emitted again at the next start (before
	// ready). Without it an event counts as shown when it is passed to
	// Emitter. See shown.go.
	ConfirmShown bool
	// NewcomerAge: a stranger whose identity this node first saw less than
	// this long ago is a newcomer, and newcomers together get a small part
	// of the strangers' budgets (docs/SECURITY.md, "Budgets"; default 1 h;
	// tests shorten it).
	NewcomerAge time.Duration
	// EventQueue bounds the events waiting for the node's event loop
	// (default 1<<16); past it the newest are dropped and counted.
	EventQueue int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Version is reported by /id.
	Version string

	// beforeScan, when set (tests only), is called by reshow before it
	// reads a room's history: a seam to deliver a message in between.
	beforeScan func(n *Node, room string)
}

// Node is a running Parley node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	emit     events.Emitter
	store    *store.Store
	host     *overlay.Host
	trust    *trust.Store
	dm       *dm.Service
	rooms    *rooms.Service
	transfer *transfer.Service
	holder   *mailbox.Holder // nil unless Config.HoldMailboxes
	// courier is set once during New; the event loop reads it meanwhile.
	courier atomic.Pointer[mailbox.Courier]
	own     ownPeople // the relay service's policy; set as the services start
	// ages remembers when each identity was first seen (newcomers share a
	// small part of the strangers' budgets); set by New once the store is
	// open, closed after the services.
	ages *fair.Ages

	// internal receives the services' events; loop (owned by New and
	// Close) reacts to them and passes them on to emit.
	internal *events.Queue
	loopDone chan struct{}
	// shown records which events the user was shown; set by New once the
	// store is open.
	shown *shownLog
	// dmMarks is the dm service once started, for shownLog's goroutine.
	dmMarks atomic.Pointer[dm.Service]
	// transferMarks is the transfer service once started, for shownLog's
	// goroutine.
	transferMarks atomic.Pointer[transfer.Service]
	// roomMarks keeps the shown marks of room messages; set by New.
	roomMarks *roomMarks
	// once drops a room message's second copy in a run (shown_once.go);
	// owned by the event loop.
	once *roomOnce

	// ctx ends at Close; work the node starts on its own (announcing a
	// share once hashed) runs under it, counted in wg, and only while
	// closing is false (see goSafe).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// start is the room user interfaces show first; set by New.
	start string

	mu      sync.Mutex
	nick    string // guarded by mu
	closing bool   // guarded by mu
	// warned: peers observeNick warned about this session, with the nick
	// key; owned by the event loop (no lock).
	warned map[peer.ID]string
	// pacers hold this node's own lines to each room's rate limit
	// (pace.go); guarded by mu.
	pacers map[string]*rate.Limiter
	// named is closed and replaced whenever a peer's nick is recorded,
	// waking ResolvePeerWait; guarded by mu.
	named chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// storeLockWait is how long Open waits for another process to release the
// store before giving up with store.ErrLocked.
const storeLockWait = 2 * time.Second

// New opens the store, starts the host and the services. It returns once
// the node listens; Ready describes it.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Identity == nil {
		return nil, errors.New("node: config has no identity")
	}
	if cfg.Emitter == nil {
		return nil, errors.New("node: config has no emitter")
	}
	if err := identity.ValidateNick(cfg.Nick); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.EventQueue <= 0 {
		cfg.EventQueue = defaultEventQueue
	}
	n := &Node{cfg: cfg, log: cfg.Logger, emit: cfg.Emitter, nick: cfg.Nick,
		internal: events.NewQueue(cfg.EventQueue), loopDone: make(chan struct{}), once: newRoomOnce()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.loop() // #nosec G118 -- the loop lives until Close, not New's ctx (one lifecycle rule for every service)
	st, err := store.Open(cfg.DataDir, storeLockWait)
	if err != nil {
		n.cancel()
		n.stopLoop()
		return nil, err
	}
	n.store = st
	n.warnStore(st.Info())
	n.warnOwner(cfg.Identity.ID, cfg.Identity.KeyPath)
	if n.roomMarks, err = newRoomMarks(st.DB()); err != nil {
		n.cancel()
		n.stopLoop()
		_ = st.Close()
		return nil, err
	}
	ages, err := fair.NewAges(st.DB(), fair.AgesConfig{NewcomerAge: cfg.NewcomerAge, Logger: cfg.Logger.With("component", "fair")})
	if err != nil {
		n.cancel()
		n.stopLoop()
		_ = st.Close()
		return nil, err
	}
	n.ages = ages
	n.shown = newShownLog(n.markShown, cfg.Logger)
	ocfg := cfg.Overlay
	ocfg.PrivKey = cfg.Identity.PrivKey
	ocfg.Emitter = n.internal
	ocfg.Logger = cfg.Logger.With("component", "overlay")
	ocfg.Store = st.DB()
	if ocfg.UserAgent == "" {
		ocfg.UserAgent = "parley/" + cfg.Version
	}
	n.relayForOwnPeople(&ocfg)
	if ocfg.Known == nil {
		ocfg.Known = n.own.known
	}
	if ocfg.Newcomer == nil {
		ocfg.Newcomer = n.newcomer
	}
	h, err := overlay.New(ctx, ocfg)
	if err != nil {
		n.cancel()
		n.stopLoop()
		n.shown.close(0)
		_ = ages.Close()
		_ = st.Close()
		return nil, err
	}
	n.host = h
	if err := n.startDM(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	if err := n.startMailbox(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	if err := n.startTransfer(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	if err := n.startRooms(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	n.transfer.AnnounceHeld() // shares fetched in an earlier run, served again (onHeld)
	n.drainStart()
	return n, nil
}

// startDrainWait bounds how long New waits for the event loop to pass on
// the events the services reported while starting.
const startDrainWait = 5 * time.Second

// drainStart waits until the event loop has passed on what the services
// emitted while starting (among them the events an earlier run did not
// show), so that they come before anything the caller emits next (ready).
func (n *Node) drainStart() {
	done := make(chan struct{})
	n.internal.Emit(drained{done: done})
	t := time.NewTimer(startDrainWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C: // the queue was full and dropped it: go on
	}
}

// drained is put on the internal queue by drainStart; the loop closes
// done when it gets there.
type drained struct{ done chan struct{} }

func (drained) Type() string { return "drained" }

// warnStore tells the user, loudly, when the store is empty although the
// data dir was used before (a backup of the last good store exists): the
// history, the private rooms' keys and the unsent messages are gone from
// it, and the backup holds them. It also reports a backup that failed.
func (n *Node) warnStore(info store.Info) {
	if info.LostData {
		msg := fmt.Sprintf("the store %s is empty or missing although this data dir was used before: history, private room keys and unsent messages are not in it; "+
			"the last good copy, from %s, is %s: stop parley and copy it back (cp %s %s) to restore them",
			info.Path, info.BackupTime.Format(time.DateTime), info.Backup, info.Backup, info.Path)
		n.log.Warn(msg)
		n.internal.Emit(events.Error{Error: msg})
	}
	if info.BackupErr != nil {
		n.log.Warn("could not back up the store; it is usable", "err", info.BackupErr)
	}
}

// Host returns the node's overlay host.
func (n *Node) Host() *overlay.Host { return n.host }

// Nick returns the current nickname.
func (n *Node) Nick() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nick
}

// SetNick validates, persists and applies a new nickname.
func (n *Node) SetNick(nick string) error {
	if err := identity.ValidateNick(nick); err != nil {
		return err
	}
	if n.cfg.SaveNick != nil {
		if err := n.cfg.SaveNick(nick); err != nil {
			return fmt.Errorf("save nick: %w", err)
		}
	}
	n.mu.Lock()
	n.nick = nick
	n.mu.Unlock()
	return nil
}

// Ready describes the running node as a ready event.
func (n *Node) Ready() events.Ready {
	return events.Ready{
		PeerID:      n.host.ID(),
		Nick:        n.Nick(),
		Fingerprint: n.cfg.Identity.Fingerprint(),
		Addrs:       overlay.P2PAddrs(n.host.AddrInfo()),
	}
}

// defaultEventQueue bounds the events waiting for the event loop.
const defaultEventQueue = 1 << 16

// loop runs the reactions between services, then passes each event on,
// until the internal queue is closed and drained.
func (n *Node) loop() {
	defer close(n.loopDone)
	ctx := context.Background()
	for {
		e, ok := n.internal.Next(ctx)
		if !ok {
			return
		}
		if e, ok = n.once.filter(e); !ok {
			continue
		}
		switch e := e.(type) {
		case events.Message:
			n.observeNick(e.From, e.Nick)
		case events.Presence:
			if e.Online {
				n.observeNick(e.PeerID, e.Nick)
			}
		case events.DM:
			n.observeNick(e.From, e.Nick)
		case rooms.FileShared:
			n.onFileShare(e)
			continue // reported by transfer as a file_offer
		case drained:
			close(e.done)
			continue
		}
		if c := n.courier.Load(); c != nil {
			c.Observe(e)
		}
		n.passOn(e)
		if j, ok := e.(events.Joined); ok {
			// Also a room joined by a way the node did not start (an
			// admission that came later): tracked from now, once per
			// room and run (shown_rooms.go).
			n.reshow(j.Room)
		}
	}
}

// passOn gives e to the emitter, and records it as shown then (or, with
// Config.ConfirmShown, waits for the user interface to say so).
func (n *Node) passOn(e events.Event) {
	if !confirmable(e) || n.shown == nil {
		n.emit.Emit(e)
		return
	}
	if n.cfg.ConfirmShown {
		n.shown.expect()
		n.emit.Emit(e)
		return
	}
	n.emit.Emit(e)
	n.shown.shown(e, false)
}

// Shown tells the node that the user interface has shown e (written it
// out), with Config.ConfirmShown. It never blocks; events whose showing
// is not recorded are ignored. It may be called until Close returns.
func (n *Node) Shown(e events.Event) {
	if n.cfg.ConfirmShown && confirmable(e) && n.shown != nil {
		n.shown.shown(e, true)
	}
}

// UIDone tells the node, with Config.ConfirmShown, that the user
// interface has ended and shows nothing more (the terminal UI closed
// before the node): Close then does not wait for confirmations, and what
// the interface did not take in is shown again at the next start.
func (n *Node) UIDone() {
	if n.shown != nil {
		n.shown.stopWaiting()
	}
}

// markShown writes a batch of shown marks to the services' stores. Until
// the dm service is started, or the transfer service for a batch with
// transfer events (their New emits the events an earlier run did not
// show), it reports errNotStarted, and the batch waits.
func (n *Node) markShown(evs []events.Event) error {
	svc, files := n.dmMarks.Load(), n.transferMarks.Load()
	if svc == nil || (files == nil && hasFileEvents(evs)) {
		return errNotStarted
	}
	errs := []error{svc.MarkShown(evs), n.roomMarks.mark(evs)}
	if files != nil {
		errs = append(errs, files.MarkShown(evs))
	}
	return errors.Join(errs...)
}

// goSafe runs f on a goroutine counted in wg, unless Close has begun.
func (n *Node) goSafe(f func()) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return ErrClosed
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return nil
}

// stopLoop closes the internal queue and waits for the loop to drain it.
func (n *Node) stopLoop() {
	n.internal.Close()
	<-n.loopDone
	if d := n.internal.Dropped(); d > 0 {
		n.log.Warn("events dropped: the node's event queue was full", "dropped", d)
	}
}

// Close stops the services, then the event loop (after it passed on what
// they reported), the host and the store, in that order: rooms first,
// whose Close announces leaving in every room and waits (at most a
// second) until the announcements are written, while the host's
// connections are still open; then transfer and dm; then the host, which
// closes the connections. Every service runs on its own context from New
// until its Close, so this works the same after a signal ended the
// context given to New. The caller bounds the whole (cmd/parley: 5 s). It
// is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		n.mu.Lock()
		n.closing = true
		n.mu.Unlock()
		n.cancel()
		n.wg.Wait()
		if n.rooms != nil {
			if err := n.rooms.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if n.transfer != nil {
			if err := n.transfer.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, n.closeMailbox()...)
		if n.dm != nil {
			if err := n.dm.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.stopLoop()
		// The user interface may still be writing what the loop passed
		// on: wait for its confirmations while the store is open.
		n.shown.close(shownWait)
		if err := n.host.Close(); err != nil {
			errs = append(errs, err)
		}
		if n.trust != nil {
			if err := n.trust.Flush(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := n.ages.Close(); err != nil {
			errs = append(errs, fmt.Errorf("write identity ages: %w", err))
		}
		if err := n.store.Close(); err != nil {
			errs = append(errs, err)
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
