package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Markdown writes the machine and the results as a Markdown table.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Parley benchmarks, %s (%s), %s/%s, %d× %s, %s, load %s → %s\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second), m.OS, m.Arch, m.CPUs,
		m.CPU, m.GoVersion, num(m.LoadBefore), num(m.LoadAfter))
	b.WriteString("| scenario | metric | Parley | baseline | ratio | target | met | notes |\n")
	b.WriteString("|---|---|---:|---|---:|---|---|---|\n")
	for _, x := range r.Results {
		base := "–"
		if x.Baseline != "" {
			base = num(x.Base) + " " + x.Baseline
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Scenario, x.Metric, num(x.Value),
			cell(base), ratio(x.Ratio), cell(x.Target), cell(x.Met), cell(x.Note))
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "\nFAILED: %s\n", f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CSV writes one line per result, with a header; numbers are plain
// decimals and missing ones empty.
func (r *Report) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"scenario", "metric", "value", "baseline", "baseline_value", "ratio", "target", "met", "note"})
	for _, x := range r.Results {
		_ = cw.Write([]string{x.Scenario, x.Metric, plain(x.Value), x.Baseline, plain(x.Base), plain(x.Ratio), x.Target, x.Met, x.Note})
	}
	for _, f := range r.Failures {
		_ = cw.Write([]string{"FAILED", f, "", "", "", "", "", "", ""})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// num formats a figure with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 100 || v == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}

func ratio(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case v != 0 && math.Abs(v) < 0.1:
		return strconv.FormatFloat(v, 'g', 2, 64) + "×"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}

func plain(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	if s == "" {
		return "–"
	}
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}
