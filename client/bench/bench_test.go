package bench_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/client/bench"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

func within(got, want time.Duration, frac float64) bool {
	return math.Abs(float64(got-want)) <= frac*float64(want)
}

func TestHistogramPercentilesOnKnownData(t *testing.T) {
	h := bench.NewHistogram()
	const n = 100_000
	for i := 1; i <= n; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	if h.Count() != n {
		t.Fatalf("count %d", h.Count())
	}
	if h.Min() != time.Microsecond || h.Max() != n*time.Microsecond {
		t.Fatalf("min %v max %v", h.Min(), h.Max())
	}
	if !within(h.Mean(), 50_000500*time.Nanosecond, 1e-6) {
		t.Errorf("mean %v", h.Mean())
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 50 * time.Millisecond},
		{0.9, 90 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{0.999, 99_900 * time.Microsecond},
		{1, 100 * time.Millisecond},
		{0, time.Microsecond},
	} {
		got := h.Quantile(c.q)
		// The top of the bucket: never below the exact value, at most one
		// bucket width (1/128) above it.
		if got < c.want || !within(got, c.want, 1.0/128) {
			t.Errorf("q%v = %v, want %v within 0.8%% above", c.q, got, c.want)
		}
	}
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	h := bench.NewHistogram()
	for i := range 200 {
		h.Record(time.Duration(i))
	}
	if got := h.Quantile(0.5); got != 99 {
		t.Errorf("median of 0..199 ns = %v, want 99ns", got)
	}
	if got := h.Quantile(0.999); got != 199 {
		t.Errorf("q0.999 = %v", got)
	}
}

func TestHistogramBucketsBoundTheError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		shift := r.IntN(39) // log-uniform over the range, 2^40 ns
		d := time.Duration(1<<shift + r.Int64N(1<<shift))
		h := bench.NewHistogram()
		h.Record(d)
		h.Record(d + 1<<39) // widen [min, max] so Quantile is not clamped to d
		got := h.Quantile(0.5)
		if got < d || float64(got-d) > float64(d)/128+1 {
			t.Fatalf("value %v reported as %v", d, got)
		}
	}
}

func TestHistogramMergeAndEdges(t *testing.T) {
	a, b, whole := bench.NewHistogram(), bench.NewHistogram(), bench.NewHistogram()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 50_000 {
		d := time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		whole.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var empty bench.Histogram
	a.Merge(&empty)
	a.Merge(b)
	for _, q := range []float64{0, 0.25, 0.5, 0.9, 0.99, 0.999, 1} {
		if a.Quantile(q) != whole.Quantile(q) {
			t.Errorf("merged q%v = %v, whole %v", q, a.Quantile(q), whole.Quantile(q))
		}
	}
	if a.Count() != whole.Count() || a.Min() != whole.Min() || a.Max() != whole.Max() {
		t.Errorf("merged %d/%v/%v, whole %d/%v/%v", a.Count(), a.Min(), a.Max(), whole.Count(), whole.Min(), whole.Max())
	}
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram reports values")
	}
	var h bench.Histogram
	h.Record(-time.Second)
	h.Record(48 * time.Hour) // beyond range: counted at the top
	h.RecordN(time.Millisecond, 0)
	if h.Count() != 2 || h.Quantile(0) != 0 || h.Quantile(1) <= 18*time.Minute {
		t.Errorf("edges: count %d q0 %v q1 %v", h.Count(), h.Quantile(0), h.Quantile(1))
	}
	h.Reset()
	if h.Count() != 0 {
		t.Error("reset kept observations")
	}
}

func TestGeneratorsAreDeterministic(t *testing.T) {
	const keys = 1000
	for name, mk := range map[string]func(seed uint64) bench.KeyGen{
		"uniform": func(s uint64) bench.KeyGen { return bench.NewUniform(keys, s) },
		"zipf":    func(s uint64) bench.KeyGen { return bench.NewZipf(keys, 1.01, s) },
	} {
		a, b, c := mk(7), mk(7), mk(8)
		differ := false
		for range 1000 {
			x, y, z := a.Next(), b.Next(), c.Next()
			if x != y {
				t.Fatalf("%s: same seed, different sequences", name)
			}
			if x < 0 || x >= keys || z < 0 || z >= keys {
				t.Fatalf("%s: index out of range", name)
			}
			differ = differ || x != z
		}
		if !differ {
			t.Errorf("%s: different seeds, same sequence", name)
		}
	}
}

