package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"

	"github.com/parley-chat/parley/overlay"
	"github.com/parley-chat/parley/transfer"
)

// copyProto is the baseline's protocol: a plain stream the file is copied
// over.
const copyProto = protocol.ID("/parley/bench-copy/1.0.0")

// transferTimeout bounds one transfer or copy.
const transferTimeout = 10 * time.Minute

// copyBuf is the buffer size of the baseline copies (the transfer's chunk
// size).
const copyBuf = 1 << 20

// TransferTarget is the target: a transfer moves a file at least
// this fraction as fast as a plain stream copy on the same transport.
const TransferTarget = 0.90

// xferPeer is one side of the transfer scenario.
type xferPeer struct {
	h   *overlay.Host
	db  *bolt.DB
	svc *transfer.Service
}

func newXferPeer(ctx context.Context, dir string, listen string) (*xferPeer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("peer dir: %w", err)
	}
	h, err := newHost(ctx, hostSpec{listen: []string{listen}})
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "parley.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	svc, err := transfer.New(ctx, transfer.Config{Host: h, DB: db, DownloadDir: filepath.Join(dir, "downloads"), Logger: discard})
	if err != nil {
		_ = db.Close()
		_ = h.Close()
		return nil, fmt.Errorf("start transfer service: %w", err)
	}
	return &xferPeer{h: h, db: db, svc: svc}, nil
}

func (p *xferPeer) close() {
	_ = p.svc.Close()
	_ = p.h.Close()
	_ = p.db.Close()
}

// transferRound is what one round measured.
type transferRound struct {
	xfer, copy, mem, raw measured
	offer, read          measured // hashing the file for the offer; reading it
	heapX, heapC         uint64   // peak heap growth: transfer, copy
}

// Transfer measures file transfer over each of cfg.Transports: a transfer
// (from Accept to the sender learning the recipient verified the file)
// next to a plain libp2p stream copy of the same file between the same
// hosts (file to stream to file, synced), alternating which goes first
// round by round. It also reports both ends' CPU time per GiB, and the
// stream's memory-to-memory ceiling next to a raw loopback TCP socket.
func Transfer(ctx context.Context, c Config) ([]Result, error) {
	cfg := c.withDefaults()
	dir, cleanup, err := scenarioDir(&cfg, "transfer")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	src := filepath.Join(dir, "source.bin")
	if err := writeRandomFile(src, cfg.TransferSize); err != nil {
		return nil, err
	}
	var out []Result
	for _, tr := range cfg.Transports {
		rs, err := transferOver(ctx, &cfg, dir, src, tr)
		out = append(out, rs...)
		if err != nil {
			return out, fmt.Errorf("transfer over %s: %w", tr, err)
		}
	}
	return out, nil
}

func transferOver(ctx context.Context, cfg *Config, dir, src, tr string) ([]Result, error) {
	listen, proto := loopTCP, ma.P_TCP
	switch tr {
	case "tcp":
	case "quic":
		listen, proto = loopQUIC, ma.P_QUIC_V1
	default:
		return nil, fmt.Errorf("unknown transport %q (tcp or quic)", tr)
	}
	a, err := newXferPeer(ctx, filepath.Join(dir, tr+"-sender"), listen)
	if err != nil {
		return nil, err
	}
	defer a.close()
	b, err := newXferPeer(ctx, filepath.Join(dir, tr+"-recipient"), listen)
	if err != nil {
		return nil, err
	}
	defer b.close()
	if err := connect(ctx, a.h, b.h, proto); err != nil {
		return nil, err
	}
	size := cfg.TransferSize
	var rounds []transferRound
	for r := range cfg.TransferRounds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var rd transferRound
		runCopy := func() error {
			stop := heapPeak()
			rd.copy, err = copyFile(ctx, a.h, b.h, src, filepath.Join(dir, fmt.Sprintf("copy-%d.bin", r)))
			rd.heapC = stop()
			return err
		}
		runXfer := func() error {
			rd.xfer, rd.offer, rd.heapX, err = sendFile(ctx, a, b, src)
			return err
		}
		// Alternate the order, so that neither always meets the page
		// cache or a burst of background load first.
		first, second := runCopy, runXfer
		if r%2 == 1 {
			first, second = runXfer, runCopy
		}
		if err := first(); err != nil {
			return nil, err
		}
		if err := second(); err != nil {
			return nil, err
		}
		if rd.mem, err = copyMem(ctx, a, b, size); err != nil {
			return nil, err
		}
		if rd.raw, err = rawTCP(ctx, size); err != nil {
			return nil, err
		}
		if rd.read, err = readFile(src); err != nil {
			return nil, err
		}
		rounds = append(rounds, rd)
		logf(cfg.Log, "transfer/%s round %d: transfer %.0f MB/s, stream copy %.0f MB/s (%.0f%%), stream mem %.0f MB/s, raw TCP %.0f MB/s",
			tr, r+1, mbps(size, rd.xfer.wall), mbps(size, rd.copy.wall), 100*rd.copy.wall.Seconds()/rd.xfer.wall.Seconds(),
			mbps(size, rd.mem.wall), mbps(size, rd.raw.wall))
	}
	return transferResults(tr, size, rounds), nil
}

