package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tiny is a configuration that runs every scenario in seconds: the smoke
// test's, not a measurement.
func tiny(t testing.TB) Config {
	return Config{
		Dir:          t.TempDir(),
		TransferSize: 2 << 20, TransferRounds: 1,
		RoomSizes: []int{4}, Duration: time.Second, Rate: 10,
		ChurnSize: 5, Downtime: 200 * time.Millisecond,
		SyncMissed:   50,
		DMRoundTrips: 5, DMMessages: 20,
		CostPeers: 2,
		Log:       testLog{t}, settle: 100 * time.Millisecond,
	}
}

// TestRunSmoke runs every scenario at a tiny size and checks that each
// reports its rows with sane values. It measures nothing.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a few dozen hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, tiny(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("failures: %v", rep.Failures)
	}
	want := map[string]int{"cost": 6, "dm/fsync": 3, "dm/nosync": 3, "transfer/tcp": 5, "transfer/quic": 5, "rooms/N=4": 7, "churn/N=5": 5, "sync/missed=50": 3}
	got := make(map[string]int)
	for _, r := range rep.Results {
		got[r.Scenario]++
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || r.Value < 0 {
			t.Errorf("%s %s = %v", r.Scenario, r.Metric, r.Value)
		}
		if r.Baseline == "" || math.IsNaN(r.Base) {
			t.Errorf("%s %s has no baseline", r.Scenario, r.Metric)
		}
		if strings.HasSuffix(r.Metric, "delivery ratio") && r.Value == 0 {
			t.Errorf("%s: nothing delivered", r.Scenario)
		}
	}
	for sc, n := range want {
		if got[sc] != n {
			t.Errorf("%s: %d rows, want %d (all: %v)", sc, got[sc], n, got)
		}
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", md.String())
}

// TestRoomsOnMocknet: a small room on the in-memory mocknet reports
// the same rows as on TCP, under a scenario name that says so, with
// bytes counted.
func TestRoomsOnMocknet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := tiny(t)
	cfg.RoomSizes, cfg.MocknetFrom = []int{6}, 6
	rs, err := Rooms(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 7 {
		t.Fatalf("%d rows", len(rs))
	}
	for _, r := range rs {
		if r.Scenario != "rooms/N=6/mocknet" {
			t.Errorf("scenario %q", r.Scenario)
		}
		if strings.HasSuffix(r.Metric, "delivery ratio") && r.Value != 1 {
			t.Errorf("delivery ratio %v: %s", r.Value, r.Note)
		}
		if strings.Contains(r.Metric, "MB sent") && (r.Value <= 0 || r.Base <= 0) {
			t.Errorf("%s: %v (baseline %v): bytes not counted", r.Metric, r.Value, r.Base)
		}
	}
}

// TestSyncScenario: a member back after missing lines gets them all,
// once each, and the scenario says what it cost.
func TestSyncScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := tiny(t)
	cfg.SyncMissed = 200
	rs, err := Sync(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Scenario != "sync/missed=200" {
		t.Fatalf("rows %+v", rs)
	}
	for _, r := range rs {
		if r.Value <= 0 || r.Base <= 0 {
			t.Errorf("%s = %v (base %v)", r.Metric, r.Value, r.Base)
		}
		t.Logf("%s: %.1f (%s %.1f) %s %s", r.Metric, r.Value, r.Baseline, r.Base, r.Met, r.Note)
	}
}

func TestSelectScenarios(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		err  error
	}{
		{nil, Scenarios(), nil},
		{[]string{"rooms", "cost"}, []string{"cost", "rooms"}, nil},
		{[]string{"churn", "churn"}, []string{"churn"}, nil},
		{[]string{"rooms", "nope"}, nil, ErrUnknownScenario},
	} {
		got, err := selectScenarios(tc.in)
		if !errors.Is(err, tc.err) || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("selectScenarios(%v) = %v, %v; want %v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if _, err := Run(context.Background(), Config{Scenarios: []string{"x"}}); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("Run with an unknown scenario: %v", err)
	}
}

