package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// CopyPeerEnv, set to tcp or quic in the environment of `parley bench`,
// makes that process a copy peer instead of running the suite: one plain
// go-libp2p host (as the e2e baseline's, see plainHost) driven by
// commands on stdin, for the e2e scenario's second baseline, the plain
// stream copy between two processes (as Parley's two processes are). It
// is not a setting: the e2e scenario sets it for the processes it starts.
const CopyPeerEnv = "PARLEY_BENCH_COPY_PEER"

// CopyPeer runs a copy peer over transport tr (tcp or quic) until in ends
// or says /quit. It prints JSON lines on out: first
// {"type":"ready","peer_id":…,"addrs":[…]}, then one event per command.
// Commands, one a line:
//
//	connect ADDR       dial ADDR (with /p2p/); answers connected
//	recv PATH          write the next incoming copy stream to PATH and
//	                   fsync it; answers receiving at once, copy_done
//	                   once the copy is durable
//	send PEER_ID SRC   copy SRC over a new stream to PEER_ID
//
// A failure is a file_failed event with an error field.
func CopyPeer(ctx context.Context, tr string, in io.Reader, out io.Writer) error {
	listen := loopTCP
	switch tr {
	case "tcp":
	case "quic":
		listen = loopQUIC
	default:
		return fmt.Errorf("%s=%q: want tcp or quic", CopyPeerEnv, tr)
	}
	h, err := plainHost(listen)
	if err != nil {
		return err
	}
	defer func() { _ = h.Close() }()
	var mu sync.Mutex // serializes writes to out
	emit := func(m map[string]any) {
		b, _ := json.Marshal(m) // plain strings only
		mu.Lock()
		defer mu.Unlock()
		_, _ = fmt.Fprintf(out, "%s\n", b)
	}
	fail := func(err error) { emit(map[string]any{"type": "file_failed", "error": err.Error()}) }
	var addrs []string
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String()+"/p2p/"+h.ID().String())
	}
	emit(map[string]any{"type": "ready", "peer_id": h.ID().String(), "addrs": addrs})
	var wg sync.WaitGroup
	defer wg.Wait()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch cmd {
		case "/quit":
			return nil
		case "connect":
			info, err := peer.AddrInfoFromString(arg)
			if err == nil {
				err = h.Connect(ctx, *info)
			}
			if err != nil {
				fail(fmt.Errorf("connect %s: %w", arg, err))
				continue
			}
			emit(map[string]any{"type": "connected"})
		case "recv":
			dst := arg
			h.SetStreamHandler(copyProto, func(s network.Stream) {
				if err := receiveToFile(s, dst); err != nil {
					fail(err)
					return
				}
				emit(map[string]any{"type": "copy_done", "path": dst})
			})
			emit(map[string]any{"type": "receiving", "path": dst})
		case "send":
			id, src, _ := strings.Cut(arg, " ")
			p, err := peer.Decode(id)
			if err != nil {
				fail(fmt.Errorf("send: peer %q: %w", id, err))
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := copyOut(ctx, h, p, src); err != nil {
					fail(err)
				}
			}()
		default:
			fail(fmt.Errorf("unknown command %q", cmd))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("copy peer: read commands: %w", err)
	}
	return nil
}

// copyOut copies src over a new copy stream to p, as copyFile does.
func copyOut(ctx context.Context, h host.Host, p peer.ID, src string) error {
	in, err := os.Open(src) // #nosec G304 -- the benchmark's own source file
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer func() { _ = in.Close() }() // read only
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, copyProto)
	if err != nil {
		return fmt.Errorf("open copy stream: %w", err)
	}
	defer context.AfterFunc(ctx, func() { _ = s.Reset() })()
	if _, err := io.CopyBuffer(struct{ io.Writer }{s}, struct{ io.Reader }{in}, make([]byte, copyBuf)); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("close copy stream: %w", err)
	}
	// The recipient closes its side once the copy is synced.
	_, _ = io.Copy(io.Discard, s)
	return nil
}

// copyAddr returns the address of p (a copy peer) over proto.
func copyAddr(p *parleyProc, proto int) (string, error) {
	addrs, _ := p.ready.m["addrs"].([]any)
	for _, a := range addrs {
		s, _ := a.(string)
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		if _, err := m.ValueForProtocol(proto); err == nil {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s: no address for protocol %d in %v", p.name, proto, addrs)
}