func transferResults(tr string, size int64, rounds []transferRound) []Result {
	gib := float64(size) / (1 << 30)
	var xMB, cMB, mMB, rMB, oMB, fMB, ratios, xCPU, cCPU, cpuRatios []float64
	var bestX, bestC time.Duration
	var heapX, heapC uint64
	for _, rd := range rounds {
		xMB = append(xMB, mbps(size, rd.xfer.wall))
		cMB = append(cMB, mbps(size, rd.copy.wall))
		mMB = append(mMB, mbps(size, rd.mem.wall))
		rMB = append(rMB, mbps(size, rd.raw.wall))
		oMB = append(oMB, mbps(size, rd.offer.wall))
		fMB = append(fMB, mbps(size, rd.read.wall))
		// A transfer and a copy run back to back see about the same
		// background load: their ratio is steadier than either.
		ratios = append(ratios, rd.copy.wall.Seconds()/rd.xfer.wall.Seconds())
		xCPU = append(xCPU, rd.xfer.cpu.Seconds()/gib)
		cCPU = append(cCPU, rd.copy.cpu.Seconds()/gib)
		if rd.xfer.cpu > 0 {
			cpuRatios = append(cpuRatios, rd.copy.cpu.Seconds()/rd.xfer.cpu.Seconds())
		}
		if bestX == 0 || rd.xfer.wall < bestX {
			bestX = rd.xfer.wall
		}
		if bestC == 0 || rd.copy.wall < bestC {
			bestC = rd.copy.wall
		}
		heapX, heapC = max(heapX, rd.heapX), max(heapC, rd.heapC)
	}
	sc := "transfer/" + tr
	ratio := median(ratios)
	q1, q3 := quartiles(ratios)
	thr := row(sc, "file to file, MB/s", median(xMB), "libp2p stream io.Copy", median(cMB))
	thr.Ratio = ratio
	// The fastest runs are the least disturbed by other load.
	thr = thr.withTarget(fmt.Sprintf("≥ %.0f%% of baseline", 100*TransferTarget), ratio >= TransferTarget).
		withNote("ratio = median of %d per-round ratios (IQR %.2f–%.2f): %s %%; fastest runs %.0f%%",
			len(ratios), q1, q3, list(scale(ratios, 100)), 100*bestC.Seconds()/bestX.Seconds())
	cpu := row(sc, "CPU s per GiB, both ends", median(xCPU), "libp2p stream io.Copy", median(cCPU))
	if len(cpuRatios) > 0 {
		cpu = cpu.withNote("baseline/Parley CPU per round: %s %%", list(scale(cpuRatios, 100)))
	}
	return []Result{thr, cpu,
		row(sc, "peak heap growth, MiB", mib(heapX), "libp2p stream io.Copy", mib(heapC)).
			withNote("both ends in this process, sampled every 5 ms; largest of the rounds"),
		row(sc, "offer (read and hash the file), MB/s", median(oMB), "read the file", median(fMB)),
		row(sc, "stream memory to discard, MB/s", median(mMB), "raw TCP socket", median(rMB)).
			withNote("the transport's ceiling on this machine"),
	}
}

func scale(vs []float64, f float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = v * f
	}
	return out
}

// writeRandomFile writes size bytes: a 1 MiB random block repeated (the
// content does not change the cost of hashing or encrypting it).
func writeRandomFile(path string, size int64) (err error) {
	block := make([]byte, copyBuf)
	_, _ = rand.Read(block)
	f, err := os.Create(path) // #nosec G304 -- a file of the benchmark, in its own temporary dir
	if err != nil {
		return fmt.Errorf("create source: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close source: %w", cerr)
		}
	}()
	return writeN(f, block, size)
}

func writeN(w io.Writer, buf []byte, size int64) error {
	for left := size; left > 0; left -= int64(len(buf)) {
		if _, err := w.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// warm writes and deletes a file of size bytes in dir. On a Firecracker
// VM, writing into memory the guest freed a while ago costs up to 2
// CPU-s/GiB more than into memory it freed just before; so every measured
// run starts right after this, and both sides meet the same page cache.
func warm(dir string, size int64) error {
	f, err := os.CreateTemp(dir, "warm-")
	if err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	werr := writeN(f, make([]byte, copyBuf), size)
	_ = f.Close()
	_ = os.Remove(f.Name())
	return werr
}

// copyFile moves the file at src over a plain libp2p stream from a to b
// with io.CopyBuffer into a new file dst, synced like a received
// transfer; measured from opening the stream to the file being synced.
func copyFile(ctx context.Context, a, b host.Host, src, dst string) (measured, error) {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	done := make(chan error, 1)
	b.SetStreamHandler(copyProto, func(s network.Stream) {
		done <- receiveToFile(s, dst)
	})
	defer b.RemoveStreamHandler(copyProto)
	defer func() { _ = os.Remove(dst) }()
	in, err := os.Open(src) // #nosec G304 -- the benchmark's own source file
	if err != nil {
		return measured{}, fmt.Errorf("open source: %w", err)
	}
	defer func() { _ = in.Close() }()
	st, err := in.Stat()
	if err != nil {
		return measured{}, fmt.Errorf("stat source: %w", err)
	}
	if err := warm(filepath.Dir(dst), st.Size()); err != nil {
		return measured{}, err
	}
	return measure(func() error {
		s, err := a.NewStream(ctx, b.ID(), copyProto)
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
		return waitErr(ctx, done)
	})
}

func receiveToFile(s network.Stream, dst string) error {
	defer func() { _ = s.Close() }()
	f, err := os.Create(dst) // #nosec G304 -- a file of the benchmark, in its own temporary dir
	if err != nil {
		_ = s.Reset()
		return fmt.Errorf("create copy: %w", err)
	}
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{s}, make([]byte, copyBuf))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = s.Reset()
		return fmt.Errorf("receive copy: %w", err)
	}
	return nil
}

