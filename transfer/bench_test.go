package transfer

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// Benchmark settings, from the environment:
//
//	PARLEY_BENCH_SIZE    bytes to move per run, with an optional KiB/MiB/GiB
//	                     suffix (default 1GiB)
//	PARLEY_BENCH_ROUNDS  runs of each measurement; medians are reported
//	                     (default 3)
//	PARLEY_BENCH_DIR     where the source and received files live
//	                     (default a temporary dir; /dev/shm takes the disk
//	                     out of the measurement)
//
// Run: go test ./transfer -run '^$' -bench Throughput -benchtime 1x
func benchSettings(b *testing.B) (size int64, rounds int, dir string) {
	size = 1 << 30
	if v := os.Getenv("PARLEY_BENCH_SIZE"); v != "" {
		mult := int64(1)
		for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
			if strings.HasSuffix(v, suffix) {
				v, mult = strings.TrimSuffix(v, suffix), m
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_SIZE: %q", os.Getenv("PARLEY_BENCH_SIZE"))
		}
		size = n * mult
	}
	rounds = 3
	if v := os.Getenv("PARLEY_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_ROUNDS: %q", v)
		}
		rounds = n
	}
	dir = b.TempDir()
	if v := os.Getenv("PARLEY_BENCH_DIR"); v != "" {
		d, err := os.MkdirTemp(v, "parley-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(d) })
		dir = d
	}
	return size, rounds, dir
}

