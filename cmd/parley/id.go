package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// idCmd is a parsed `parley id` command line.
type idCmd struct {
	settings
	json bool
}

func parseID(args []string, stdout io.Writer) (*idCmd, error) {
	c := &idCmd{}
	fs := newCommandFlags("id", cmdID, &c.settings)
	fs.BoolVar(&c.json, "json", false, "print as one JSON object")
	if err := fs.parse(args, stdout); err != nil {
		return nil, err
	}
	return c, nil
}

// idNoAddr is what parley id says without --listen: a chat peer's
// default ports are random, so there is no address to print yet.
const idNoAddr = "none fixed: chat listens on random ports and prints its addresses when it starts (/id shows them);\n" +
	"             for a fixed one, run chat with --listen /ip4/0.0.0.0/tcp/4001 and see parley id --listen /ip4/0.0.0.0/tcp/4001"

func (c *idCmd) run(_ context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	logger := newLogger(stderr, c.logLevel)
	if err := c.resolveDataDir(cmdID); err != nil {
		return err
	}
	id, err := loadIdentity(c.dataDir, c.passphrases(stdin, stderr, logger), logger)
	if err != nil {
		return err
	}
	warnDataDirMode(logger, c.dataDir)
	addrs := dialAddrs(c.listen, id.ID)
	if c.json {
		b, err := json.Marshal(struct {
			PeerID      string   `json:"peer_id"`
			Fingerprint string   `json:"fingerprint"`
			DataDir     string   `json:"data_dir"`
			Addrs       []string `json:"addrs,omitempty"`
		}{id.ID.String(), id.Fingerprint(), c.dataDir, addrs})
		if err != nil {
			return fmt.Errorf("encode id: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "peer id:     %s\nfingerprint: %s\ndata dir:    %s\n", id.ID, id.Fingerprint(), c.dataDir)
	if len(addrs) == 0 {
		fmt.Fprintf(&b, "address:     %s\n", idNoAddr)
	}
	for _, a := range addrs {
		fmt.Fprintf(&b, "address:     %s\n", a)
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

// dialAddrs are the addresses, with /p2p/ID, that peers can dial a chat
// peer listening on listen at: an unspecified IP (0.0.0.0, ::) stands for
// every interface's; a port 0 is random, so such an address is left out.
func dialAddrs(listen []ma.Multiaddr, id peer.ID) []string {
	var ifaces []ma.Multiaddr
	var out []string
	for _, l := range listen {
		if randomPort(l) {
			continue
		}
		resolved := []ma.Multiaddr{l}
		if manet.IsIPUnspecified(l) {
			if ifaces == nil {
				ifaces, _ = manet.InterfaceMultiaddrs() // none known: the unspecified address is left out below
			}
			r, err := manet.ResolveUnspecifiedAddress(l, ifaces)
			if err != nil {
				continue
			}
			resolved = r
		}
		for _, a := range resolved {
			out = append(out, a.String()+"/p2p/"+id.String())
		}
	}
	return out
}

// randomPort reports whether a's TCP or UDP port is 0.
func randomPort(a ma.Multiaddr) bool {
	for _, code := range []int{ma.P_TCP, ma.P_UDP} {
		if v, err := a.ValueForProtocol(code); err == nil && v == "0" {
			return true
		}
	}
	return false
}