func TestTopology(t *testing.T) {
	for _, n := range []int{2, 3, 5, 10, 50, 100} {
		adj, edges := topology(n, 3)
		seen := make(map[[2]int]bool)
		for _, e := range edges {
			if e[0] == e[1] || seen[e] || seen[[2]int{e[1], e[0]}] {
				t.Fatalf("n=%d: bad or repeated edge %v", n, e)
			}
			seen[e] = true
		}
		// Connected (the ring alone connects it), symmetric, no member
		// beyond n-1 neighbours, at least min(n-1, 4) each.
		for i, ns := range adj {
			if len(ns) > n-1 || len(ns) < min(n-1, 4) {
				t.Errorf("n=%d: member %d has %d neighbours", n, i, len(ns))
			}
			for _, j := range ns {
				if !containsInt(adj[j], i) {
					t.Errorf("n=%d: %d-%d not symmetric", n, i, j)
				}
			}
		}
		again, _ := topology(n, 3)
		for i := range adj {
			if len(adj[i]) != len(again[i]) {
				t.Fatalf("n=%d: topology differs between calls", n)
			}
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestPercentileAndMedian(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing")
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing")
	}
}

func TestParseVmRSS(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"Name:\tparley\nVmRSS:\t   30480 kB\nVmData: 1 kB\n", 30480 << 10},
		{"VmRSS: 1 kB", 1024},
		{"VmRSS: 12 MB\n", 0},
		{"VmRSS: -3 kB\n", 0},
		{"VmRSS: 99999999999999999999 kB\n", 0},
		{"VmRSS:\n", 0},
		{"", 0},
	} {
		if got := ParseVmRSS([]byte(tc.in)); got != tc.want {
			t.Errorf("ParseVmRSS(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func sampleReport() *Report {
	return &Report{
		Started: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), Elapsed: time.Minute,
		Machine: Machine{CPU: "Test CPU", CPUs: 2, GoVersion: "go1.26", OS: "linux", Arch: "amd64", LoadBefore: 1.5, LoadAfter: math.NaN()},
		Results: []Result{
			row("transfer/tcp", "file to file, MB/s", 450, "libp2p stream io.Copy", 500).
				withTarget("≥ 90% of baseline", true).withNote("a | b"),
			row("cost", "goroutines", 64, "", 0),
			row("dm", "msgs/s", 20, "echo", 50000),
		},
		Failures: []string{"churn: boom"},
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().Markdown(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2× Test CPU", "load 1.50 → –",
		"| transfer/tcp | file to file, MB/s | 450 | 500 libp2p stream io.Copy | 0.90× | ≥ 90% of baseline | yes | a \\| b |",
		"| cost | goroutines | 64.0 | – | – | – | – | – |",
		"0.0004×", "FAILED: churn: boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestCSV(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().CSV(&b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || len(recs[0]) != 9 {
		t.Fatalf("CSV shape %d×%d:\n%v", len(recs), len(recs[0]), recs)
	}
	if recs[1][2] != "450" || recs[1][4] != "500" || recs[1][5] != "0.9" || recs[1][8] != "a | b" {
		t.Errorf("row 1 = %v", recs[1])
	}
	if recs[2][4] != "" || recs[2][5] != "" {
		t.Errorf("a row without baseline has baseline figures: %v", recs[2])
	}
	if recs[4][0] != "FAILED" {
		t.Errorf("last row = %v", recs[4])
	}
}

// benchConfig reads the suite's settings for `go test -bench` from the
// environment:
//
//	PARLEY_BENCH_QUICK=1       the --quick sizes
//	PARLEY_BENCH_SIZE          bytes per transfer (KiB/MiB/GiB suffix)
//	PARLEY_BENCH_ROUNDS        transfer rounds
//	PARLEY_BENCH_TRANSPORT     tcp or quic only
//	PARLEY_BENCH_DIR           where transfer files live (/dev/shm: not the disk)
//	PARLEY_BENCH_ROOMS         room sizes, comma-separated
//	PARLEY_BENCH_DURATION      publishing time per room run (Go duration)
func benchConfig(b *testing.B) Config {
	cfg := Config{Quick: os.Getenv("PARLEY_BENCH_QUICK") != "", TransferDir: os.Getenv("PARLEY_BENCH_DIR"), Log: testLog{b}}
	if v := os.Getenv("PARLEY_BENCH_SIZE"); v != "" {
		mult := int64(1)
		for _, u := range []struct {
			s string
			m int64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
			if rest, ok := strings.CutSuffix(v, u.s); ok {
				v, mult = rest, u.m
				break
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_SIZE %q", os.Getenv("PARLEY_BENCH_SIZE"))
		}
		cfg.TransferSize = n * mult
	}
	if v := os.Getenv("PARLEY_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_ROUNDS %q", v)
		}
		cfg.TransferRounds = n
	}
	if v := os.Getenv("PARLEY_BENCH_TRANSPORT"); v != "" {
		cfg.Transports = []string{v}
	}
	if v := os.Getenv("PARLEY_BENCH_ROOMS"); v != "" {
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 2 {
				b.Fatalf("PARLEY_BENCH_ROOMS %q", v)
			}
			cfg.RoomSizes = append(cfg.RoomSizes, n)
		}
	}
	if v := os.Getenv("PARLEY_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("PARLEY_BENCH_DURATION %q", v)
		}
		cfg.Duration = d
	}
	return cfg
}

// testLog sends progress lines to the benchmark's log.
type testLog struct{ tb testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runBench runs one scenario per iteration and reports its rows as
// metrics (the last iteration's), with the Markdown table in the log.
func runBench(b *testing.B, scenario func(context.Context, Config) ([]Result, error)) {
	cfg := benchConfig(b)
	var rs []Result
	for range b.N {
		var err error
		if rs, err = scenario(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	for _, r := range rs {
		unit := strings.NewReplacer(" ", "-", ",", "", "/", "-").Replace(r.Scenario + "/" + r.Metric)
		b.ReportMetric(r.Value, unit)
		if !math.IsNaN(r.Ratio) {
			b.ReportMetric(r.Ratio, unit+"/ratio")
		}
	}
	var md bytes.Buffer
	rep := &Report{Started: time.Now(), Results: rs, Machine: Machine{CPU: cpuModel(), CPUs: 0, LoadBefore: loadAverage(), LoadAfter: loadAverage()}}
	_ = rep.Markdown(&md)
	b.Logf("\n%s", md.String())
}

// Run one scenario, for example:
//
//	PARLEY_BENCH_DIR=/dev/shm go test -run '^$' -bench 'Suite/transfer' -benchtime 1x -timeout 30m ./bench
func BenchmarkSuite(b *testing.B) {
	for _, sc := range []struct {
		name string
		f    func(context.Context, Config) ([]Result, error)
	}{
		{ScenarioCost, Cost}, {ScenarioDM, DM}, {ScenarioTransfer, Transfer}, {ScenarioRooms, Rooms}, {ScenarioChurn, Churn},
		{ScenarioSync, Sync},
	} {
		b.Run(sc.name, func(b *testing.B) { runBench(b, sc.f) })
	}
}
