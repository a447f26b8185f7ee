package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/bench"
)

// benchSettings are the flags of `parley bench`.
type benchSettings struct {
	scenarios  listFlag
	quick      bool
	csv        bool
	quiet      bool
	dir        string
	xferDir    string
	size       string
	rounds     int
	transports listFlag
	roomSizes  string
	rate       float64
	duration   time.Duration
	churnSize  int
	dmMessages int
	peers      int
	profileDir string
}

func (s *benchSettings) register(fs *flagSet) {
	fs.Var(&s.scenarios, "scenario", fmt.Sprintf("run only this `SCENARIO` (repeatable or comma-separated): %s", strings.Join(append(bench.Scenarios(), bench.OptInScenarios()...), ", ")+" (e2e only when named)"))
	fs.BoolVar(&s.quick, "quick", false, "a short run (a minute or two): smaller files, fewer rounds, rooms of 10 and 50")
	fs.BoolVar(&s.csv, "csv", false, "print CSV instead of a Markdown table")
	fs.BoolVar(&s.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&s.dir, "dir", "", "`DIR` for the run's stores, removed afterwards (default the system temp dir; keep it on a disk for the fsync figures)")
	fs.StringVar(&s.xferDir, "transfer-dir", "", "`DIR` for the transfer scenario's files (default --dir; /dev/shm keeps the disk out of the transfer figures)")
	fs.StringVar(&s.size, "size", "", "bytes per file transfer, with an optional KiB, MiB or GiB suffix (default 256MiB, --quick 64MiB)")
	fs.IntVar(&s.rounds, "rounds", 0, "rounds of each transfer measurement (default 9, --quick 3; e2e: 5, --quick 3)")
	fs.Var(&s.transports, "transport", "transfer over this `TRANSPORT` only: tcp or quic (repeatable; default both)")
	fs.StringVar(&s.roomSizes, "rooms", "", "room sizes to measure, comma-separated `N,N,...` (default 10,50,100; --quick 10,50)")
	fs.Float64Var(&s.rate, "rate", 0, "messages per second published into a room (default 10)")
	fs.DurationVar(&s.duration, "duration", 0, "how long messages are published in each room run (default 20s, --quick 6s)")
	fs.IntVar(&s.churnSize, "churn-size", 0, "members of the room under churn (default 50, --quick 20)")
	fs.IntVar(&s.dmMessages, "dm-messages", 0, "direct messages queued at once for the throughput figure (default 2000, --quick 500)")
	fs.IntVar(&s.peers, "peers", 0, "peers connected for the per-peer cost figures (default 20, --quick 10)")
	fs.StringVar(&s.profileDir, "profile-dir", "", "`DIR` where the e2e scenario's parley processes and copy peers write CPU profiles (e2e-TRANSPORT-SIDE.pprof; SIDE is sender, recipient, copy-sender or copy-recipient)")
}

// config validates the settings into a bench.Config.
func (s *benchSettings) config(progress io.Writer) (bench.Config, error) {
	cfg := bench.Config{
		Quick: s.quick, Dir: s.dir, TransferDir: s.xferDir, TransferRounds: s.rounds, Rate: s.rate, Duration: s.duration,
		ChurnSize: s.churnSize, DMMessages: s.dmMessages, CostPeers: s.peers, Log: progress,
		E2ERounds: s.rounds, ProfileDir: s.profileDir,
	}
	for _, v := range s.scenarios {
		cfg.Scenarios = append(cfg.Scenarios, splitList(v)...)
	}
	for _, t := range s.transports {
		for _, one := range splitList(t) {
			if one != "tcp" && one != "quic" {
				return cfg, usageError{fmt.Errorf("bad --transport %q: use tcp or quic", one)}
			}
			cfg.Transports = append(cfg.Transports, one)
		}
	}
	if s.size != "" {
		n, err := parseSize(s.size)
		if err != nil {
			return cfg, usageError{fmt.Errorf("bad --size: %w", err)}
		}
		cfg.TransferSize = n
	}
	for _, v := range splitList(s.roomSizes) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 || n > maxBenchRoom {
			return cfg, usageError{fmt.Errorf("bad --rooms size %q: use whole numbers from 2 to %d", v, maxBenchRoom)}
		}
		cfg.RoomSizes = append(cfg.RoomSizes, n)
	}
	switch {
	case s.rounds < 0, s.rate < 0, s.duration < 0, s.churnSize < 0, s.dmMessages < 0, s.peers < 0:
		return cfg, usageError{errors.New("counts, rates and durations must not be negative")}
	case s.churnSize == 1 || s.churnSize > maxBenchRoom:
		return cfg, usageError{fmt.Errorf("bad --churn-size %d: use 2 to %d", s.churnSize, maxBenchRoom)}
	case s.rate > 1000:
		return cfg, usageError{fmt.Errorf("bad --rate %v: at most 1000 messages per second", s.rate)}
	case s.duration > time.Hour:
		return cfg, usageError{fmt.Errorf("bad --duration %v: at most an hour", s.duration)}
	}
	return cfg, nil
}

// maxBenchRoom bounds the hosts one process starts for a room.
const maxBenchRoom = 500

// parseSize parses a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > (64<<30)/mult {
		return 0, fmt.Errorf("%q: use a positive byte count up to 64GiB, e.g. 512MiB", v)
	}
	return n * mult, nil
}

// benchCmd is a parsed `parley bench` command line.
type benchCmd struct {
	benchSettings
	cfg bench.Config
}

func parseBench(args []string, stdout io.Writer) (*benchCmd, error) {
	c := &benchCmd{}
	fs := newFlagSet("bench")
	c.register(fs)
	if err := fs.parse(args, stdout); err != nil {
		return nil, err
	}
	var err error
	if c.cfg, err = c.config(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// run is `parley bench`: run the benchmark suite on loopback and print a
// Markdown table (or CSV) on stdout, progress on stderr.
func (c *benchCmd) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	if tr := os.Getenv(bench.CopyPeerEnv); tr != "" { // started by the e2e scenario
		return bench.CopyPeer(ctx, tr, stdin, stdout)
	}
	s, cfg := &c.benchSettings, c.cfg
	cfg.Log = stderr
	if bin, err := os.Executable(); err == nil {
		cfg.Binary = bin
	}
	if s.quiet {
		cfg.Log = io.Discard
	}
	rep, err := bench.Run(ctx, cfg)
	if errors.Is(err, bench.ErrUnknownScenario) {
		return usageError{err}
	}
	if rep != nil {
		var werr error
		if s.csv {
			werr = rep.CSV(stdout)
		} else {
			werr = rep.Markdown(stdout)
		}
		if werr != nil {
			return fmt.Errorf("print results: %w", werr)
		}
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if len(rep.Failures) > 0 {
		return fmt.Errorf("%d scenario(s) failed: %s", len(rep.Failures), strings.Join(rep.Failures, "; "))
	}
	return nil
}
