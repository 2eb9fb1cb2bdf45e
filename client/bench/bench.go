// Package bench is starling's load generator, the library behind
// `starling bench`: concurrent workers send pipelined GETs and SETs over a
// key distribution through a Doer (a *client.Client), and a Run reports
// throughput, hit ratio, errors and a latency distribution.
//
// Each worker keeps its own counters and Histogram, so nothing on the
// measured path takes a lock; the histograms are merged when the run ends.
// A worker sends Pipeline requests at a time and waits for all of them;
// each request's latency is its batch's round trip, as redis-benchmark
// counts pipelined requests.
package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starlingcache/starling/transport"
)

// Errors returned by this package.
var (
	// ErrInvalidConfig reports a Config that Validate rejects.
	ErrInvalidConfig = errors.New("bench: invalid config")
	// ErrPreload reports that writing every key before the run failed.
	ErrPreload = errors.New("bench: preload failed")
)

// Limits Validate enforces, so that a typo cannot exhaust memory: every
// worker holds a Histogram (35 KB), and key names are built up front.
const (
	MaxClients   = 4096
	MaxPipeline  = 1024
	MaxKeys      = 10_000_000
	MaxValueSize = 1 << 20
)

// Distributions Config.Dist accepts.
const (
	DistUniform = "uniform"
	DistZipf    = "zipf"
)

// Doer sends a batch of requests and waits for their answers: resps[i]
// answers reqs[i], a request no node answered has an error response, and
// the error is the first such failure. *client.Client implements it.
type Doer interface {
	Do(ctx context.Context, reqs []*transport.Request, resps []*transport.Response) error
}

// ByKey is a Doer that sends each call to Local when IsLocal holds for
// the key of its first request, and to Other otherwise. Given two clients
// with connections of their own, a --split run keeps the GETs a node
// serves itself and those it forwards on separate connections: the node
// then answers them in separate batches, so a local GET never waits for a
// forwarded one read in the same batch, and the two latencies are those
// of the two paths.
type ByKey struct {
	Local, Other Doer
	IsLocal      func(key string) bool
}

// Do sends reqs to Local or Other (see ByKey).
func (b ByKey) Do(ctx context.Context, reqs []*transport.Request, resps []*transport.Response) error {
	if len(reqs) > 0 && b.IsLocal(reqs[0].Key) {
		return b.Local.Do(ctx, reqs, resps)
	}
	return b.Other.Do(ctx, reqs, resps)
}

// Config describes one run.
type Config struct {
	// Clients is the number of concurrent workers.
	Clients int `json:"clients"`
	// Pipeline is how many requests a worker sends at once before
	// waiting for their answers.
	Pipeline int `json:"pipeline"`
	// Requests ends the run after this many requests in total (0: no
	// count limit).
	Requests int64 `json:"requests"`
	// Duration ends the run after this long (0: no time limit other than
	// MaxDuration).
	Duration time.Duration `json:"duration_ns"`
	// MaxDuration bounds a run that has only a request count, so a stalled
	// cluster cannot keep it going forever.
	MaxDuration time.Duration `json:"max_duration_ns"`
	// Keys is the number of distinct keys, named by KeyName.
	Keys int `json:"keys"`
	// ValueSize is the length of every value SET writes.
	ValueSize int `json:"value_size"`
	// GetRatio is the GET part of the operation mix GetRatio:SetRatio,
	// as in 9:1.
	GetRatio int `json:"get_ratio"`
	// SetRatio is the SET part of the operation mix.
	SetRatio int `json:"set_ratio"`
	// Dist is DistUniform or DistZipf.
	Dist string `json:"dist"`
	// ZipfExponent is the s of DistZipf (> 1); larger is more skewed.
	ZipfExponent float64 `json:"zipf_exponent,omitempty"`
	// Seed makes key and operation sequences repeatable; worker i uses
	// Seed+i.
	Seed uint64 `json:"seed"`
	// TTL is the expiry SET gives values (0: none).
	TTL time.Duration `json:"ttl_ns,omitempty"`
	// Preload writes every key once, before the timed run, so that GETs
	// hit.
	Preload bool `json:"preload"`
	// Progress, if set, is called about every ProgressInterval from a
	// goroutine of its own with the run so far. It must not block long.
	Progress func(Progress) `json:"-"`
	// ProgressInterval spaces Progress calls.
	ProgressInterval time.Duration `json:"-"`
	// Local, if set, splits the latencies of answered GETs (hits and
	// misses; errors are left out) by Local(key): a run through one node
	// that says which keys that node owns measures its own GETs and the
	// ones it forwards side by side, at the same load (Result.Local and
	// Result.Forwarded). It needs Pipeline 1, so that each latency belongs
	// to one key.
	Local func(key string) bool `json:"-"`

	// cpuTime reads the process's CPU time for Result.CPU; nil is
	// processCPU. Tests give a clock of their own.
	cpuTime func() (time.Duration, bool)
}

