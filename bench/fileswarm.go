package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-chat/parley/transfer"
)

// The swarm scenario: a file shared in a room, fetched from 3 holders
// against the same file fetched from 1, each holder's uplink throttled to
// the same rate, in the same run, interleaved (issue 20). The hosts run in
// one process inside a network namespace the scenario makes for itself
// (`unshare --net`: it has only its own loopback and vanishes with the
// process), where tc shapes what each holder sends (an htb class per
// holder, matched by the holder's source port on lo). It needs root.

// SwarmTarget is the target: 3 holders fetch at least this many
// times as fast as 1.
const SwarmTarget = 2.5

// Swarm defaults.
const (
	// swarmRate is each holder's uplink in bytes per second.
	swarmRate = 10 << 20
	// swarmHolders is the holders of the swarm figure.
	swarmHolders = 3
	// swarmPort is the first holder's TCP port inside the namespace.
	swarmPort = 41001
	// swarmChildEnv carries the parameters (fileSwarmParams, JSON) to the
	// process that runs inside the namespace.
	swarmChildEnv = "PARLEY_BENCH_SWARM"
	// swarmRoom names the room in the announcements.
	swarmRoom = "bench"
)

// errNotRoot says why the swarm scenario cannot run.
var errNotRoot = errors.New("the swarm scenario needs root (it makes a network namespace and shapes it with tc): run `sudo parley bench --scenario swarm`")

// fileSwarmParams is what the process in the namespace is told.
type fileSwarmParams struct {
	Size   int64  `json:"size"`
	Rounds int    `json:"rounds"`
	Rate   int64  `json:"rate"` // bytes per second per holder; 0: no shaping
	Out    string `json:"out"`  // where to write the fileSwarmTimes
}

// fileSwarmTimes is what it measured, in seconds per fetch.
type fileSwarmTimes struct {
	One   []float64 `json:"one"`   // from 1 holder
	Three []float64 `json:"three"` // from 3 holders
	// Leave: from 3 holders, one of which leaves a third of the way in;
	// 0 when the fetch did not complete.
	Leave float64 `json:"leave"`
}

// Swarm runs the swarm scenario: in a child process inside a new network
// namespace (cfg.Binary, run by unshare), unless this is that process.
// The file is SwarmSize bytes; the rounds are E2ERounds (default 5,
// quick 3).
func Swarm(ctx context.Context, c Config) ([]Result, error) {
	cfg := c.withDefaults()
	if v := os.Getenv(swarmChildEnv); v != "" {
		return nil, fileSwarmChild(ctx, cfg, v)
	}
	if os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	if cfg.Binary == "" {
		return nil, errors.New("the swarm scenario needs the parley binary (Config.Binary; `parley bench` sets it to itself)")
	}
	dir, cleanup, err := scenarioDir(&cfg, ScenarioSwarm)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	p := fileSwarmParams{Size: cfg.SwarmSize, Rounds: cfg.E2ERounds, Rate: swarmRate, Out: filepath.Join(dir, "times.json")}
	enc, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("swarm: %w", err)
	}
	logf(cfg.Log, "swarm: %d MiB from 1 and %d holders, each sending at most %d MiB/s, %d rounds, in a new network namespace",
		p.Size>>20, swarmHolders, p.Rate>>20, p.Rounds)
	// #nosec G204 -- the binary is this program (parley bench sets it)
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--", cfg.Binary, "bench", "--scenario", ScenarioSwarm, "--dir", dir)
	cmd.Env = append(os.Environ(), swarmChildEnv+"="+string(enc))
	cmd.Stdout, cmd.Stderr = io.Discard, cfg.Log // its own report, empty, on stdout; its steps on stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("swarm: run in a network namespace: %w", err)
	}
	raw, err := os.ReadFile(p.Out)
	if err != nil {
		return nil, fmt.Errorf("swarm: read the times: %w", err)
	}
	var times fileSwarmTimes
	if err := json.Unmarshal(raw, &times); err != nil {
		return nil, fmt.Errorf("swarm: read the times: %w", err)
	}
	return fileSwarmRows(p, times), nil
}

