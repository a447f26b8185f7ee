package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true},
		{"64KiB", 64 << 10, true},
		{"512MiB", 512 << 20, true},
		{"2GiB", 2 << 30, true},
		{"64GiB", 64 << 30, true},
		{"65GiB", 0, false},
		{"0", 0, false},
		{"-1MiB", 0, false},
		{"1.5GiB", 0, false},
		{"MiB", 0, false},
		{"1MB", 0, false},
		{"", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		ok    bool
		check func(t *testing.T, s *benchSettings)
	}{
		{[]string{"--quick", "--scenario", "rooms,churn", "--scenario", "dm", "--rooms", "10, 20", "--size", "8MiB", "--transport", "quic"}, true, func(t *testing.T, s *benchSettings) {
			cfg, _ := s.config(nil)
			if !cfg.Quick || strings.Join(cfg.Scenarios, " ") != "rooms churn dm" || len(cfg.RoomSizes) != 2 ||
				cfg.RoomSizes[1] != 20 || cfg.TransferSize != 8<<20 || cfg.Transports[0] != "quic" {
				t.Errorf("config %+v", cfg)
			}
		}},
		{[]string{"--duration", "3s", "--rate", "5"}, true, func(t *testing.T, s *benchSettings) {
			cfg, _ := s.config(nil)
			if cfg.Duration != 3*time.Second || cfg.Rate != 5 {
				t.Errorf("config %+v", cfg)
			}
		}},
		{[]string{"--transport", "udp"}, false, nil},
		{[]string{"--rooms", "1"}, false, nil},
		{[]string{"--rooms", "501"}, false, nil},
		{[]string{"--rooms", "ten"}, false, nil},
		{[]string{"--size", "lots"}, false, nil},
		{[]string{"--rate", "-1"}, false, nil},
		{[]string{"--rate", "5000"}, false, nil},
		{[]string{"--churn-size", "1"}, false, nil},
		{[]string{"--duration", "2h"}, false, nil},
	} {
		var s benchSettings
		fs := newFlagSet("bench")
		s.register(fs)
		if err := fs.parse(tc.args, &bytes.Buffer{}); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		_, err := s.config(nil)
		if (err == nil) != tc.ok {
			t.Errorf("%v: err %v, want ok %v", tc.args, err, tc.ok)
			continue
		}
		if tc.check != nil {
			tc.check(t, &s)
		}
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--scenario", "nope"},
		{"bench", "--rooms", "0"},
		{"bench", "--no-such-flag"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errOut.String())
		}
	}
}
