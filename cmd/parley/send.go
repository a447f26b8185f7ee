package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/events"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/present"
	"github.com/parley-chat/parley/transfer"
	"github.com/parley-chat/parley/trust"
)

// sendConnectTimeout bounds reaching the recipient of parley send.
const sendConnectTimeout = 60 * time.Second

// sendCmd is a parsed `parley send` command line.
type sendCmd struct {
	settings
	fs   *flagSet
	to   string
	path string
}

func parseSend(args []string, stdout io.Writer) (*sendCmd, error) {
	c := &sendCmd{}
	c.fs = newCommandFlags("send", cmdSend, &c.settings)
	c.fs.maxArgs = 1
	c.fs.synopsis = "parley send [flags] --to PEER PATH"
	c.fs.StringVar(&c.to, "to", "", "recipient `PEER` (required): MULTIADDR/p2p/ID, a peer ID or a known nick")
	if err := c.fs.parse(args, stdout); err != nil {
		return nil, err
	}
	if c.to == "" || len(c.fs.args) != 1 {
		return nil, usageError{errors.New("usage: parley send [flags] --to PEER PATH")}
	}
	c.path = c.fs.args[0]
	return c, nil
}

// checkSendFile fails early, before any node starts, when path is not a
// file that can be sent.
func checkSendFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("send %s: %w", path, err)
	}
	if st.IsDir() {
		return usageError{fmt.Errorf("send %s: is a directory; parley send sends one file (pack a directory with tar or zip first)", path)}
	}
	return nil
}

// run is `parley send --to PEER PATH`: start a node, offer one file,
// wait until the recipient has verified it (exit 0) or the transfer
// failed, was rejected or cancelled (exit 1). Events go to stdout as in
// chat (--json for JSON lines).
func (c *sendCmd) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	s, fs, to, path := &c.settings, c.fs, c.to, c.path
	if err := checkSendFile(path); err != nil {
		return err
	}
	logger, id, err := s.prepare(fs, stdin, stderr, stderr)
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

	var say func(string)
	if !s.json {
		say = func(text string) { queue.Emit(events.Info{Text: text}) }
	}
	sendErr := sendOne(ctx, n, target, path, s.rooms, say)

	closeErr := shutdown(n.Close, queue, writerDone)
	if sendErr != nil {
		return sendErr
	}
	return closeErr
}

// sendOne offers path to target and waits until the transfer ends. say,
// when not nil, tells a person what the command waits for.
func sendOne(ctx context.Context, n *node.Node, target, path string, rooms []string, say func(string)) error {
	to, err := resolveRecipient(ctx, n, target, rooms)
	if err != nil {
		return fmt.Errorf("send %s: %w", path, err)
	}
	if err := n.Reach(ctx, to); err != nil {
		return fmt.Errorf("send %s: %w; give the recipient's address as --to MULTIADDR/p2p/ID, or a --peer or --bootstrap both of you use", path, err)
	}
	tid, err := n.Offer(ctx, to, path)
	if err != nil {
		return fmt.Errorf("send %s: %w", path, err)
	}
	if say != nil {
		say(present.SendWaiting(path, present.MemberBy(n, to), tid))
	}
	if _, err := n.WaitTransfer(ctx, tid); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("send %s (transfer %s): stopped; run the same command again to resume where it stopped", path, present.ShortID(tid))
		}
		return fmt.Errorf("send %s (transfer %s): %w", path, tid, err)
	}
	return nil
}

// resolveRecipient turns --to into a peer ID. A nick this node has never
// seen is looked up among the members of the --room rooms (the lobby by
// default): the node joins them and waits for the nick to be announced.
func resolveRecipient(ctx context.Context, n *node.Node, target string, rooms []string) (peer.ID, error) {
	to, err := n.ResolvePeer(target)
	if err == nil || !errors.Is(err, trust.ErrUnknownPeer) {
		return to, err
	}
	if len(rooms) == 0 {
		rooms = []string{node.DefaultRoom}
	}
	for _, r := range rooms {
		if _, err := n.Join(ctx, r); err != nil {
			return "", fmt.Errorf("look up %q in room %s: %w", target, r, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, sendConnectTimeout)
	defer cancel()
	to, err = n.ResolvePeerWait(wctx, target)
	if err != nil && errors.Is(err, trust.ErrUnknownPeer) {
		return "", fmt.Errorf("%w (waited %v in %s); check the nick, or give a peer ID", err, sendConnectTimeout, strings.Join(rooms, ", "))
	}
	return to, err
}
