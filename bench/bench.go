package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Scenario names, in the order Run runs them. Cost runs first, while the
// process is still small, so that its memory figures are not inflated by
// what the other scenarios leave behind.
const (
	ScenarioCost     = "cost"
	ScenarioDM       = "dm"
	ScenarioTransfer = "transfer"
	ScenarioRooms    = "rooms"
	ScenarioChurn    = "churn"
	ScenarioSync     = "sync"
	ScenarioE2E      = "e2e"
)

// Scenarios lists every scenario name in run order.
func Scenarios() []string {
	return []string{ScenarioCost, ScenarioDM, ScenarioTransfer, ScenarioRooms, ScenarioChurn, ScenarioSync}
}

// OptInScenarios lists the scenarios Run runs only when named, after
// the others: e2e runs the parley binary and hashes a 16 GiB file.
func OptInScenarios() []string { return []string{ScenarioE2E} }

// ErrUnknownScenario is returned by Run for a scenario name not in
// Scenarios() or OptInScenarios().
var ErrUnknownScenario = errors.New("unknown scenario")

// Config selects and sizes the scenarios. Zero values take the defaults
// documented on each field; Quick changes several defaults at once for a
// run of a minute or two.
type Config struct {
	// Scenarios to run (names from Scenarios() and OptInScenarios());
	// empty runs all of Scenarios().
	Scenarios []string
	// Quick shortens the run: smaller files, fewer rounds, messages and
	// peers, rooms of 10 and 50 members.
	Quick bool
	// Dir holds the stores of the run, each scenario in a fresh temporary
	// directory that it removes afterwards (default os.TempDir()). The DM
	// figures with fsync mean something only on a disk.
	Dir string
	// TransferDir holds the transfer scenario's files and stores (default
	// Dir); a tmpfs such as /dev/shm takes the disk out of the transfer
	// figures.
	TransferDir string
	// Log receives a line per step (default io.Discard).
	Log io.Writer

	// Transfer: bytes per transfer (default 256 MiB, quick 64 MiB) and
	// rounds of each measurement (default 9, quick 3). Transports lists
	// "tcp" and/or "quic" (default both).
	TransferSize   int64
	TransferRounds int
	Transports     []string

	// Rooms: the room sizes (default 10, 50, 100; quick 10, 50), messages
	// published per second into the room (default 10) and for how long
	// (default 20 s, quick 6 s), the payload of each message in bytes
	// (default 100) and the extra random links of each member besides its
	// ring neighbour (default 3, for about 8 neighbours).
	RoomSizes []int
	// MocknetFrom: rooms of at least this many members run on an
	// in-memory mocknet rather than real TCP hosts (default
	// DefaultMocknetFrom).
	MocknetFrom int
	Rate        float64
	Duration    time.Duration
	PayloadSize int
	ExtraLinks  int
	// Churn: the room size (default 50, quick 20), the share of members
	// that restart during the run (default 0.2) and how long each stays
	// down (default 1 s).
	ChurnSize     int
	ChurnFraction float64
	Downtime      time.Duration
	// Sync: the messages a member misses before it comes back (default
	// 1000).
	SyncMissed int

	// DM: sequential round trips (default 300, quick 100) and messages
	// queued at once for the throughput figure (default 2000, quick 500).
	DMRoundTrips int
	DMMessages   int

	// Cost: peers connected for the per-peer figures (default 20, quick
	// 10).
	CostPeers int

	// E2E: the parley binary to run (`parley bench` sets it to itself;
	// without it the scenario fails), its rounds per transport (default
	// 5, quick 3; the file is TransferSize bytes, in a scenario dir under
	// Dir, which should be on a disk), the size of the sparse file whose
	// offer it times (default 16 GiB, quick 4 GiB), and ProfileDir: when
	// set, each parley process writes a CPU profile there
	// (e2e-TRANSPORT-sender.pprof, e2e-TRANSPORT-recipient.pprof).
	Binary         string
	E2ERounds      int
	OfferProbeSize int64
	ProfileDir     string

	// settle, when set, replaces the pauses that let started hosts and
	// joined rooms quieten down before measuring (tests shorten them).
	settle time.Duration
}

// settleOr returns the configured settle time, or def.
func (c *Config) settleOr(def time.Duration) time.Duration {
	if c.settle > 0 {
		return c.settle
	}
	return def
}

