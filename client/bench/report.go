package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseRatio parses a GET:SET mix such as "9:1" (or "1:0" for GETs only).
func ParseRatio(s string) (get, set int, err error) {
	g, st, ok := strings.Cut(s, ":")
	if ok {
		get, err = strconv.Atoi(strings.TrimSpace(g))
		if err == nil {
			set, err = strconv.Atoi(strings.TrimSpace(st))
		}
	}
	if !ok || err != nil || get < 0 || set < 0 || get+set == 0 {
		return 0, 0, fmt.Errorf("%w: ratio %q is not GET:SET, e.g. 9:1", ErrInvalidConfig, s)
	}
	return get, set, nil
}

// Report is a finished run with what it ran against, as `starling bench`
// prints it.
type Report struct {
	// Addrs are the nodes the client was given.
	Addrs []string `json:"addrs"`
	// Smart says the client sent requests straight to their owners.
	Smart bool `json:"smart"`
	// Members is the number of cluster members at the start.
	Members int     `json:"members"`
	Config  Config  `json:"config"`
	Result  *Result `json:"result"`
}

// WriteJSON writes r as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for people: what ran, then throughput, hit ratio,
// errors and latency percentiles.
func (r *Report) WriteText(w io.Writer) error {
	c, res := &r.Config, r.Result
	mode := "smart: straight to owners"
	if !r.Smart {
		mode = "through " + strings.Join(r.Addrs, ", ")
	}
	limit := fmt.Sprintf("%d requests", c.Requests)
	switch {
	case c.Requests == 0:
		limit = c.Duration.String()
	case c.Duration > 0:
		limit += " or " + c.Duration.String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "starling bench: %d members (%s), %d clients, pipeline %d, %s\n", r.Members, mode, c.Clients, c.Pipeline, limit)
	fmt.Fprintf(&b, "  workload    %d keys (%s), %d-byte values, GET:SET %d:%d\n", c.Keys, c.Dist, c.ValueSize, c.GetRatio, c.SetRatio)
	if res.Interrupted {
		fmt.Fprintf(&b, "  INTERRUPTED: partial results\n")
	}
	fmt.Fprintf(&b, "  requests    %d in %v (%d GET, %d SET)\n", res.Ops, res.Elapsed.Round(time.Millisecond), res.Gets, res.Sets)
	fmt.Fprintf(&b, "  throughput  %.0f ops/s\n", res.OpsPerSec)
	if res.CPU > 0 && res.Cores > 0 && res.Elapsed > 0 && res.Ops > 0 {
		// Capped: the CPU window is a little wider than the timed one, and
		// threads outside GOMAXPROCS (the runtime's monitor, threads in
		// system calls) count too.
		pct := min(math.Round(100*res.CPU.Seconds()/res.Elapsed.Seconds()/float64(res.Cores)), 100)
		unit := "cores"
		if res.Cores == 1 {
			unit = "core"
		}
		fmt.Fprintf(&b, "  client cpu  %.0f%% of %d %s, %.2fµs per request", pct, res.Cores, unit, float64(res.CPU)/float64(res.Ops)/1e3)
		if pct >= saturated {
			b.WriteString(": the load generator may be what limits the rate")
		}
		b.WriteString("\n")
	}
	if res.Gets > 0 {
		fmt.Fprintf(&b, "  hit ratio   %.4f (%d hits, %d misses)\n", res.HitRatio, res.Hits, res.Misses)
	}
	fmt.Fprintf(&b, "  errors      %d", res.Errors)
	if res.FirstError != "" {
		fmt.Fprintf(&b, " (first: %s)", res.FirstError)
	}
	b.WriteString("\n")
	line := func(name string, l Latency) {
		fmt.Fprintf(&b, "  %-11s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)",
			name, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), ms(l.Mean))
	}
	line("latency", res.Latency)
	b.WriteString("\n")
	if res.Local != nil && res.Forwarded != nil {
		line("local GET", res.Local.Latency)
		fmt.Fprintf(&b, "  [%d]\n", res.Local.Ops)
		line("fwd GET", res.Forwarded.Latency)
		fmt.Fprintf(&b, "  [%d]", res.Forwarded.Ops)
		if lp := res.Local.Latency.P99; lp > 0 && res.Local.Ops > 0 && res.Forwarded.Ops > 0 {
			fmt.Fprintf(&b, "  p99 %.2fx local", float64(res.Forwarded.Latency.P99)/float64(lp))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// saturated is the percent of its cores busy from which the load
// generator is called a likely bottleneck: the cluster may have been able
// to go faster. It says so only where the load generator has cores of its
// own; sharing them with the nodes, it can limit the rate well below.
const saturated = 90

// FormatProgress renders a one-line live status.
func FormatProgress(p Progress) string {
	return fmt.Sprintf("%6.1fs  %9.0f ops/s  %10d requests  %d errors", p.Elapsed.Seconds(), p.Rate, p.Ops, p.Errors)
}

// ms formats d in milliseconds with three decimals, the unit
// redis-benchmark reports in.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}
