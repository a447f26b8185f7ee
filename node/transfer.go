package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/internal/safetext"
	"github.com/parley-chat/parley/rooms"
	"github.com/parley-chat/parley/transfer"
)

// AutoAcceptTrusted in Config.AutoAcceptFrom stands for every peer whose
// safety number was compared (/trust).
const AutoAcceptTrusted = "trusted"

// startTransfer starts the file transfer service.
func (n *Node) startTransfer(ctx context.Context) error {
	cfg := n.cfg.Transfer
	cfg.Host = n.host
	cfg.DB = n.store.DB()
	cfg.Emitter = n.emit
	cfg.Logger = n.log.With("component", "transfer")
	if cfg.DownloadDir == "" {
		cfg.DownloadDir = filepath.Join(n.cfg.DataDir, "downloads")
	}
	auto, err := n.autoAccept()
	if err != nil {
		return err
	}
	cfg.AutoAccept = auto
	svc, err := transfer.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start file transfer: %w", err)
	}
	n.transfer = svc
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
// which reports it as a file_offer with the room.
func (n *Node) onFileShare(room string, from peer.ID, sh rooms.FileShare) {
	if sh.Size > uint64(1<<62) {
		return
	}
	err := n.transfer.AddRemoteShare(room, from, transfer.Share{ID: sh.ID, Name: sh.Name, Size: int64(sh.Size), Hash: sh.Hash})
	if err != nil {
		n.log.Debug("ignored a file share", "room", room, "from", from, "err", err)
	}
}

func (n *Node) transferCommands() []*command {
	return []*command{
		{name: "send", usage: "PEER PATH", help: "offer a file to a peer", run: n.cmdSend},
		{name: "accept", usage: "ID", help: "accept a file offer (ID or a unique prefix)", run: n.transferOp("accept", n.accept)},
		{name: "reject", usage: "ID", help: "reject a file offer", run: n.transferOp("reject", n.reject)},
		{name: "cancel", usage: "ID", help: "cancel a transfer, on either side", run: n.transferOp("cancel", n.transferCancel)},
		{name: "resume", usage: "ID", help: "resume an interrupted transfer now", run: n.transferOp("resume", n.transferResume)},
		{name: "transfers", help: "list transfers with state, progress, rate and ETA", run: noArgs("transfers", n.cmdTransfers)},
		{name: "share", usage: "ROOM PATH", help: "announce a file in a room; members /fetch it", run: n.cmdShare},
		{name: "fetch", usage: "ID", help: "download a file shared in a room", run: n.transferOp("fetch", n.fetch)},
	}
}

func (n *Node) accept(_ context.Context, id string) error         { return n.transfer.Accept(id) }
func (n *Node) reject(_ context.Context, id string) error         { return n.transfer.Reject(id) }
func (n *Node) transferCancel(_ context.Context, id string) error { return n.transfer.Cancel(id) }
func (n *Node) transferResume(_ context.Context, id string) error { return n.transfer.Resume(id) }
func (n *Node) fetch(ctx context.Context, id string) error        { return n.transfer.Fetch(ctx, id) }

// transferOp wraps a command whose one argument is a transfer ID.
func (n *Node) transferOp(name string, op func(context.Context, string) error) func(context.Context, string) error {
	return func(ctx context.Context, args string) error {
		if args == "" || strings.ContainsAny(args, " \t") {
			return fmt.Errorf("usage: /%s ID", name)
		}
		return op(ctx, args)
	}
}

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

// SendFile offers the file at path to the named peer (as /send does) and
// returns the transfer ID.
func (n *Node) SendFile(ctx context.Context, who, path string) (string, error) {
	p, err := n.resolvePeer(who)
	if err != nil {
		return "", err
	}
	abs, err := expandPath(path)
	if err != nil {
		return "", err
	}
	id, err := n.transfer.Offer(ctx, p, abs)
	if err != nil {
		return "", err
	}
	return id, nil
}

// WaitTransfer blocks until a transfer ends (see transfer.Service.Wait).
func (n *Node) WaitTransfer(ctx context.Context, id string) (transfer.Result, error) {
	return n.transfer.Wait(ctx, id)
}

func (n *Node) cmdSend(ctx context.Context, args string) error {
	who, path, _ := strings.Cut(args, " ")
	path = strings.TrimSpace(path)
	if who == "" || path == "" {
		return errors.New("usage: /send PEER PATH")
	}
	id, err := n.SendFile(ctx, who, path)
	if err != nil {
		return err
	}
	n.emit.Emit(events.Info{Text: fmt.Sprintf("offering %s to %s as transfer %s once it is hashed", safetext.Line(filepath.Base(path)), safetext.Line(who), id), Data: map[string]string{"transfer_id": id}})
	return nil
}

func (n *Node) cmdShare(ctx context.Context, args string) error {
	room, path, _ := strings.Cut(args, " ")
	path = strings.TrimSpace(path)
	if room == "" || path == "" {
		return errors.New("usage: /share ROOM PATH")
	}
	name, err := n.roomArg(room)
	if err != nil {
		return err
	}
	abs, err := expandPath(path)
	if err != nil {
		return err
	}
	sh, err := n.transfer.Share(abs)
	if err != nil {
		return err
	}
	// #nosec G115 -- a shared file's size is never negative
	if err := n.rooms.ShareFile(ctx, name, rooms.FileShare{ID: sh.ID, Name: sh.Name, Size: uint64(sh.Size), Hash: sh.Hash}); err != nil {
		if cerr := n.transfer.Cancel(sh.ID); cerr != nil {
			n.log.Debug("withdraw share", "id", sh.ID, "err", cerr)
		}
		return err
	}
	n.emit.Emit(events.Info{Text: fmt.Sprintf("shared %s in #%s as %s", safetext.Line(sh.Name), name, sh.ID), Data: sh})
	return nil
}

func (n *Node) cmdTransfers(context.Context) error {
	list := n.transfer.List()
	var b strings.Builder
	fmt.Fprintf(&b, "%d transfer(s)", len(list))
	for _, t := range list {
		fmt.Fprintf(&b, "\n  %s %-7s %-9s %s %s", shortTransferID(t.ID), t.Direction, t.State, safetext.Line(t.Name), FormatProgress(t.Bytes, t.Size, t.Rate))
		if t.Error != "" {
			fmt.Fprintf(&b, " (%s)", safetext.Line(t.Error))
		}
	}
	if list == nil {
		list = []transfer.Info{}
	}
	n.emit.Emit(events.Info{Text: b.String(), Data: list})
	return nil
}

func shortTransferID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// FormatProgress renders progress as a bar with percentage, rate and ETA:
// "[#####-----]  50%  12.0 MiB/s  ETA 4s".
func FormatProgress(done, size, rate int64) string {
	const width = 20
	frac := 1.0
	if size > 0 {
		frac = float64(done) / float64(size)
	}
	frac = min(max(frac, 0), 1)
	filled := int(frac * width)
	bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
	s := fmt.Sprintf("[%s] %3.0f%% %s/%s", bar, frac*100, FormatBytes(done), FormatBytes(size))
	if rate > 0 {
		s += fmt.Sprintf("  %s/s", FormatBytes(rate))
		if size > done {
			eta := time.Duration(float64(size-done) / float64(rate) * float64(time.Second))
			s += "  ETA " + eta.Round(time.Second).String()
		}
	}
	return s
}

// FormatBytes renders a byte count with a binary unit.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
