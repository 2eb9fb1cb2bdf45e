package bench

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/starlingcache/starling/transport"
)

// okDoer answers every request OK.
type okDoer struct{}

func (okDoer) Do(_ context.Context, reqs []*transport.Request, resps []*transport.Response) error {
	for i := range reqs {
		resps[i] = &transport.Response{Code: transport.CodeOK}
	}
	return nil
}

// The CPU a run reports is what the process used between the start and
// the end of the timed run: here a clock that says 1.5 s then 2.25 s.
func TestRunReportsItsCPU(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clients, cfg.Requests, cfg.Keys = 2, 100, 10
	reads := []time.Duration{1500 * time.Millisecond, 2250 * time.Millisecond}
	cfg.cpuTime = func() (time.Duration, bool) {
		d := reads[0]
		reads = reads[1:]
		return d, true
	}
	res, err := Run(context.Background(), okDoer{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) != 0 || res.CPU != 750*time.Millisecond || res.Cores != runtime.GOMAXPROCS(0) {
		t.Fatalf("cpu %v cores %d (clock read %d times)", res.CPU, res.Cores, 2-len(reads))
	}
	cfg.cpuTime = func() (time.Duration, bool) { return 0, false }
	if res, err = Run(context.Background(), okDoer{}, cfg); err != nil || res.CPU != 0 || res.Cores != 0 {
		t.Fatalf("without a CPU clock: cpu %v cores %d, %v", res.CPU, res.Cores, err)
	}
}

// On this platform the real clock reports something, and never more than
// the cores could have spent.
func TestRunReadsTheProcessCPU(t *testing.T) {
	if _, ok := processCPU(); !ok {
		t.Skip("no process CPU time on this platform")
	}
	cfg := DefaultConfig()
	cfg.Clients, cfg.Requests, cfg.Keys = 4, 20000, 100
	res, err := Run(context.Background(), okDoer{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Rusage counts in scheduler ticks on some kernels: allow one.
	if limit := res.Elapsed*time.Duration(res.Cores) + 20*time.Millisecond; res.CPU <= 0 || res.CPU > limit {
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