// fileSwarmRows turns the times into rows: throughputs, and the speed-up of 3
// holders over 1 as the median of the rounds' ratios.
func fileSwarmRows(p fileSwarmParams, t fileSwarmTimes) []Result {
	mbps := func(secs []float64) []float64 {
		out := make([]float64, len(secs))
		for i, s := range secs {
			out[i] = float64(p.Size) / 1e6 / s
		}
		return out
	}
	one, three := mbps(t.One), mbps(t.Three)
	ratios := make([]float64, 0, len(one))
	for i := range min(len(one), len(three)) {
		ratios = append(ratios, three[i]/one[i])
	}
	name := "swarm/tcp"
	base := fmt.Sprintf("1 holder, %d MiB/s uplink each", p.Rate>>20)
	rows := []Result{
		row(name, fmt.Sprintf("fetch MB/s, %d holders", swarmHolders), median(three), base, median(one)),
	}
	rows[0].Ratio = median(ratios)
	rows[0] = rows[0].withTarget(fmt.Sprintf("≥ %.1f× 1 holder", SwarmTarget), rows[0].Ratio >= SwarmTarget).
		withNote("%d MiB, %d rounds interleaved; ratio = median of the rounds' ratios (%.2f-%.2f)", p.Size>>20, len(ratios), slices.Min(ratios), slices.Max(ratios))
	leave := 0.0
	if t.Leave > 0 {
		leave = float64(p.Size) / 1e6 / t.Leave
	}
	rows = append(rows, row(name, fmt.Sprintf("fetch MB/s, %d holders, 1 leaves a third in (0: failed)", swarmHolders), leave, base, median(one)).
		withTarget("completes", t.Leave > 0))
	return rows
}

