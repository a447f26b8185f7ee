package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/rooms"
	"github.com/parley-chat/parley/transfer"
)

// AutoAcceptTrusted in Config.AutoAcceptFrom stands for every peer whose
// safety number was compared (/trust).
const AutoAcceptTrusted = "trusted"

// downloadDir is where received files go: Transfer.DownloadDir, by
// default DATA_DIR/downloads.
func (n *Node) downloadDir() string {
	if d := n.cfg.Transfer.DownloadDir; d != "" {
		return d
	}
	return filepath.Join(n.cfg.DataDir, "downloads")
}

// startTransfer starts the file transfer service.
func (n *Node) startTransfer(ctx context.Context) error {
	cfg := n.cfg.Transfer
	cfg.Host = n.host
	cfg.DB = n.store.DB()
	cfg.Emitter = n.internal
	cfg.Logger = n.log.With("component", "transfer")
	cfg.DownloadDir = n.downloadDir()
	auto, err := n.autoAccept()
	if err != nil {
		return err
	}
	cfg.AutoAccept = auto
	cfg.Known = n.own.known
	cfg.ConfirmShown = true // marked shown by the node (shown.go)
	cfg.Held = n.onHeld
	cfg.Newcomer = n.newcomer
	svc, err := transfer.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start file transfer: %w", err)
	}
	n.transfer = svc
	n.transferMarks.Store(svc)
	n.shown.poke() // the marks that waited for it
	return nil
}

// autoAccept builds the auto-accept rule from Config.AutoAcceptFrom:
// peer IDs, or "trusted" for every trusted peer, up to AutoAcceptMax bytes.
func (n *Node) autoAccept() (func(peer.ID, int64) bool, error) {
	if len(n.cfg.AutoAcceptFrom) == 0 {
		return nil, nil
	}
	ids := make(map[peer.ID]bool)
	trusted := false
	for _, s := range n.cfg.AutoAcceptFrom {
		if s == AutoAcceptTrusted {
			trusted = true
			continue
		}
		p, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("bad auto_accept_from entry %q: use peer IDs or %q", s, AutoAcceptTrusted)
		}
		ids[p] = true
	}
	limit := n.cfg.AutoAcceptMax
	return func(from peer.ID, size int64) bool {
		if limit > 0 && size > limit {
			return false
		}
		if ids[from] {
			return true
		}
		if trusted {
			info, ok := n.trust.Get(from)
			return ok && info.Trusted
		}
		return false
	}, nil
}

// onFileShare passes a file announced in a room to the transfer service,
// which reports it as a file_offer with the room. It runs on the node's
// event loop.
func (n *Node) onFileShare(e rooms.FileShared) {
	sh := e.Share
	if sh.Size > uint64(1<<62) {
		return
	}
	err := n.transfer.AddRemoteShare(e.Room, e.From, transfer.Share{ID: sh.ID, Name: sh.Name, Size: int64(sh.Size), Hash: sh.Hash})
	if err != nil {
		n.log.Debug("ignored a file share", "room", e.Room, "from", e.From, "err", err)
	}
}

// onHeld announces in room that this node now holds a share it fetched
// there: the same announcement as the sharer's, signed by this node, so
// that members fetching it pull from this node too (transfer/swarm.go).
// It is the transfer service's Config.Held and does not block.
func (n *Node) onHeld(room string, sh transfer.Share) {
	err := n.goSafe(func() {
		svc := n.own.rooms.Load()
		if svc == nil {
			n.log.Debug("fetched share not announced: rooms not started", "id", sh.ID)
			return
		}
		// #nosec G115 -- a fetched file's size is never negative
		fs := rooms.FileShare{ID: sh.ID, Name: sh.Name, Size: uint64(sh.Size), Hash: sh.Hash}
		if err := svc.ShareFile(n.ctx, room, fs); err != nil {
			n.log.Debug("fetched share not announced", "id", sh.ID, "room", room, "err", err)
		}
	})
	if err != nil {
		n.log.Debug("fetched share not announced", "id", sh.ID, "err", err)
	}
}

// Accept accepts a file offer (ID or a unique prefix).
func (n *Node) Accept(id string) error { return n.transfer.Accept(id) }