// withDefaults returns c with every zero value replaced by its default.
func (c *Config) withDefaults() Config {
	cfg := *c
	quick := func(normal, short int) int {
		if cfg.Quick {
			return short
		}
		return normal
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.TransferDir == "" {
		cfg.TransferDir = cfg.Dir
	}
	if cfg.TransferSize <= 0 {
		cfg.TransferSize = int64(quick(256, 64)) << 20
	}
	setInt(&cfg.TransferRounds, quick(9, 3))
	if len(cfg.Transports) == 0 {
		cfg.Transports = []string{"tcp", "quic"}
	}
	if len(cfg.RoomSizes) == 0 {
		cfg.RoomSizes = []int{10, 50, 100}
		if cfg.Quick {
			cfg.RoomSizes = []int{10, 50}
		}
	}
	setInt(&cfg.MocknetFrom, DefaultMocknetFrom)
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.Duration <= 0 {
		cfg.Duration = time.Duration(quick(20, 6)) * time.Second
	}
	setInt(&cfg.PayloadSize, 100)
	if cfg.ExtraLinks <= 0 {
		cfg.ExtraLinks = 3
	}
	setInt(&cfg.ChurnSize, quick(50, 20))
	if cfg.ChurnFraction <= 0 || cfg.ChurnFraction > 1 {
		cfg.ChurnFraction = 0.2
	}
	if cfg.Downtime <= 0 {
		cfg.Downtime = time.Second
	}
	setInt(&cfg.SyncMissed, 1000)
	setInt(&cfg.DMRoundTrips, quick(300, 100))
	setInt(&cfg.DMMessages, quick(2000, 500))
	setInt(&cfg.CostPeers, quick(20, 10))
	setInt(&cfg.E2ERounds, quick(5, 3))
	if cfg.OfferProbeSize <= 0 {
		cfg.OfferProbeSize = int64(quick(16, 4)) << 30
	}
	return cfg
}

func setInt(v *int, def int) {
	if *v <= 0 {
		*v = def
	}
}

// Result is one row of a report: a figure measured for Parley next to the
// same figure for a baseline measured in the same run.
type Result struct {
	Scenario string  // e.g. "transfer/tcp", "rooms/N=50"
	Metric   string  // what was measured, with its unit
	Value    float64 // Parley's figure
	Baseline string  // what the baseline is; "" when there is none
	Base     float64 // the baseline's figure; NaN when there is none
	// Ratio is Value/Base, unless the scenario computed a better-founded
	// ratio (such as the median of per-round ratios); NaN without a
	// baseline.
	Ratio  float64
	Target string // the target, "" when there is none
	Met    string // "yes" or "no" when there is a target
	Note   string // spread, caveats
}

// row builds a Result with Ratio = value/base.
func row(scenario, metric string, value float64, baseline string, base float64) Result {
	r := Result{Scenario: scenario, Metric: metric, Value: value, Baseline: baseline, Base: base, Ratio: math.NaN()}
	if baseline == "" {
		r.Base = math.NaN()
	} else if base != 0 {
		r.Ratio = value / base
	}
	return r
}

// withTarget sets the target and whether it is met.
func (r Result) withTarget(target string, met bool) Result {
	r.Target = target
	r.Met = "no"
	if met {
		r.Met = "yes"
	}
	return r
}

func (r Result) withNote(format string, args ...any) Result {
	r.Note = fmt.Sprintf(format, args...)
	return r
}

// Report is the outcome of Run.
type Report struct {
	Machine  Machine
	Started  time.Time
	Elapsed  time.Duration
	Config   Config
	Results  []Result
	Failures []string // scenarios that failed, with the error
}

// Machine describes where a report was measured.
type Machine struct {
	CPU       string
	CPUs      int
	GoVersion string
	OS, Arch  string
	// LoadBefore and LoadAfter are the 1-minute load averages when the
	// run started and ended (Linux; NaN elsewhere).
	LoadBefore, LoadAfter float64
}

// Run runs the selected scenarios in order and returns every result. A
// scenario that fails is recorded in Report.Failures and the others still
// run; Run returns an error only for a bad Config or when ctx ends.
func Run(ctx context.Context, c Config) (*Report, error) {
	cfg := c.withDefaults()
	selected, err := selectScenarios(cfg.Scenarios)
	if err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), Config: cfg, Machine: Machine{
		CPU: cpuModel(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, LoadBefore: loadAverage(),
	}}
	for _, name := range selected {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		logf(cfg.Log, "== %s", name)
		rs, err := runScenario(ctx, name, cfg)
		rep.Results = append(rep.Results, rs...)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", name, err))
			logf(cfg.Log, "%s failed: %v", name, err)
		}
	}
	rep.Machine.LoadAfter = loadAverage()
	rep.Elapsed = time.Since(rep.Started)
	return rep, nil
}

func selectScenarios(names []string) ([]string, error) {
	all := Scenarios()
	if len(names) == 0 {
		return all, nil
	}
	known := append(slices.Clone(all), OptInScenarios()...)
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("%w %q; choose from %s", ErrUnknownScenario, n, strings.Join(known, ", "))
		}
	}
	var out []string
	for _, n := range known {
		if slices.Contains(names, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func runScenario(ctx context.Context, name string, cfg Config) ([]Result, error) {
	switch name {
	case ScenarioCost:
		return Cost(ctx, cfg)
	case ScenarioDM:
		return DM(ctx, cfg)
	case ScenarioTransfer:
		return Transfer(ctx, cfg)
	case ScenarioRooms:
		return Rooms(ctx, cfg)
	case ScenarioChurn:
		return Churn(ctx, cfg)
	case ScenarioSync:
		return Sync(ctx, cfg)
	case ScenarioE2E:
		return E2E(ctx, cfg)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownScenario, name)
}

func logf(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// scenarioDir makes a fresh directory for one scenario under cfg.Dir
// (cfg.TransferDir for the transfer scenario); the returned function
// removes it.
func scenarioDir(cfg *Config, name string) (string, func(), error) {
	parent := cfg.Dir
	if name == ScenarioTransfer {
		parent = cfg.TransferDir
	}
	d, err := os.MkdirTemp(parent, "parley-bench-"+name+"-")
	if err != nil {
		return "", nil, fmt.Errorf("%s: scenario dir: %w", name, err)
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}
