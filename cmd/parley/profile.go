package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// cpuProfileEnv names the file a CPU profile of the whole run is written
// to. `parley bench --scenario e2e --profile-dir DIR` sets it for the
// parley processes it starts; it is not a setting (no flag, no
// config.toml key) and does nothing when unset.
const cpuProfileEnv = "PARLEY_BENCH_CPU_PROFILE"

// startProfile starts the CPU profile cpuProfileEnv asks for; the
// returned function stops it and closes the file.
func startProfile(stderr io.Writer) func() {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path) // #nosec G304 G703 -- a path the user (or parley bench) chose for the profile
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "parley: %s: %v\n", cpuProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_, _ = fmt.Fprintf(stderr, "parley: %s: %v\n", cpuProfileEnv, err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			_, _ = fmt.Fprintf(stderr, "parley: %s: %v\n", cpuProfileEnv, err)
		}
	}
}