// DefaultConfig returns redis-benchmark's defaults where they apply (50
// clients, no pipelining, 100,000 requests over 100,000 keys), 100-byte
// values as in the project's targets (redis-benchmark -d 100), and a 9:1
// GET:SET mix over uniform keys.
func DefaultConfig() Config {
	return Config{
		Clients:          50,
		Pipeline:         1,
		Requests:         100_000,
		MaxDuration:      10 * time.Minute,
		Keys:             100_000,
		ValueSize:        100,
		GetRatio:         9,
		SetRatio:         1,
		Dist:             DistUniform,
		ZipfExponent:     1.01,
		Seed:             1,
		ProgressInterval: time.Second,
	}
}

// Validate reports a Config that cannot run.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return bad("clients %d outside [1, %d]", c.Clients, MaxClients)
	case c.Pipeline < 1 || c.Pipeline > MaxPipeline:
		return bad("pipeline %d outside [1, %d]", c.Pipeline, MaxPipeline)
	case c.Requests < 0 || c.Duration < 0:
		return bad("requests and duration must not be negative")
	case c.Requests == 0 && c.Duration == 0:
		return bad("set a request count, a duration, or both")
	case c.Duration == 0 && c.MaxDuration <= 0:
		return bad("a run bounded by requests needs a positive MaxDuration")
	case c.Keys < 1 || c.Keys > MaxKeys:
		return bad("keys %d outside [1, %d]", c.Keys, MaxKeys)
	case c.ValueSize < 0 || c.ValueSize > MaxValueSize:
		return bad("value size %d outside [0, %d]", c.ValueSize, MaxValueSize)
	case c.GetRatio < 0 || c.SetRatio < 0 || c.GetRatio+c.SetRatio == 0:
		return bad("ratio %d:%d needs non-negative parts, not both 0", c.GetRatio, c.SetRatio)
	case c.Dist != DistUniform && c.Dist != DistZipf:
		return bad("distribution %q is not %s or %s", c.Dist, DistUniform, DistZipf)
	case c.Dist == DistZipf && !(c.ZipfExponent > 1):
		return bad("zipf exponent %v must be > 1", c.ZipfExponent)
	case c.TTL < 0:
		return bad("negative ttl")
	case c.Progress != nil && c.ProgressInterval <= 0:
		return bad("progress needs a positive interval")
	case c.Local != nil && c.Pipeline != 1:
		return bad("splitting latencies by key needs pipeline 1, not %d", c.Pipeline)
	}
	return nil
}

// keyGen returns worker w's key generator.
func (c *Config) keyGen(w int) KeyGen {
	seed := c.Seed + uint64(w)
	if c.Dist == DistZipf {
		return NewZipf(c.Keys, c.ZipfExponent, seed)
	}
	return NewUniform(c.Keys, seed)
}

// Progress is a run's state so far, for a live display.
type Progress struct {
	Elapsed time.Duration
	Ops     int64
	Errors  int64
	// Rate is the ops/s over the last interval.
	Rate float64
}

