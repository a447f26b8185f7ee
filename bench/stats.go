package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// percentile returns the p-quantile (0..1) of sorted durations, by the
// nearest-rank method; 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the median of vs (the mean of the middle two for an even
// count); NaN for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// quartiles returns the lower and upper quartiles of vs (nearest rank).
func quartiles(vs []float64) (q1, q3 float64) {
	if len(vs) == 0 {
		return math.NaN(), math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	at := func(p float64) float64 { return s[min(max(int(math.Ceil(p*float64(len(s))))-1, 0), len(s)-1)] }
	return at(0.25), at(0.75)
}

// list formats figures as "a/b/c" with no decimals.
func list(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%.0f", v)
	}
	return strings.Join(parts, "/")
}

// measured is the wall and process CPU time of one run.
type measured struct{ wall, cpu time.Duration }

func measure(f func() error) (measured, error) {
	c0, t0 := cpuTime(), time.Now()
	err := f()
	return measured{time.Since(t0), cpuTime() - c0}, err
}

func mbps(size int64, d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
