//go:build linux

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-chat/parley/internal/proctest"
)

// binaryIdle is how long a started process is left alone before its
// resident memory is read.
const binaryIdle = 2 * time.Second

// buildBinary builds pkg (relative to the module root, one directory up)
// without the race detector, whose memory would swamp the figures.
func buildBinary(b *testing.B, dir, pkg string) string {
	b.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = ".."
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

func processRSS(b *testing.B, p *proctest.Peer) uint64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read %s status: %v", p.Name, err)
	}
	rss := ParseVmRSS(status)
	if rss == 0 {
		b.Fatalf("no VmRSS in %s status", p.Name)
	}
	return rss
}

// binaryFigures are one process's start-up time, its resident memory
// when idle and with peers connected.
type binaryFigures struct {
	ready          time.Duration
	idle, withPeer uint64
}

// runBinary starts bin, waits for ready, reads its RSS after binaryIdle,
// connects the peers, and reads it again.
func runBinary(b *testing.B, bin, name string, peers []host.Host, args ...string) binaryFigures {
	b.Helper()
	var f binaryFigures
	t0 := time.Now()
	p := proctest.Start(b, bin, name, args...)
	ready := p.Wait(30*time.Second, "ready", nil)
	f.ready = time.Since(t0)
	time.Sleep(binaryIdle)
	f.idle = processRSS(b, p)
	var ai *peer.AddrInfo
	addrs, _ := ready["addrs"].([]any)
	for _, a := range addrs {
		s, _ := a.(string)
		if strings.Contains(s, "/tcp/") {
			m, err := ma.NewMultiaddr(s)
			if err != nil {
				b.Fatal(err)
			}
			if ai, err = peer.AddrInfoFromP2pAddr(m); err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	if ai == nil {
		b.Fatalf("%s: no TCP address in %v", name, addrs)
	}
	for _, h := range peers {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		err := h.Connect(ctx, *ai)
		cancel()
		if err != nil {
			b.Fatalf("connect to %s: %v", name, err)
		}
	}
	time.Sleep(binaryIdle)
	f.withPeer = processRSS(b, p)
	for _, h := range peers {
		_ = h.Network().ClosePeer(ai.ID)
	}
	p.Signal(syscall.SIGTERM)
	_ = p.Exited(10 * time.Second)
	return f
}

// BenchmarkBinaryCost starts the real `parley chat` binary (line mode,
// JSON events, loopback TCP and QUIC, no mDNS) next to a bare libp2p host
// binary (testdata/barehost), alternately, and reports the time from
// exec to the ready line, the resident memory when idle, and its growth
// per connected peer (peers are hosts in this process). Run:
//
//	go test -run '^$' -bench BinaryCost -benchtime 5x ./bench
func BenchmarkBinaryCost(b *testing.B) {
	dir := b.TempDir()
	parley := buildBinary(b, dir, "./cmd/parley")
	bare := buildBinary(b, dir, "./bench/testdata/barehost")
	const k = 20
	peers := make([]host.Host, k)
	for i := range peers {
		h, err := bareHost()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = h.Close() })
		peers[i] = h
	}
	listen := []string{"--listen", loopTCP, "--listen", loopQUIC}
	var ps, bs []binaryFigures
	for i := range b.N {
		data := filepath.Join(dir, "data-"+strconv.Itoa(i))
		ps = append(ps, runBinary(b, parley, "parley", peers,
			append([]string{"--line", "--no-mdns", "--data-dir", data, "--nick", "bench"}, listen...)...))
		bs = append(bs, runBinary(b, bare, "barehost", peers, listen...))
	}
	med := func(fs []binaryFigures, get func(binaryFigures) float64) float64 {
		vs := make([]float64, len(fs))
		for i, f := range fs {
			vs[i] = get(f)
		}
		slices.Sort(vs)
		return vs[len(vs)/2]
	}
	ready := func(f binaryFigures) float64 { return ms(f.ready) }
	idle := func(f binaryFigures) float64 { return mib(f.idle) }
	perPeer := func(f binaryFigures) float64 { return (float64(f.withPeer) - float64(f.idle)) / k / 1024 }
	b.ReportMetric(med(ps, ready), "ready-ms")
	b.ReportMetric(med(ps, idle), "idle-RSS-MiB")
	b.ReportMetric(med(ps, perPeer), "RSS-KiB/peer")
	b.ReportMetric(med(bs, ready), "bare-ready-ms")
	b.ReportMetric(med(bs, idle), "bare-idle-RSS-MiB")
	b.ReportMetric(med(bs, perPeer), "bare-RSS-KiB/peer")
	b.Logf("medians of %d: parley chat ready %.0f ms (bare host %.0f ms), idle RSS %.1f MiB (target < %d; bare %.1f), %.1f KiB per peer (bare %.1f)",
		b.N, med(ps, ready), med(bs, ready), med(ps, idle), CostTargetRSS>>20, med(bs, idle), med(ps, perPeer), med(bs, perPeer))
}
