package node

import (
	"math"
	"runtime/debug"
	"slices"
	"testing"
)

func TestDefaultGC(t *testing.T) {
	for _, tc := range []struct {
		max, limit int64
	}{
		{256 << 20, 256<<20 + 256<<20/3 + 64<<20},
		{3 << 30, 4<<30 + 64<<20},
		{0, math.MaxInt64},             // no bound known: no limit
		{math.MaxInt64, math.MaxInt64}, // a limit would overflow
	} {
		got := DefaultGC(tc.max)
		if got.Percent != 400 || got.Limit != tc.limit {
			t.Errorf("DefaultGC(%d) = %+v, want GOGC 400 and limit %d", tc.max, got, tc.limit)
		}
	}
	if s := DefaultGC(3 << 30).String(); s != "GOGC 400, memory limit 4.1 GiB" {
		t.Errorf("String() = %q", s)
	}
	if s := DefaultGC(0).String(); s != "GOGC 400, memory limit none" {
		t.Errorf("String() without a limit = %q", s)
	}
}

func TestEnvGC(t *testing.T) {
	env := map[string]string{"GOGC": "off", "GOMEMLIMIT": " ", "OTHER": "1"}
	if got := envGC(func(k string) string { return env[k] }); !slices.Equal(got, []string{"GOGC"}) {
		t.Fatalf("envGC = %q, want [GOGC] (a blank GOMEMLIMIT is unset)", got)
	}
	env["GOMEMLIMIT"] = "1GiB"
	if got := envGC(func(k string) string { return env[k] }); !slices.Equal(got, []string{"GOGC", "GOMEMLIMIT"}) {
		t.Fatalf("envGC = %q, want both", got)
	}
}

// TestTuneGC runs TuneGC on the test process, putting its settings back
// afterwards.
func TestTuneGC(t *testing.T) {
	before := currentGC()
	t.Cleanup(func() {
		debug.SetGCPercent(before.Percent)
		debug.SetMemoryLimit(before.Limit)
	})
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	got, fromEnv := TuneGC(512 << 20)
	if want := DefaultGC(512 << 20); got != want || len(fromEnv) != 0 {
		t.Fatalf("TuneGC = %v %q, want %v and nothing from the environment", got, fromEnv, want)
	}
	// An operator's GOGC is left as the runtime applied it (here: what the
	// test sets by hand, since the runtime read the variable long ago).
	debug.SetGCPercent(50)
	t.Setenv("GOGC", "50")
	got, fromEnv = TuneGC(1 << 30)
	if got.Percent != 50 || got.Limit != DefaultGC(1<<30).Limit || !slices.Equal(fromEnv, []string{"GOGC"}) {
		t.Fatalf("with GOGC=50 set: TuneGC = %v %q", got, fromEnv)
	}
	debug.SetMemoryLimit(300 << 20)
	t.Setenv("GOMEMLIMIT", "300MiB")
	got, fromEnv = TuneGC(1 << 30)
	if got.Percent != 50 || got.Limit != 300<<20 || len(fromEnv) != 2 {
		t.Fatalf("with both set: TuneGC = %v %q", got, fromEnv)
	}
}
