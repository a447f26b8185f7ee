// Command barehost is the baseline of BenchmarkBinaryCost: a bare libp2p
// host with libp2p's defaults, listening where it is told, that prints a
// ready line like `parley chat --json` and runs until stdin ends or it is
// signalled.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var listen listFlag
	flag.Bool("json", true, "ignored: output is always JSON")
	flag.Var(&listen, "listen", "listen multiaddr (repeatable)")
	flag.Parse()
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen...), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		fmt.Fprintln(os.Stderr, "barehost:", err)
		os.Exit(1)
	}
	var addrs []string
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String()+"/p2p/"+h.ID().String())
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"type": "ready", "peer_id": h.ID().String(), "addrs": addrs})
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-done:
	case <-sig:
	}
	_ = h.Close()
}