// Reject declines a file offer.
func (n *Node) Reject(id string) error { return n.transfer.Reject(id) }

// Cancel cancels a transfer, on either side; on a room share this node
// fetched, it stops serving it to other members.
func (n *Node) Cancel(id string) error { return n.transfer.Cancel(id) }

// Resume retries an interrupted transfer now.
func (n *Node) Resume(id string) error { return n.transfer.Resume(id) }

// Fetch downloads a file shared in a room.
func (n *Node) Fetch(ctx context.Context, id string) error { return n.transfer.Fetch(ctx, id) }

// ShareHolders lists the members announced to hold a file shared in a
// room (the sharer first); /fetch pulls from every one of them.
func (n *Node) ShareHolders(id string) ([]peer.ID, error) { return n.transfer.ShareHolders(id) }

// expandPath resolves ~ and makes a path absolute.
func expandPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expand %s: %w", p, err)
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("path %s: %w", safetext.Line(p), err)
	}
	return abs, nil
}

// Offer offers the file at path (~ is expanded) to p and returns the
// transfer ID; events report the rest.
func (n *Node) Offer(ctx context.Context, p peer.ID, path string) (string, error) {
	abs, err := expandPath(path)
	if err != nil {
		return "", err
	}
	return n.transfer.Offer(ctx, p, abs)
}

// WaitTransfer blocks until a transfer ends (see transfer.Service.Wait).
func (n *Node) WaitTransfer(ctx context.Context, id string) (transfer.Result, error) {
	return n.transfer.Wait(ctx, id)
}

// Share starts sharing the file at path in a joined room and returns the
// share's ID at once: the file is hashed in the background (file_hashing
// events), then announced in the room, and a ShareAnnounced event says
// so. A failure after Share returned is a file_failed event (hashing) or
// an error event (announcing).
func (n *Node) Share(_ context.Context, room, path string) (string, error) {
	name, err := n.Room(room)
	if err != nil {
		return "", err
	}
	abs, err := expandPath(path)
	if err != nil {
		return "", err
	}
	id, err := n.transfer.StartShare(abs)
	if err != nil {
		return "", err
	}
	if err := n.goSafe(func() { n.announceShare(name, id) }); err != nil {
		return "", errors.Join(err, n.transfer.Cancel(id))
	}
	return id, nil
}

// announceShare waits for a share to be hashed and announces it in room.
func (n *Node) announceShare(room, id string) {
	sh, err := n.transfer.WaitShared(n.ctx, id)
	if err != nil {
		// Hashing failed (file_failed says why), was cancelled, or the
		// node is closing.
		n.log.Debug("share not announced", "id", id, "err", err)
		return
	}
	// #nosec G115 -- a shared file's size is never negative
	fs := rooms.FileShare{ID: sh.ID, Name: sh.Name, Size: uint64(sh.Size), Hash: sh.Hash}
	if err := n.rooms.ShareFile(n.ctx, room, fs); err != nil {
		if cerr := n.transfer.Cancel(sh.ID); cerr != nil {
			n.log.Debug("withdraw share", "id", sh.ID, "err", cerr)
		}
		n.emit.Emit(events.Error{Error: fmt.Sprintf("share %s in #%s: %v", safetext.Line(sh.Name), safetext.Line(room), err)})
		return
	}
	n.emit.Emit(ShareAnnounced{Room: room, Share: sh})
}

// ShareAnnounced is reported when a file shared with Share was hashed and
// announced in its room. Its JSON form is the info event that /share
// always answered with ({"type":"info","text":...,"data":{id, name,
// size, hash}}): user interfaces make it with command.ShareInfo.
type ShareAnnounced struct {
	Room  string
	Share transfer.Share
}

// Type names the event; see ShareAnnounced for its JSON form.
func (ShareAnnounced) Type() string { return "share_announced" }

// TransferBudget returns what the file transfers' budgets refused or
// expired (docs/SECURITY.md "Budgets").
func (n *Node) TransferBudget() transfer.BudgetCounters {
	if n.transfer == nil {
		return transfer.BudgetCounters{}
	}
	return n.transfer.Budget()
}

// Transfers lists the file transfers the node knows.
func (n *Node) Transfers() []transfer.Info {
	if n.transfer == nil {
		return nil
	}
	return n.transfer.List()
}
