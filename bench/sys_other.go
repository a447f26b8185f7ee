//go:build !linux

package bench

import (
	"math"
	"runtime"
)

func cpuModel() string { return runtime.GOARCH + " CPU" }

func loadAverage() float64 { return math.NaN() }

func residentBytes() uint64 { return 0 }
