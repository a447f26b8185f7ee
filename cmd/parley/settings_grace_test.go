package main

import (
	"errors"
	"testing"
	"time"
)

// TestEpochKeyGrace: --epoch-key-grace-days becomes the rooms'
// EpochKeyGrace; out of 1-365 it is a usage error.
func TestEpochKeyGrace(t *testing.T) {
	for _, tc := range []struct {
		days int
		want time.Duration
		bad  bool
	}{
		{7, 7 * 24 * time.Hour, false},
		{1, 24 * time.Hour, false},
		{365, 365 * 24 * time.Hour, false},
		{0, 0, true},
		{366, 0, true},
		{-1, 0, true},
	} {
		s := settings{epochGraceDays: tc.days}
		got, err := s.epochKeyGrace()
		var ue usageError
		if tc.bad != (err != nil) || tc.bad && !errors.As(err, &ue) || got != tc.want {
			t.Errorf("%d days: %v, %v", tc.days, got, err)
		}
	}
}