func waitErr(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyMem moves size bytes from memory to io.Discard over a plain libp2p
// stream: the transport's ceiling.
func copyMem(ctx context.Context, a, b *xferPeer, size int64) (measured, error) {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	done := make(chan error, 1)
	b.h.SetStreamHandler(copyProto, func(s network.Stream) {
		_, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{s}, make([]byte, copyBuf))
		_ = s.Close()
		done <- err
	})
	defer b.h.RemoveStreamHandler(copyProto)
	buf := make([]byte, copyBuf)
	return measure(func() error {
		s, err := a.h.NewStream(ctx, b.h.ID(), copyProto)
		if err != nil {
			return fmt.Errorf("open copy stream: %w", err)
		}
		defer context.AfterFunc(ctx, func() { _ = s.Reset() })()
		if err := writeN(s, buf, size); err != nil {
			return err
		}
		if err := s.CloseWrite(); err != nil {
			return fmt.Errorf("close copy stream: %w", err)
		}
		return waitErr(ctx, done)
	})
}

// rawTCP moves size bytes from memory to io.Discard over a loopback TCP
// socket, without libp2p.
func rawTCP(ctx context.Context, size int64) (measured, error) {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return measured{}, fmt.Errorf("listen: %w", err)
	}
	defer func() { _ = l.Close() }()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, make([]byte, copyBuf))
			_ = c.Close()
		}
		done <- err
	}()
	buf := make([]byte, copyBuf)
	return measure(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer context.AfterFunc(ctx, func() { _ = c.Close() })()
		werr := writeN(c, buf, size)
		_ = c.Close()
		return errors.Join(werr, waitErr(ctx, done))
	})
}

// sendFile offers src from a to b, and measures from b's Accept until a
// hears that b verified the file (the offer, which hashes the file, is
// not measured). The received file is removed.
func sendFile(ctx context.Context, a, b *xferPeer, src string) (m, offer measured, heap uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	var id string
	offer, err = measure(func() error {
		var err error
		if id, err = a.svc.Offer(ctx, b.h.ID(), src); err != nil {
			return err
		}
		return a.svc.WaitOffered(ctx, id) // hashed and offered
	})
	if err != nil {
		return m, offer, 0, fmt.Errorf("offer: %w", err)
	}
	st, err := os.Stat(src)
	if err != nil {
		return m, offer, 0, fmt.Errorf("stat source: %w", err)
	}
	dl := filepath.Join(filepath.Dir(b.db.Path()), "downloads")
	if err := warm(dl, st.Size()); err != nil {
		return m, offer, 0, err
	}
	stop := heapPeak()
	m, err = measure(func() error {
		if err := b.svc.Accept(id); err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		if _, err := a.svc.Wait(ctx, id); err != nil {
			return fmt.Errorf("sender wait: %w", err)
		}
		return nil
	})
	heap = stop()
	if err != nil {
		return m, offer, heap, err
	}
	res, err := b.svc.Wait(ctx, id)
	if err != nil {
		return m, offer, heap, fmt.Errorf("recipient wait: %w", err)
	}
	if err := os.Remove(res.Path); err != nil {
		return m, offer, heap, fmt.Errorf("remove received file: %w", err)
	}
	return m, offer, heap, nil
}

// readFile reads the file at path to io.Discard: the floor under an
// offer, which reads and hashes it.
func readFile(path string) (measured, error) {
	f, err := os.Open(path) // #nosec G304 -- the benchmark's own source file
	if err != nil {
		return measured{}, fmt.Errorf("open source: %w", err)
	}
	defer func() { _ = f.Close() }()
	return measure(func() error {
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, copyBuf)); err != nil {
			return fmt.Errorf("read source: %w", err)
		}
		return nil
	})
}

// heapPeak samples the heap (live and not yet swept objects, read without
// stopping the world) every 5 ms until stop is called, and returns the
// largest growth over the level at the start.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	base := read()
	var peak atomic.Uint64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > base && v-base > peak.Load() {
				peak.Store(v - base)
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
