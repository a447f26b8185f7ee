package transfer_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/bench"
)

// BenchmarkThroughput runs the benchmark suite's transfer scenario
// (bench.Transfer): a transfer next to a plain libp2p stream io.Copy of
// the same file between the same two overlay hosts, over TCP and QUIC,
// round by round, plus the stream's memory-to-memory ceiling and a raw TCP
// socket. Settings, from the environment:
//
//	PARLEY_BENCH_SIZE       bytes per run, with an optional KiB/MiB/GiB
//	                        suffix (default 256MiB)
//	PARLEY_BENCH_ROUNDS     rounds; medians are reported (default 9)
//	PARLEY_BENCH_DIR        where the files and stores live (default a
//	                        temporary dir; /dev/shm takes the disk out)
//	PARLEY_BENCH_TRANSPORT  tcp or quic: measure only that one
//
// Run: go test ./transfer -run '^$' -bench Throughput -benchtime 1x
// (`parley bench --scenario transfer` runs the same code).
func BenchmarkThroughput(b *testing.B) {
	cfg := bench.Config{TransferDir: os.Getenv("PARLEY_BENCH_DIR")}
	if v := os.Getenv("PARLEY_BENCH_SIZE"); v != "" {
		mult := int64(1)
		for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
			if rest, ok := strings.CutSuffix(v, suffix); ok {
				v, mult = rest, m
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_SIZE: %q", os.Getenv("PARLEY_BENCH_SIZE"))
		}
		cfg.TransferSize = n * mult
	}
	if v := os.Getenv("PARLEY_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_ROUNDS: %q", v)
		}
		cfg.TransferRounds = n
	}
	if v := os.Getenv("PARLEY_BENCH_TRANSPORT"); v != "" {
		cfg.Transports = []string{v}
	}
	var rs []bench.Result
	for range b.N {
		var err error
		if rs, err = bench.Transfer(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	var lines []string
	for _, r := range rs {
		unit := strings.NewReplacer(" ", "-", ",", "", "/", "-").Replace(r.Scenario + "/" + r.Metric)
		b.ReportMetric(r.Value, unit)
		lines = append(lines, r.Scenario+": "+r.Metric+" "+strconv.FormatFloat(r.Value, 'f', 2, 64)+
			" vs "+strconv.FormatFloat(r.Base, 'f', 2, 64)+" "+r.Baseline+" ("+r.Note+")")
	}
	b.Logf("%d bytes:\n  %s", cfg.TransferSize, strings.Join(lines, "\n  "))
}