// fileSwarmChild runs inside the namespace: it brings lo up, starts the
// holders, shapes their uplinks, measures and writes the times.
func fileSwarmChild(ctx context.Context, cfg Config, env string) error {
	var p fileSwarmParams
	if err := json.Unmarshal([]byte(env), &p); err != nil {
		return fmt.Errorf("swarm: parameters: %w", err)
	}
	if p.Out == "" || p.Size <= 0 || p.Rounds <= 0 {
		return errors.New("swarm: bad parameters")
	}
	if err := labCmd("ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	times, err := measureFileSwarm(ctx, cfg, p, func(ports []int) error { return shapeUplinks(ports, p.Rate) })
	if err != nil {
		return err
	}
	out, err := json.Marshal(times)
	if err != nil {
		return fmt.Errorf("swarm: %w", err)
	}
	if err := os.WriteFile(p.Out, out, 0o600); err != nil {
		return fmt.Errorf("swarm: write the times: %w", err)
	}
	return nil
}

// shapeUplinks gives each port's traffic on lo an htb class of rate bytes per
// second; the rest of lo is not shaped.
func shapeUplinks(ports []int, rate int64) error {
	if rate <= 0 {
		return nil
	}
	bits := strconv.FormatInt(rate*8, 10) + "bit"
	cmds := [][]string{
		{"tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "99"},
		{"tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:99", "htb", "rate", "10gbit", "quantum", "65536"},
	}
	for i, port := range ports {
		class := fmt.Sprintf("1:%d", 10+i)
		cmds = append(cmds,
			[]string{"tc", "class", "add", "dev", "lo", "parent", "1:", "classid", class, "htb", "rate", bits, "ceil", bits, "quantum", "65536"},
			[]string{"tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
				"match", "ip", "sport", strconv.Itoa(port), "0xffff", "flowid", class})
	}
	for _, c := range cmds {
		if err := labCmd(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func labCmd(name string, args ...string) error {
	// #nosec G204 -- fixed commands (ip, tc) with arguments made here
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w: %s", name, args, err, out)
	}
	return nil
}

// measureFileSwarm shares a file of p.Size bytes from one holder, makes two
// more holders by fetching it, calls limit with the holders' ports (tc
// shaping comes after the setup, which it would only slow), then fetches
// it p.Rounds times from 1 holder and from all 3, interleaved, each time
// with a fresh fetcher, and once more from 3 of which one leaves.
func measureFileSwarm(ctx context.Context, cfg Config, p fileSwarmParams, limit func(ports []int) error) (fileSwarmTimes, error) {
	var times fileSwarmTimes
	dir, cleanup, err := scenarioDir(&cfg, ScenarioSwarm)
	if err != nil {
		return times, err
	}
	defer cleanup()
	holders := make([]*xferPeer, swarmHolders)
	ports := make([]int, swarmHolders)
	defer func() {
		for _, h := range holders {
			if h != nil {
				h.close()
			}
		}
	}()
	for i := range holders {
		listen := loopTCP
		if p.Rate > 0 {
			ports[i] = swarmPort + i
			listen = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ports[i])
		}
		if holders[i], err = newXferPeer(ctx, filepath.Join(dir, fmt.Sprintf("holder%d", i)), listen); err != nil {
			return times, fmt.Errorf("swarm: holder %d: %w", i, err)
		}
	}
	path := filepath.Join(dir, "shared.bin")
	if err := writeRandomFile(path, p.Size); err != nil {
		return times, fmt.Errorf("swarm: %w", err)
	}
	share, err := holders[0].svc.Share(path)
	if err != nil {
		return times, fmt.Errorf("swarm: share: %w", err)
	}
	for i, h := range holders[1:] {
		if _, err := fetchShare(ctx, h, share, holders[:1]); err != nil {
			return times, fmt.Errorf("swarm: make holder %d: %w", i+1, err)
		}
	}
	if err := limit(ports); err != nil {
		return times, err
	}
	fetch := func(name string, from []*xferPeer) (float64, error) {
		f, err := newXferPeer(ctx, filepath.Join(dir, name), loopTCP)
		if err != nil {
			return 0, err
		}
		defer func() {
			f.close()
			_ = os.RemoveAll(filepath.Join(dir, name))
		}()
		d, err := fetchShare(ctx, f, share, from)
		return d.Seconds(), err
	}
	for r := range p.Rounds {
		order := [][]*xferPeer{holders[:1], holders}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, from := range order {
			secs, err := fetch(fmt.Sprintf("fetcher-%d-%d", r, len(from)), from)
			if err != nil {
				return times, fmt.Errorf("swarm: round %d from %d holders: %w", r, len(from), err)
			}
			if len(from) == 1 {
				times.One = append(times.One, secs)
			} else {
				times.Three = append(times.Three, secs)
			}
			logf(cfg.Log, "swarm: round %d: %d holder(s): %.2f s", r+1, len(from), secs)
		}
	}
	times.Leave = leaveRun(ctx, cfg, dir, share, holders, median(times.Three))
	return times, nil
}

// leaveRun fetches from every holder and closes the last holder's host a
// third of the way in (by the time of an undisturbed fetch, est seconds);
// it returns the seconds the fetch took, or 0 when it failed.
func leaveRun(ctx context.Context, cfg Config, dir string, share transfer.Share, holders []*xferPeer, est float64) float64 {
	f, err := newXferPeer(ctx, filepath.Join(dir, "fetcher-leave"), loopTCP)
	if err != nil {
		logf(cfg.Log, "swarm: leave: %v", err)
		return 0
	}
	defer f.close()
	leaver := holders[len(holders)-1]
	timer := time.AfterFunc(time.Duration(est/3*float64(time.Second)), func() { _ = leaver.h.Close() })
	defer timer.Stop()
	d, err := fetchShare(ctx, f, share, holders)
	if err != nil {
		logf(cfg.Log, "swarm: leave: the fetch failed: %v", err)
		return 0
	}
	logf(cfg.Log, "swarm: one of %d holders left a third in: %.2f s", len(holders), d.Seconds())
	return d.Seconds()
}

// fetchShare connects f to the holders in from, tells it that they hold
// share, fetches it and returns the time from Fetch to the file in place.
func fetchShare(ctx context.Context, f *xferPeer, share transfer.Share, from []*xferPeer) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	for _, h := range from {
		if err := f.h.Connect(ctx, peer.AddrInfo{ID: h.h.ID(), Addrs: h.h.Addrs()}); err != nil {
			return 0, fmt.Errorf("connect to a holder: %w", err)
		}
		if err := f.svc.AddRemoteShare(swarmRoom, h.h.ID(), share); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if err := f.svc.Fetch(ctx, share.ID); err != nil {
		return 0, err
	}
	res, err := f.svc.Wait(ctx, share.ID)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	if res.Hash != share.Hash {
		return 0, fmt.Errorf("fetched hash %s, want %s", res.Hash, share.Hash)
	}
	return d, nil
}
