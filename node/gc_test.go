package node

import (
	"math"
	"testing"
)

func TestDefaultGC(t *testing.T) {
	for _, tc := range []struct {
		max, container, limit int64
	}{
		{256 << 20, 0, 256<<20 + 256<<20/3 + 64<<20},
		{3 << 30, 0, 4<<30 + 64<<20},
		{3 << 30, 8 << 30, 4<<30 + 64<<20}, // the container leaves room
		{700 << 20, 1 << 30, (1 << 30) / 10 * 9},
		{0, 0, math.MaxInt64},             // no bound known: no limit
		{-1, 0, math.MaxInt64},            // nonsense: no limit
		{math.MaxInt64, 0, math.MaxInt64}, // a limit would overflow
		{math.MaxInt64, 1 << 40, (1 << 40) / 10 * 9},
	} {
		got := defaultGC(tc.max, tc.container)
		if got.Percent != 400 || got.Limit != tc.limit {
			t.Errorf("defaultGC(%d, %d) = %+v, want GOGC 400 and limit %d", tc.max, tc.container, got, tc.limit)
		}
	}
	// The limit stays under the largest int64 for every maxMemory near
	// the overflow guard.
	for _, m := range []int64{(math.MaxInt64 - 64<<20) / 4 * 3, (math.MaxInt64-64<<20)/4*3 - 1} {
		if got := defaultGC(m, 0); got.Limit < m {
			t.Errorf("defaultGC(%d) limit %d overflowed", m, got.Limit)
		}
	}
}

func TestGCSettingsString(t *testing.T) {
	for s, want := range map[GCSettings]string{
		{Percent: 400, Limit: 4<<30 + 64<<20}: "GOGC 400, memory limit 4.1 GiB",
		{Percent: -1, Limit: 1 << 30}:         "GOGC off, memory limit 1 GiB",
		{Percent: 100, Limit: math.MaxInt64}:  "GOGC 100, memory limit none",
	} {
		if got := s.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", s, got, want)
		}
	}
}

func TestCramped(t *testing.T) {
	if defaultGC(256<<20, 0).Cramped(256 << 20) {
		t.Error("the default limit is cramped")
	}
	if !defaultGC(1<<30, 1<<30).Cramped(1 << 30) {
		t.Error("a limit under max-memory is not cramped")
	}
}