// writeBenchFile writes size bytes: a 1 MiB random block repeated (the
// content does not change the cost of hashing or encrypting it).
func writeBenchFile(b *testing.B, path string, size int64) {
	block := make([]byte, 1<<20)
	_, _ = rand.Read(block)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	for left := size; left > 0; left -= int64(len(block)) {
		if _, err := f.Write(block[:min(left, int64(len(block)))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// heapPeak samples the heap in use until stop is called and returns the
// largest growth over the level at start.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

const copyProto = protocol.ID("/parley/bench-copy/1.0.0")

// copyFile moves the file at src over a plain libp2p stream from a to b
// with io.CopyBuffer (1 MiB buffers) into a new file in dir, synced like a
// received transfer. It returns the time from opening the stream to the
// file being synced.
func copyFile(b *testing.B, a, to *node, src, dst string) time.Duration {
	done := make(chan error, 1)
	to.h.SetStreamHandler(copyProto, func(s network.Stream) {
		f, err := os.Create(dst)
		if err == nil {
			_, err = io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{s}, make([]byte, 1<<20))
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		_ = s.Close()
		done <- err
	})
	defer to.h.RemoveStreamHandler(copyProto)
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	start := time.Now()
	s, err := a.h.NewStream(context.Background(), to.h.ID(), copyProto)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{s}, struct{ io.Reader }{in}, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// copyMem moves size bytes from memory to io.Discard over a plain libp2p
// stream: the transport's ceiling.
func copyMem(b *testing.B, a, to *node, size int64) time.Duration {
	done := make(chan error, 1)
	to.h.SetStreamHandler(copyProto, func(s network.Stream) {
		_, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{s}, make([]byte, 1<<20))
		_ = s.Close()
		done <- err
	})
	defer to.h.RemoveStreamHandler(copyProto)
	buf := make([]byte, 1<<20)
	start := time.Now()
	s, err := a.h.NewStream(context.Background(), to.h.ID(), copyProto)
	if err != nil {
		b.Fatal(err)
	}
	for left := size; left > 0; left -= int64(len(buf)) {
		if _, err := s.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// rawTCP moves size bytes from memory to io.Discard over a loopback TCP
// socket, without libp2p.
func rawTCP(b *testing.B, size int64) time.Duration {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, make([]byte, 1<<20))
			_ = c.Close()
		}
		done <- err
	}()
	buf := make([]byte, 1<<20)
	start := time.Now()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	for left := size; left > 0; left -= int64(len(buf)) {
		if _, err := c.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// sendFile offers src from a to b, accepts it and waits until the sender
// hears that the recipient verified it. It returns the time from Accept to
// the sender's Wait returning, the time Offer took (hashing the file), the
// peak heap growth during the transfer, and the received file's path.
func sendFile(b *testing.B, a, to *node, src string) (xfer, offer time.Duration, heap uint64, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	id, err := a.svc.Offer(ctx, to.h.ID(), src)
	if err != nil {
		b.Fatal(err)
	}
	offer = time.Since(start)
	stop := heapPeak()
	start = time.Now()
	if err := to.svc.Accept(id); err != nil {
		b.Fatal(err)
	}
	if _, err := a.svc.Wait(ctx, id); err != nil {
		b.Fatal(err)
	}
	xfer = time.Since(start)
	heap = stop()
	res, err := to.svc.Wait(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	return xfer, offer, heap, res.Path
}

func mbps(size int64, d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// connectOver connects a to b using only the addresses of one transport,
// and checks the connection uses it.
func connectOver(b *testing.B, a, to *node, proto int) {
	var addrs []ma.Multiaddr
	for _, addr := range to.h.Addrs() {
		if _, err := addr.ValueForProtocol(proto); err == nil {
			addrs = append(addrs, addr)
		}
	}
	if err := a.h.Connect(context.Background(), peer.AddrInfo{ID: to.h.ID(), Addrs: addrs}); err != nil {
		b.Fatal(err)
	}
	for _, c := range a.h.Network().ConnsToPeer(to.h.ID()) {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(proto); err != nil {
			b.Fatalf("connection over %s, want protocol %d", c.RemoteMultiaddr(), proto)
		}
	}
}

// BenchmarkThroughput compares, in one run and on the same pair of
// loopback hosts, a file transfer with a plain libp2p stream io.Copy of the
// same file (file to stream to file, synced), over TCP and over QUIC; it
// also reports the transport's memory-to-memory ceiling, a raw TCP socket,
// the sender's hashing rate and the peak heap growth during transfers.
func BenchmarkThroughput(b *testing.B) {
	size, rounds, dir := benchSettings(b)
	src := filepath.Join(dir, "source.bin")
	writeBenchFile(b, src, size)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		var report []string
		var maxHeap uint64
		for _, tr := range []struct {
			name  string
			opts  []libp2p.Option
			proto int
		}{
			{"tcp", nil, ma.P_TCP},
			{"quic", []libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1")}, ma.P_QUIC_V1},
		} {
			recvDir := filepath.Join(dir, tr.name)
			a := newNodeWith(b, tr.opts)
			to := newNodeWith(b, tr.opts, func(c *Config) { c.ChunkSize = DefaultChunkSize; c.DownloadDir = recvDir })
			a.svc.cfg.ChunkSize = DefaultChunkSize
			connectOver(b, a, to, tr.proto)
			var copies, mems, xfers, offers []time.Duration
			for r := range rounds {
				dst := filepath.Join(dir, fmt.Sprintf("copy-%d.bin", r))
				copies = append(copies, copyFile(b, a, to, src, dst))
				_ = os.Remove(dst)
				mems = append(mems, copyMem(b, a, to, size))
				x, o, heap, path := sendFile(b, a, to, src)
				_ = os.Remove(path)
				xfers, offers = append(xfers, x), append(offers, o)
				maxHeap = max(maxHeap, heap)
			}
			c, m, x, o := median(copies), median(mems), median(xfers), median(offers)
			b.ReportMetric(mbps(size, x), tr.name+"-transfer-MB/s")
			b.ReportMetric(mbps(size, c), tr.name+"-copy-MB/s")
			b.ReportMetric(100*c.Seconds()/x.Seconds(), tr.name+"-ratio-%")
			report = append(report, fmt.Sprintf(
				"%s: transfer %.0f MB/s, stream io.Copy file->file %.0f MB/s (ratio %.1f%%), mem->discard %.0f MB/s (ratio %.1f%%), offer hashing %.0f MB/s",
				tr.name, mbps(size, x), mbps(size, c), 100*c.Seconds()/x.Seconds(), mbps(size, m),
				100*m.Seconds()/x.Seconds(), mbps(size, o)))
			a.stop()
			to.stop()
		}
		var raws []time.Duration
		for range rounds {
			raws = append(raws, rawTCP(b, size))
		}
		b.ReportMetric(mbps(size, median(raws)), "rawtcp-MB/s")
		b.ReportMetric(float64(maxHeap)/(1<<20), "heap-peak-MiB")
		report = append(report, fmt.Sprintf("raw TCP socket mem->discard %.0f MB/s; peak heap growth during transfers %.1f MiB",
			mbps(size, median(raws)), float64(maxHeap)/(1<<20)))
		b.Logf("%d bytes, %d rounds, medians, dir %s, %s/%s, %d CPUs:\n  %s", size, rounds, dir,
			runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), strings.Join(report, "\n  "))
	}
}