func TestDistributionsHaveTheirShape(t *testing.T) {
	const keys, draws = 100, 100_000
	count := func(g bench.KeyGen) []int {
		c := make([]int, keys)
		for range draws {
			c[g.Next()]++
		}
		return c
	}
	u := count(bench.NewUniform(keys, 1))
	for i, c := range u {
		if c < draws/keys*7/10 || c > draws/keys*13/10 {
			t.Errorf("uniform: key %d drawn %d times, want about %d", i, c, draws/keys)
		}
	}
	z := count(bench.NewZipf(keys, 1.2, 1))
	if !(z[0] > z[1] && z[1] > z[2] && z[2] > z[10] && z[10] > z[90]) {
		t.Errorf("zipf counts not decreasing with rank: %v", z[:12])
	}
	if z[0] < draws/10 {
		t.Errorf("zipf hottest key drawn %d of %d times", z[0], draws)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mutate := range map[string]func(*bench.Config){
		"clients":  func(c *bench.Config) { c.Clients = 0 },
		"pipeline": func(c *bench.Config) { c.Pipeline = bench.MaxPipeline + 1 },
		"no limit": func(c *bench.Config) { c.Requests, c.Duration = 0, 0 },
		"keys":     func(c *bench.Config) { c.Keys = 0 },
		"value":    func(c *bench.Config) { c.ValueSize = -1 },
		"ratio":    func(c *bench.Config) { c.GetRatio, c.SetRatio = 0, 0 },
		"dist":     func(c *bench.Config) { c.Dist = "pareto" },
		"zipf s":   func(c *bench.Config) { c.Dist, c.ZipfExponent = bench.DistZipf, 1 },
		"max":      func(c *bench.Config) { c.MaxDuration = 0 },
	} {
		cfg := bench.DefaultConfig()
		mutate(&cfg)
		if err := cfg.Validate(); !errors.Is(err, bench.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	cfg := bench.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// memDoer is an in-memory Doer; keys with the failing prefix fail.
type memDoer struct {
	mu      sync.Mutex
	data    map[string][]byte
	calls   atomic.Int64
	failing string
}

func (m *memDoer) Do(_ context.Context, reqs []*transport.Request, resps []*transport.Response) error {
	m.calls.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	for i, r := range reqs {
		if m.failing != "" && strings.HasPrefix(r.Key, m.failing) {
			err = transport.ErrUnavailable
			resps[i] = &transport.Response{Code: transport.CodeUnavailable}
			continue
		}
		switch r.Op {
		case transport.OpSet:
			m.data[r.Key] = r.Value
			resps[i] = &transport.Response{}
		case transport.OpGet:
			if v, ok := m.data[r.Key]; ok {
				resps[i] = &transport.Response{Value: v}
			} else {
				resps[i] = &transport.Response{Code: transport.CodeNotFound}
			}
		}
	}
	return err
}

func TestRunCountsEveryRequest(t *testing.T) {
	d := &memDoer{data: map[string][]byte{}}
	cfg := bench.DefaultConfig()
	cfg.Clients, cfg.Pipeline, cfg.Requests, cfg.Keys = 4, 8, 2003, 500
	cfg.GetRatio, cfg.SetRatio = 9, 1
	res, err := bench.Run(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 2003 || res.Gets+res.Sets != res.Ops || res.Errors != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Gets < res.Ops*8/10 || res.Hits+res.Misses != res.Gets {
		t.Errorf("gets %d hits %d misses %d of %d", res.Gets, res.Hits, res.Misses, res.Ops)
	}
	if res.Histogram().Count() != uint64(res.Ops) || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Errorf("latency %+v over %d samples", res.Latency, res.Histogram().Count())
	}
	if calls := d.calls.Load(); calls < 2003/8 || calls > 2003/8+4 {
		t.Errorf("%d batches for 2003 requests in pipelines of 8", calls)
	}
	for k, v := range d.data {
		if !strings.HasPrefix(k, "key:") || len(k) != len("key:")+12 || len(v) != cfg.ValueSize {
			t.Fatalf("stored %q = %q", k, v)
		}
	}
}

func TestRunPreloadMakesGetsHit(t *testing.T) {
	d := &memDoer{data: map[string][]byte{}}
	cfg := bench.DefaultConfig()
	cfg.Clients, cfg.Requests, cfg.Keys, cfg.ValueSize = 3, 1000, 300, 10
	cfg.GetRatio, cfg.SetRatio, cfg.Preload = 1, 0, true
	cfg.Dist = bench.DistZipf
	res, err := bench.Run(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Preloaded != 300 || len(d.data) != 300 || res.HitRatio != 1 || res.Sets != 0 {
		t.Fatalf("preloaded %d, stored %d, hit ratio %v, sets %d", res.Preloaded, len(d.data), res.HitRatio, res.Sets)
	}
}

func TestRunCountsErrors(t *testing.T) {
	d := &memDoer{data: map[string][]byte{}, failing: "key:0000000000"} // keys 0-99 of 1000
	cfg := bench.DefaultConfig()
	cfg.Clients, cfg.Pipeline, cfg.Requests, cfg.Keys = 2, 4, 4000, 1000
	res, err := bench.Run(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors < 200 || res.Errors > 800 || res.FirstError == "" {
		t.Fatalf("errors %d (first %q), want about 10%% of %d", res.Errors, res.FirstError, res.Ops)
	}
	cfg.Preload = true
	if _, err := bench.Run(context.Background(), d, cfg); !errors.Is(err, bench.ErrPreload) {
		t.Fatalf("preload with failing keys: %v", err)
	}
}

func TestRunForADurationReportsProgress(t *testing.T) {
	d := &memDoer{data: map[string][]byte{}}
	cfg := bench.DefaultConfig()
	cfg.Requests, cfg.Duration, cfg.Clients = 0, 150*time.Millisecond, 2
	cfg.ProgressInterval = 10 * time.Millisecond
	var calls atomic.Int64
	var last atomic.Int64
	cfg.Progress = func(p bench.Progress) {
		calls.Add(1)
		last.Store(p.Ops)
	}
	res, err := bench.Run(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed < cfg.Duration || res.Ops == 0 || res.Interrupted {
		t.Fatalf("result %+v", res)
	}
	if calls.Load() == 0 || last.Load() > res.Ops {
		t.Errorf("%d progress calls, last at %d ops of %d", calls.Load(), last.Load(), res.Ops)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	d := &memDoer{data: map[string][]byte{}}
	cfg := bench.DefaultConfig()
	cfg.Requests, cfg.Duration = 0, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cfg.ProgressInterval = time.Millisecond
	cfg.Progress = func(p bench.Progress) {
		if p.Ops > 1000 {
			cancel()
		}
	}
	res, err := bench.Run(ctx, d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Errors != 0 {
		t.Fatalf("result %+v", res)
	}
}

// A short run against a real in-process cluster, smart and not.
func TestRunAgainstCluster(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	for _, smart := range []bool{true, false} {
		ccfg := client.DefaultConfig()
		ccfg.Addrs = []string{nodes[0].Addr()}
		ccfg.Smart = smart
		cl, err := client.New(ccfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		cfg := bench.DefaultConfig()
		cfg.Clients, cfg.Pipeline, cfg.Requests, cfg.Keys, cfg.ValueSize = 8, 4, 2000, 1000, 100
		cfg.GetRatio, cfg.SetRatio, cfg.Preload = 9, 1, true
		res, err := bench.Run(context.Background(), cl, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("smart=%v: %.0f ops/s, p50 %v p99 %v", smart, res.OpsPerSec, res.Latency.P50, res.Latency.P99)
		// Every key was preloaded; allow a sliver of misses in case CPU
		// starvation makes gossip briefly suspect a node and keys move.
		if res.Ops != 2000 || res.Errors != 0 || res.HitRatio < 0.99 || res.OpsPerSec <= 0 || res.Latency.P50 <= 0 {
			t.Fatalf("smart=%v: %+v", smart, res)
		}
	}
}

func TestParseRatio(t *testing.T) {
	for in, want := range map[string][2]int{"9:1": {9, 1}, "1:0": {1, 0}, " 0 : 3 ": {0, 3}} {
		g, s, err := bench.ParseRatio(in)
		if err != nil || g != want[0] || s != want[1] {
			t.Errorf("ParseRatio(%q) = %d, %d, %v", in, g, s, err)
		}
	}
	for _, in := range []string{"", "9", "0:0", "-1:2", "a:b", "1:2:3"} {
		if _, _, err := bench.ParseRatio(in); !errors.Is(err, bench.ErrInvalidConfig) {
			t.Errorf("ParseRatio(%q) = %v", in, err)
		}
	}
}

func TestReport(t *testing.T) {
	d := &memDoer{data: map[string][]byte{}}
	cfg := bench.DefaultConfig()
	cfg.Clients, cfg.Requests, cfg.Keys = 2, 100, 10
	res, err := bench.Run(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := &bench.Report{Addrs: []string{"127.0.0.1:7001"}, Smart: false, Members: 3, Config: cfg, Result: res}
	var text, js strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 members (through 127.0.0.1:7001)", "100 requests", "GET:SET 9:1", "p99.9"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ops": 100`, `"p999_ns"`, `"get_ratio": 9`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON report lacks %q:\n%s", want, js.String())
		}
	}
	if p := bench.FormatProgress(bench.Progress{Elapsed: 1500 * time.Millisecond, Ops: 42, Rate: 28}); !strings.Contains(p, "1.5s") || !strings.Contains(p, "42 requests") {
		t.Errorf("progress line %q", p)
	}
}

// TestRunSplitsGetLatencyByKey: with Config.Local, GET latencies are also
// kept apart by key class (the classes add up to the GETs, SETs are in
// neither), and Validate refuses it with pipelines longer than one.
func TestRunSplitsGetLatencyByKey(t *testing.T) {
	d := &memDoer{data: map[string][]byte{}}
	cfg := bench.DefaultConfig()
	cfg.Clients, cfg.Requests, cfg.Keys = 4, 3000, 300
	cfg.GetRatio, cfg.SetRatio = 2, 1
	cfg.Local = func(key string) bool { return key[len(key)-1]%3 == 0 }
	res, err := bench.Run(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Local == nil || res.Forwarded == nil {
		t.Fatalf("no split: %+v", res)
	}
	if res.Local.Ops+res.Forwarded.Ops != res.Hits+res.Misses || res.Local.Ops < res.Gets/5 || res.Forwarded.Ops < res.Gets/2 {
		t.Errorf("local %d + forwarded %d of %d GETs", res.Local.Ops, res.Forwarded.Ops, res.Gets)
	}
	for _, s := range []*bench.Split{res.Local, res.Forwarded} {
		if l := s.Latency; l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
			t.Errorf("latency %+v", l)
		}
	}
	var b strings.Builder
	if err := (&bench.Report{Config: cfg, Result: res}).WriteText(&b); err != nil || !strings.Contains(b.String(), "fwd GET") {
		t.Errorf("report: %v\n%s", err, b.String())
	}
	cfg.Pipeline = 2
	if err := cfg.Validate(); !errors.Is(err, bench.ErrInvalidConfig) {
		t.Errorf("Local with pipeline 2: %v", err)
	}
}

// countingDoer answers every request OK and counts the keys it saw.
type countingDoer struct {
	mu   sync.Mutex
	keys []string
}

func (d *countingDoer) Do(_ context.Context, reqs []*transport.Request, resps []*transport.Response) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, r := range reqs {
		d.keys = append(d.keys, r.Key)
		resps[i] = &transport.Response{Code: transport.CodeOK}
	}
	return nil
}

// TestByKeySendsEachCallToItsSide: a --split run's GETs go to the Doer
// their key belongs to, every one of them, and the split latencies count
// them on the matching side.
func TestByKeySendsEachCallToItsSide(t *testing.T) {
	local, other := &countingDoer{}, &countingDoer{}
	isLocal := func(k string) bool { return strings.HasSuffix(k, "0") || strings.HasSuffix(k, "5") }
	cfg := bench.DefaultConfig()
	cfg.Clients, cfg.Pipeline, cfg.Requests, cfg.Keys = 4, 1, 2000, 100
	cfg.GetRatio, cfg.SetRatio = 1, 0
	cfg.Local = isLocal
	res, err := bench.Run(context.Background(), bench.ByKey{Local: local, Other: other, IsLocal: isLocal}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range local.keys {
		if !isLocal(k) {
			t.Fatalf("%s went to the local side", k)
		}
	}
	for _, k := range other.keys {
		if isLocal(k) {
			t.Fatalf("%s went to the other side", k)
		}
	}
	if n := len(local.keys) + len(other.keys); n != 2000 || len(local.keys) == 0 || len(other.keys) == 0 {
		t.Fatalf("%d local + %d other calls, want 2000 spread over both", len(local.keys), len(other.keys))
	}
	if res.Local.Ops != int64(len(local.keys)) || res.Forwarded.Ops != int64(len(other.keys)) {
		t.Errorf("split counts %d local, %d forwarded; the doers saw %d and %d", res.Local.Ops, res.Forwarded.Ops, len(local.keys), len(other.keys))
	}
	none := bench.ByKey{Local: local, Other: other, IsLocal: isLocal}
	if err := none.Do(context.Background(), nil, nil); err != nil {
		t.Errorf("empty call: %v", err)
	}
}
