package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/starlingcache/starling/node/nodetest"
	"github.com/urfave/cli/v2"
)

// runBenchApp runs `starling bench args...` in process and returns its
// stdout, stderr and error.
func runBenchApp(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name:           "starling",
		Commands:       []*cli.Command{benchCommand()},
		Writer:         &out,
		ErrWriter:      &errOut,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"starling", "bench"}, args...))
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return -1
}

func TestBenchCommand(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	addr := nodes[0].Addr()

	out, errOut, err := runBenchApp(t, "--addr", addr, "--requests", "2000", "--clients", "4",
		"--pipeline", "8", "--keys", "500", "--value-size", "64", "--preload")
	if err != nil {
		t.Fatalf("bench: %v\n%s%s", err, out, errOut)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{"3 members (smart", "requests    2000 in", "throughput", "hit ratio   1.0000", "errors      0\n", "p99.9"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if errOut != "" {
		t.Errorf("stderr is not a terminal, yet got %q", errOut)
	}

	out, _, err = runBenchApp(t, "--addr", addr, "--requests", "2000", "--clients", "3",
		"--smart=false", "--dist", "zipf", "--ratio", "1:1", "--json")
	if err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	var rep struct {
		Smart   bool `json:"smart"`
		Members int  `json:"members"`
		Config  struct {
			Dist     string `json:"dist"`
			GetRatio int    `json:"get_ratio"`
		} `json:"config"`
		Result struct {
			Ops       int64   `json:"ops"`
			Errors    int64   `json:"errors"`
			OpsPerSec float64 `json:"ops_per_sec"`
			Latency   struct {
				P50 int64 `json:"p50_ns"`
				Max int64 `json:"max_ns"`
			} `json:"latency"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	r := rep.Result
	if rep.Smart || rep.Members != 3 || rep.Config.Dist != "zipf" || r.Ops != 2000 || r.Errors != 0 ||
		r.OpsPerSec <= 0 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P50 {
		t.Errorf("report %+v", rep)
	}

	// --split: the GETs node 0 serves itself and those it forwards, timed
	// apart; about a third of the keys are its own.
	out, _, err = runBenchApp(t, "--addr", addr, "--requests", "3000", "--clients", "4", "--keys", "600",
		"--smart=false", "--split", "--ratio", "1:0", "--json")
	if err != nil {
		t.Fatalf("bench --split: %v\n%s", err, out)
	}
	var split struct {
		Result struct {
			Gets             int64 `json:"gets"`
			Local, Forwarded struct {
				Ops     int64 `json:"ops"`
				Latency struct {
					P99 int64 `json:"p99_ns"`
				} `json:"latency"`
			}
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &split); err != nil {
		t.Fatalf("--split output: %v\n%s", err, out)
	}
	sr := split.Result
	if sr.Local.Ops+sr.Forwarded.Ops != sr.Gets || // every GET answered: hits and misses both count sr.Local.Ops < sr.Gets/6 || sr.Forwarded.Ops < sr.Gets/2 ||
		sr.Local.Latency.P99 <= 0 || sr.Forwarded.Latency.P99 <= 0 {
		t.Errorf("split %+v of %d GETs", sr, sr.Gets)
	}
	out, _, err = runBenchApp(t, "--addr", addr, "--requests", "500", "--clients", "2", "--keys", "100",
		"--smart=false", "--split", "--ratio", "1:0")
	if err != nil || !strings.Contains(out, "local GET") || !strings.Contains(out, "fwd GET") || !strings.Contains(out, "x local") {
		t.Errorf("bench --split text: %v\n%s", err, out)
	}
}

func TestBenchCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--ratio", "nine"},
		{"--dist", "pareto"},
		{"--clients", "0"},
		{"extra-arg"},
		{"--split"}, // needs --smart=false
		{"--split", "--smart=false", "--pipeline", "2"},                                // and a pipeline of one
		{"--split", "--smart=false", "--addr", "127.0.0.1:1", "--addr", "127.0.0.1:2"}, // and one node
	} {
		if _, _, err := runBenchApp(t, args...); exitCode(err) != exitUsage {
			t.Errorf("bench %v: %v (exit %d), want usage error", args, err, exitCode(err))
		}
	}
	// Nothing listens there.
	if _, _, err := runBenchApp(t, "--addr", "127.0.0.1:1", "--timeout", "1s"); exitCode(err) != exitUnavailable {
		t.Errorf("bench against nothing: %v (exit %d)", err, exitCode(err))
	}
}
