//go:build !linux

package bench

import (
	"math"
	"runtime"
	"time"
)

func cpuModel() string { return runtime.GOARCH + " CPU" }

func loadAverage() float64 { return math.NaN() }

func residentBytes() uint64 { return 0 }

func processCPU(int) time.Duration { return 0 }