// Latency summarises the latency distribution, in nanoseconds.
type Latency struct {
	Min  time.Duration `json:"min_ns"`
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// Result is what a run measured.
type Result struct {
	// Ops counts requests answered or failed; Gets + Sets == Ops.
	Ops  int64 `json:"ops"`
	Gets int64 `json:"gets"`
	Sets int64 `json:"sets"`
	// Hits and Misses split the GETs that were answered.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	// Errors counts requests with no answer or an error answer (a miss is
	// not an error).
	Errors     int64         `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	OpsPerSec  float64       `json:"ops_per_sec"`
	// HitRatio is Hits / (Hits + Misses), 0 without GETs.
	HitRatio float64 `json:"hit_ratio"`
	Latency  Latency `json:"latency"`
	// Interrupted says the caller's context ended the run early.
	Interrupted bool `json:"interrupted,omitempty"`
	// Preloaded is how many keys were written before the timed run.
	Preloaded int64 `json:"preloaded,omitempty"`
	// CPU is the CPU time (user and system) this process used during the
	// timed run, and Cores the GOMAXPROCS it ran with; 0 where the
	// platform does not report it. It is the load generator's own cost
	// only when the nodes run in other processes. CPU / Elapsed near
	// Cores says the load generator, not the cluster, set the pace, where
	// it has CPUs of its own: sharing them with the nodes, it may set the
	// pace from well below.
	CPU   time.Duration `json:"cpu_ns,omitempty"`
	Cores int           `json:"cores,omitempty"`
	// Local and Forwarded are the latencies of answered GETs whose key
	// Config.Local reported local, and of the others (nil without it);
	// their Ops add up to Hits + Misses.
	Local     *Split `json:"local,omitempty"`
	Forwarded *Split `json:"forwarded,omitempty"`

	hist *Histogram
}

// Split is the latency of one class of requests.
type Split struct {
	Ops     int64   `json:"ops"`
	Latency Latency `json:"latency"`
}

func splitOf(h *Histogram) *Split {
	return &Split{Ops: int64(h.Count()), Latency: latencyOf(h)}
}

func latencyOf(h *Histogram) Latency {
	return Latency{Min: h.Min(), Mean: h.Mean(), P50: h.Quantile(0.50), P90: h.Quantile(0.90),
		P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.Max()}
}

// Histogram returns the merged latency histogram of the run.
func (r *Result) Histogram() *Histogram { return r.hist }

// cacheLine pads per-worker counters apart, so workers on different cores
// do not share cache lines.
const cacheLine = 64

// worker is one client's state. ops and errs are read by the progress
// reporter; the rest only by the worker until the run ends.
type worker struct {
	ops  atomic.Int64
	errs atomic.Int64
	_    [cacheLine]byte

	gets, sets, hits, misses int64
	firstErr                 error
	hist                     Histogram
	split                    *[2]Histogram // GETs by Config.Local: [0] forwarded, [1] local
}

// Run drives d with cfg's load until the request count or duration is
// reached or ctx ends, and returns what it measured. Requests in flight
// when the time is up finish (bounded by the Doer's own timeout) and are
// counted; those cut short by ctx are not, and Result.Interrupted is set.
func Run(ctx context.Context, d Doer, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys := make([]string, cfg.Keys)
	for i := range keys {
		keys[i] = KeyName(i)
	}
	value := make([]byte, cfg.ValueSize)
	vr := newRand(cfg.Seed)
	for i := range value {
		value[i] = 'a' + byte(vr.IntN(26))
	}
	ttl := int64(0)
	if cfg.TTL > 0 {
		ttl = max(1, cfg.TTL.Milliseconds())
	}
	res := &Result{}
	if cfg.Preload {
		n, err := preload(ctx, d, &cfg, keys, value, ttl)
		res.Preloaded = n
		if err != nil {
			return nil, err
		}
	}

	limit := cfg.Duration
	if limit == 0 {
		limit = cfg.MaxDuration
	}
	var budget atomic.Int64
	budget.Store(cfg.Requests)
	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		workers[i] = &worker{}
		if cfg.Local != nil {
			workers[i].split = new([2]Histogram)
		}
	}
	cpuTime := cfg.cpuTime
	if cpuTime == nil {
		cpuTime = processCPU
	}
	cpu0, cpuOK := cpuTime()
	start := time.Now()
	end := start.Add(limit)
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() { w.run(ctx, d, &cfg, i, keys, value, ttl, end, &budget) })
	}
	stopProgress := make(chan struct{})
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
		pwg.Go(func() { reportProgress(&cfg, workers, start, stopProgress) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if cpu1, ok := cpuTime(); ok && cpuOK {
		res.CPU, res.Cores = cpu1-cpu0, runtime.GOMAXPROCS(0)
	}
	close(stopProgress)
	pwg.Wait()

	res.hist = NewHistogram()
	var split [2]Histogram
	for _, w := range workers {
		if w.split != nil {
			split[0].Merge(&w.split[0])
			split[1].Merge(&w.split[1])
		}
		res.Ops += w.ops.Load()
		res.Errors += w.errs.Load()
		res.Gets += w.gets
		res.Sets += w.sets
		res.Hits += w.hits
		res.Misses += w.misses
		if res.FirstError == "" && w.firstErr != nil {
			res.FirstError = w.firstErr.Error()
		}
		res.hist.Merge(&w.hist)
	}
	res.Elapsed = elapsed
	if s := elapsed.Seconds(); s > 0 {
		res.OpsPerSec = float64(res.Ops) / s
	}
	if n := res.Hits + res.Misses; n > 0 {
		res.HitRatio = float64(res.Hits) / float64(n)
	}
	res.Latency = latencyOf(res.hist)
	if cfg.Local != nil {
		res.Forwarded, res.Local = splitOf(&split[0]), splitOf(&split[1])
	}
	res.Interrupted = ctx.Err() != nil
	return res, nil
}

// claim takes up to want requests from the budget (unlimited when the run
// has no request count) and returns how many it got.
func claim(budget *atomic.Int64, limited bool, want int) int {
	if !limited {
		return want
	}
	left := budget.Add(-int64(want))
	if left >= 0 {
		return want
	}
	return max(0, want+int(left))
}

// run is one worker's loop: at most one batch per iteration, ending when
// the budget or the time runs out or ctx ends.
func (w *worker) run(ctx context.Context, d Doer, cfg *Config, id int, keys []string, value []byte, ttl int64, end time.Time, budget *atomic.Int64) {
	gen := cfg.keyGen(id)
	ops := newRand(cfg.Seed + uint64(id) + 1<<32)
	mix := cfg.GetRatio + cfg.SetRatio
	reqs := make([]transport.Request, cfg.Pipeline)
	ptrs := make([]*transport.Request, cfg.Pipeline)
	resps := make([]*transport.Response, cfg.Pipeline)
	limited := cfg.Requests > 0
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		n := claim(budget, limited, cfg.Pipeline)
		if n == 0 {
			return
		}
		for i := range n {
			r := &reqs[i]
			*r = transport.Request{Key: keys[gen.Next()]}
			if ops.IntN(mix) < cfg.GetRatio {
				r.Op = transport.OpGet
			} else {
				r.Op, r.Value, r.TTL = transport.OpSet, value, ttl
			}
			ptrs[i] = r
		}
		err := d.Do(ctx, ptrs[:n], resps[:n])
		lat := time.Since(t0)
		if ctx.Err() != nil {
			return // cut short by the caller: not a measurement
		}
		w.hist.RecordN(lat, uint64(n))
		if r := resps[0]; w.split != nil && reqs[0].Op == transport.OpGet && r != nil && (r.Code == transport.CodeOK || r.Code == transport.CodeNotFound) {
			k := 0
			if cfg.Local(reqs[0].Key) {
				k = 1
			}
			w.split[k].Record(lat)
		}
		var errs int64
		for i := range n {
			isGet := reqs[i].Op == transport.OpGet
			if isGet {
				w.gets++
			} else {
				w.sets++
			}
			resp := resps[i]
			var rerr error
			switch {
			case resp == nil:
				rerr = err
				if rerr == nil {
					rerr = errors.New("no response")
				}
			case resp.Code == transport.CodeOK:
				if isGet {
					w.hits++
				}
			case resp.Code == transport.CodeNotFound && isGet:
				w.misses++
			default:
				rerr = resp.Error()
			}
			if rerr != nil {
				errs++
				if w.firstErr == nil {
					w.firstErr = fmt.Errorf("%s %s: %w", reqs[i].Op, reqs[i].Key, rerr)
				}
			}
			resps[i] = nil
		}
		w.errs.Add(errs)
		w.ops.Add(int64(n))
	}
}

// preload writes every key once, split across the workers, in pipelined
// batches. It returns how many keys were written.
func preload(ctx context.Context, d Doer, cfg *Config, keys []string, value []byte, ttl int64) (int64, error) {
	const batch = 64
	end := time.Now().Add(cfg.MaxDuration)
	var next, written, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			reqs := make([]transport.Request, batch)
			ptrs := make([]*transport.Request, batch)
			resps := make([]*transport.Response, batch)
			for ctx.Err() == nil && time.Now().Before(end) {
				lo := int(next.Add(batch)) - batch
				if lo >= len(keys) {
					return
				}
				n := min(batch, len(keys)-lo)
				for i := range n {
					reqs[i] = transport.Request{Op: transport.OpSet, Key: keys[lo+i], Value: value, TTL: ttl}
					ptrs[i] = &reqs[i]
				}
				_ = d.Do(ctx, ptrs[:n], resps[:n])
				for i := range n {
					if resps[i] == nil || resps[i].Error() != nil {
						failed.Add(1)
						if resps[i] != nil {
							firstErr.CompareAndSwap(nil, resps[i].Error().Error())
						}
						continue
					}
					written.Add(1)
				}
			}
		})
	}
	wg.Wait()
	switch {
	case ctx.Err() != nil:
		return written.Load(), fmt.Errorf("%w: %w", ErrPreload, ctx.Err())
	case failed.Load() > 0:
		return written.Load(), fmt.Errorf("%w: %d of %d keys not written; first: %v", ErrPreload, failed.Load(), len(keys), firstErr.Load())
	case written.Load() < int64(len(keys)):
		return written.Load(), fmt.Errorf("%w: only %d of %d keys written in %v", ErrPreload, written.Load(), len(keys), cfg.MaxDuration)
	}
	return written.Load(), nil
}

// reportProgress calls cfg.Progress every interval until stop closes.
func reportProgress(cfg *Config, workers []*worker, start time.Time, stop <-chan struct{}) {
	tick := time.NewTicker(cfg.ProgressInterval)
	defer tick.Stop()
	var lastOps int64
	last := start
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			var p Progress
			for _, w := range workers {
				p.Ops += w.ops.Load()
				p.Errors += w.errs.Load()
			}
			p.Elapsed = now.Sub(start)
			if dt := now.Sub(last).Seconds(); dt > 0 {
				p.Rate = float64(p.Ops-lastOps) / dt
			}
			lastOps, last = p.Ops, now
			cfg.Progress(p)
		}
	}
}
