package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/transfer"
)

// sendConnectTimeout bounds reaching the recipient of parley send.
const sendConnectTimeout = 60 * time.Second

// sendCmd is a parsed `parley send` command line.
type sendCmd struct {
	chatSettings
	fs   *flagSet
	to   string
	path string
}

func parseSend(args []string, stdout io.Writer) (*sendCmd, error) {
	c := &sendCmd{fs: newFlagSet("send")}
	c.fs.maxArgs = 1
	c.register(c.fs)
	c.fs.StringVar(&c.to, "to", "", "recipient: `MULTIADDR/p2p/ID`, a peer ID, or a known nick")
	if err := c.fs.parse(args, stdout); err != nil {
		return nil, err
	}
	if c.to == "" || c.fs.NArg() != 1 {
		return nil, usageError{errors.New("usage: parley send [flags] --to PEER PATH")}
	}
	c.path = c.fs.Arg(0)
	return c, nil
}

// run is `parley send --to PEER PATH`: start a node, offer one file,
// wait until the recipient has verified it (exit 0) or the transfer
// failed, was rejected or cancelled (exit 1). Events go to stdout as in
// chat (--json for JSON lines).
func (c *sendCmd) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	s, fs, to, path := &c.chatSettings, c.fs, c.to, c.path
	if err := s.resolveDataDir(); err != nil {
		return err
	}
	logger, id, err := s.prepare(fs, s.applyFile, stdin, stderr, stderr)
	if err != nil {
		return err
	}
	ocfg, err := s.overlayConfig()
	if err != nil {
		return err
	}
	target := to
	if strings.Contains(to, "/p2p/") {
		ai, err := overlay.ParsePeerAddr(to)
		if err != nil {
			return usageError{fmt.Errorf("bad --to: %w", err)}
		}
		ocfg.Peers = mergeAddrInfo(ocfg.Peers, ai)
		target = ai.ID.String()
	}
	nick := s.nick
	if nick == "" {
		nick = defaultNick(id)
	}
	queue := events.NewQueue(eventQueueLimit)
	n, err := node.New(ctx, node.Config{
		DataDir:       s.dataDir,
		Identity:      id,
		Nick:          nick,
		Overlay:       ocfg,
		Rooms:         s.rooms,
		NoDefaultRoom: true,
		Transfer:      transfer.Config{DownloadDir: s.downloads, MaxFileSize: s.maxFile},
		Emitter:       queue,
		Logger:        logger,
		Version:       version,
	})
	if err != nil {
		return err
	}
	out := newRenderer(stdout, s.json, n)
	writerDone := make(chan error, 1)
	go func() { writerDone <- out.drain(queue) }()
	queue.Emit(n.Ready())

	sendErr := sendOne(ctx, n, target, path)

	closeErr := shutdown(n.Close, queue, writerDone)
	if sendErr != nil {
		return sendErr
	}
	return closeErr
}

func sendOne(ctx context.Context, n *node.Node, target, path string) error {
	if p, err := peer.Decode(target); err == nil {
		cctx, cancel := context.WithTimeout(ctx, sendConnectTimeout)
		err := n.Host().Connect(cctx, peer.AddrInfo{ID: p})
		cancel()
		if err != nil {
			return fmt.Errorf("cannot reach %s: %w; give its address as --to MULTIADDR/p2p/ID or use --peer/--bootstrap", target, err)
		}
	}
	to, err := n.ResolvePeer(target)
	if err != nil {
		return fmt.Errorf("send %s: %w", path, err)
	}
	tid, err := n.Offer(ctx, to, path)
	if err != nil {
		return fmt.Errorf("send %s: %w", path, err)
	}
	if _, err := n.WaitTransfer(ctx, tid); err != nil {
		return fmt.Errorf("send %s (transfer %s): %w", path, tid, err)
	}
	return nil
}
