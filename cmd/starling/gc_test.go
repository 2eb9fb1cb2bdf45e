package main

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/starlingcache/starling/node"
)

func TestEnvGC(t *testing.T) {
	env := map[string]string{"GOGC": "off", "GOMEMLIMIT": " ", "OTHER": "1"}
	if got := envGC(func(k string) string { return env[k] }); !slices.Equal(got, []string{"GOGC"}) {
		t.Fatalf("envGC = %q, want [GOGC] (a blank GOMEMLIMIT is unset)", got)
	}
	env["GOMEMLIMIT"], env["GOGC"] = "1GiB", ""
	if got := envGC(func(k string) string { return env[k] }); !slices.Equal(got, []string{"GOMEMLIMIT"}) {
		t.Fatalf("envGC = %q, want [GOMEMLIMIT]", got)
	}
}

// gcNow reads the settings through runtime/debug, not currentGC: the
// percentage by setting it and putting it back, the limit by asking for
// no change.
func gcNow() (int, int64) {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p, debug.SetMemoryLimit(-1)
}

// TestTuneGC runs tuneGC on the test process, putting the process's
// settings back afterwards.
func TestTuneGC(t *testing.T) {
	p0, l0 := gcNow()
	t.Cleanup(func() {
		debug.SetGCPercent(p0)
		debug.SetMemoryLimit(l0)
	})
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	want := node.DefaultGC(512 << 20)

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	got := tuneGC(logger, 512<<20)
	if p, l := gcNow(); got != want || p != want.Percent || l != want.Limit {
		t.Fatalf("tuneGC = %v, in effect GOGC %d limit %d; want %v", got, p, l, want)
	}
	if !strings.Contains(logs.String(), `msg="garbage collector" settings="GOGC 400, memory limit `) {
		t.Fatalf("log: %s", logs.String())
	}

	// An operator's setting is left as the runtime applied it (here set
	// by hand: the runtime read the variables when the test started).
	for _, tc := range []struct {
		env, value string
		apply      func()
		percent    int
		limit      int64
	}{
		{"GOGC", "off", func() { debug.SetGCPercent(-1) }, -1, want.Limit},
		{"GOMEMLIMIT", "300MiB", func() { debug.SetMemoryLimit(300 << 20) }, 400, 300 << 20},
	} {
		debug.SetGCPercent(p0)
		debug.SetMemoryLimit(l0)
		t.Setenv("GOGC", "")
		t.Setenv("GOMEMLIMIT", "")
		t.Setenv(tc.env, tc.value)
		tc.apply()
		got := tuneGC(logger, 512<<20)
		if p, l := gcNow(); got.Percent != tc.percent || got.Limit != tc.limit || p != tc.percent || l != tc.limit {
			t.Fatalf("with %s=%s: tuneGC = %v, in effect GOGC %d limit %d", tc.env, tc.value, got, p, l)
		}
	}

	// A limit under max-memory is reported.
	logs.Reset()
	debug.SetMemoryLimit(100 << 20)
	t.Setenv("GOMEMLIMIT", "100MiB")
	tuneGC(logger, 512<<20)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "little room above --max-memory") {
		t.Fatalf("no warning for a limit under max-memory: %s", logs.String())
	}
}
