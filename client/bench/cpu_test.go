package bench

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starlingcache/starling/transport"
)

// tickingDoer answers every request OK and counts its calls: a clock that
// reads the count tells which calls a run's CPU window held.
type tickingDoer struct{ calls atomic.Int64 }

func (d *tickingDoer) Do(_ context.Context, reqs []*transport.Request, resps []*transport.Response) error {
	d.calls.Add(1)
	for i := range reqs {
		resps[i] = &transport.Response{Code: transport.CodeOK}
	}
	return nil
}

// The CPU a run reports is what the process used from the start to the
// end of the timed run, the preload left out: with a clock that moves a
// millisecond per call, exactly the timed run's 100 calls.
func TestRunReportsItsCPU(t *testing.T) {
	d := &tickingDoer{}
	cfg := DefaultConfig()
	cfg.Clients, cfg.Pipeline, cfg.Requests, cfg.Keys, cfg.Preload = 2, 1, 100, 1000, true
	reads := 0
	cfg.cpuTime = func() (time.Duration, bool) {
		reads++
		return time.Duration(d.calls.Load()) * time.Millisecond, true
	}
	res, err := Run(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Preloaded != 1000 || d.calls.Load() <= 100 {
		t.Fatalf("preloaded %d keys in %d calls in all: the preload did not run first", res.Preloaded, d.calls.Load()-100)
	}
	if reads != 2 || res.CPU != 100*time.Millisecond || res.Cores != runtime.GOMAXPROCS(0) {
		t.Fatalf("cpu %v cores %d (clock read %d times), want the timed run's 100 calls' 100ms", res.CPU, res.Cores, reads)
	}
	cfg.cpuTime = func() (time.Duration, bool) { return 0, false }
	res, err = Run(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.CPU != 0 || res.Cores != 0 {
		t.Fatalf("without a CPU clock: cpu %v cores %d", res.CPU, res.Cores)
	}
}

// Where the platform reports it, the real clock says something, and never
// more than the cores could have spent.
func TestRunReadsTheProcessCPU(t *testing.T) {
	if _, ok := processCPU(); !ok {
		t.Skip("no process CPU time on this platform")
	}
	cfg := DefaultConfig()
	cfg.Clients, cfg.Requests, cfg.Keys = 4, 20000, 100
	res, err := Run(context.Background(), &tickingDoer{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Linux counts a process's CPU to the microsecond; other kernels may
	// count in scheduler ticks, and so report none for a short run. The
	// slack covers the CPU window being a little wider than the timed one.
	if res.CPU < 0 || runtime.GOOS == "linux" && res.CPU == 0 || res.CPU > res.Elapsed*time.Duration(res.Cores)+20*time.Millisecond {
		t.Fatalf("cpu %v over %v on %d cores", res.CPU, res.Elapsed, res.Cores)
	}
}

func TestReportSaysWhetherTheClientWasBusy(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct {
		cpu   time.Duration
		cores int
		want  []string
		avoid []string
	}{
		{950 * time.Millisecond, 1, []string{"client cpu  95% of 1 core, 950.00µs per request: the load generator may be what limits the rate"}, nil},
		{1020 * time.Millisecond, 1, []string{"client cpu  100% of 1 core, 1020.00µs per request: the load"}, nil}, // capped
		{1795 * time.Millisecond, 2, []string{"client cpu  90% of 2 cores, 1795.00µs per request: the load"}, nil}, // 89.75% shows as 90: noted
		{800 * time.Millisecond, 2, []string{"client cpu  40% of 2 cores, 800.00µs per request\n"}, []string{"limits the rate"}},
		{0, 0, nil, []string{"client cpu"}},
	} {
		res := &Result{Ops: 1000, Gets: 1000, Elapsed: time.Second, OpsPerSec: 1000, CPU: c.cpu, Cores: c.cores}
		var b strings.Builder
		if err := (&Report{Config: cfg, Result: res}).WriteText(&b); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("report lacks %q:\n%s", w, b.String())
			}
		}
		for _, a := range c.avoid {
			if strings.Contains(b.String(), a) {
				t.Errorf("report has %q:\n%s", a, b.String())
			}
		}
	}
}
