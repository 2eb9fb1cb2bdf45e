// Package metrics counts the requests a node serves, on the node's hot
// path. A Recorder is a fixed block of atomic counters: recording a request
// takes no lock, allocates nothing and looks nothing up by label, so it can
// run on every request. Turning the counters into Prometheus series or JSON
// happens on the rare read side (see Snapshot), in node/admin.
package metrics

import (
	"math"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/starlingcache/starling/transport"
)

// Result classifies a request's outcome for counting.
type Result uint8

// The results a request is counted under. A miss is not an error: caches
// miss by design, and an operator watching errors must not see them.
const (
	// OK is a request that succeeded.
	OK Result = iota
	// NotFound is a request for a key that does not exist.
	NotFound
	// Error is any other failure: bad input, an unreachable owner, an
	// internal error.
	Error
)

// NumResults is the number of distinct Results, the length of
// Counts.Results.
const NumResults = int(Error) + 1

// String returns the result's name as used in metric labels.
func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case NotFound:
		return "not_found"
	}
	return "error"
}

// ResultOf maps a response code onto the Result it is counted under, so the
// node can record a response without inspecting its error.
func ResultOf(c transport.Code) Result {
	switch c {
	case transport.CodeOK:
		return OK
	case transport.CodeNotFound:
		return NotFound
	}
	return Error
}

// MaxOps bounds the operations counted apart: transport.Op values from 1 to
// MaxOps-1 get their own counters; any other value (0, or an operation
// appended to the protocol beyond the bound) is counted as "other", in
// slot 0, so that a bad op byte from the network can never index out of
// range.
const MaxOps = 32

// bounds are the upper bounds of the latency buckets. They span a local
// store hit (microseconds) to a forward that times out (seconds) in the
// 1-2.5-5 steps Prometheus users expect.
var bounds = [...]time.Duration{
	10 * time.Microsecond,
	25 * time.Microsecond,
	50 * time.Microsecond,
	100 * time.Microsecond,
	250 * time.Microsecond,
	500 * time.Microsecond,
	1 * time.Millisecond,
	2500 * time.Microsecond,
	5 * time.Millisecond,
	10 * time.Millisecond,
	25 * time.Millisecond,
	50 * time.Millisecond,
	100 * time.Millisecond,
	250 * time.Millisecond,
	500 * time.Millisecond,
	1 * time.Second,
	2500 * time.Millisecond,
	5 * time.Second,
}

// NumBuckets is the number of latency buckets, the length of
// Counts.Buckets: one per bound in Bounds and a last one for anything
// slower than the largest bound.
const NumBuckets = len(bounds) + 1

// Bounds returns the upper bounds of the latency buckets, ascending. The
// slice is the caller's.
func Bounds() []time.Duration {
	b := bounds
	return b[:]
}

// bucketOf returns the bucket a latency falls in. A linear scan from the
// bottom is fastest here: most requests are served locally in microseconds
// and leave after one or two comparisons.
func bucketOf(d time.Duration) int {
	for i, b := range bounds {
		if d <= b {
			return i
		}
	}
	return len(bounds)
}

// cell holds the counters of one operation served by one route.
type cell struct {
	results  [NumResults]atomic.Uint64
	buckets  [NumBuckets]atomic.Uint64
	sumNanos atomic.Uint64
}

// stripe is one full set of counters. Goroutines spread their updates
// over several stripes so that cores do not fight over the same cache
// lines; a read sums the stripes.
type stripe struct {
	cells    [MaxOps][2]cell // [op][0: local, 1: forwarded]
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	// Padding keeps the last counters of one stripe and the first of the
	// next off a shared cache line (128 bytes covers adjacent-line
	// prefetching too).
	_ [128]byte
}

// maxStripes caps the memory of a Recorder (about 12 KiB per stripe) on
// machines with many cores; past it, contention is already diluted.
const maxStripes = 32

// Recorder counts requests by operation, result and route (served locally
// or forwarded), their latencies in fixed buckets, and bytes in and out.
// All methods are safe for concurrent use, and a nil *Recorder records
// nothing, so a node built without metrics can call it unconditionally.
type Recorder struct {
	stripes []stripe
	mask    uint64 // len(stripes)-1; len is a power of two
}

// NewRecorder returns a Recorder with two stripes of counters per
// processor (GOMAXPROCS at the time of the call, rounded up to a power of
// two and capped), so that parallel requests rarely update the same cache
// line.
func NewRecorder() *Recorder {
	return newRecorder(2 * runtime.GOMAXPROCS(0))
}

func newRecorder(stripes int) *Recorder {
	n := 1
	for n < stripes && n < maxStripes {
		n <<= 1
	}
	return &Recorder{stripes: make([]stripe, n), mask: uint64(n - 1)}
}

// stripe picks the calling goroutine's stripe by hashing the address of a
// local variable, that is, of the goroutine's stack. Go exposes neither
// the current processor nor a goroutine ID, and picking at random with
// math/rand/v2 cost about 20 ns a call in BenchmarkObserveParallel, more
// than the atomic adds it spreads; a stack address costs nothing, and
// keeps each goroutine on one stripe
// whose cache lines its core already holds. The address is only hashed,
// never dereferenced, and a stack that moves merely changes stripe.
func (r *Recorder) stripe() *stripe {
	if r.mask == 0 {
		return &r.stripes[0]
	}
	var marker byte
	h := uint64(uintptr(unsafe.Pointer(&marker))) * 0x9e3779b97f4a7c15 // Fibonacci hashing
	return &r.stripes[(h>>40)&r.mask]
}

// Observe records one request: its operation, outcome, whether this node
// forwarded it to another node (false: served from its own store, which
// includes requests other nodes forwarded here) and how long it took. It
// takes no lock and allocates nothing.
func (r *Recorder) Observe(op transport.Op, res Result, forwarded bool, d time.Duration) {
	r.ObserveN(op, res, forwarded, d, 1)
}

// ObserveN records n requests alike in all of Observe's respects, such as
// the GETs of one pipeline, which end together: one update of each
// counter instead of n.
func (r *Recorder) ObserveN(op transport.Op, res Result, forwarded bool, d time.Duration, n int) {
	if r == nil || n <= 0 {
		return
	}
	i := int(op)
	if i >= MaxOps {
		i = 0
	}
	if int(res) >= NumResults {
		res = Error
	}
	route := 0
	if forwarded {
		route = 1
	}
	if d < 0 {
		d = 0
	}
	c := &r.stripe().cells[i][route]
	c.results[res].Add(uint64(n))
	c.buckets[bucketOf(d)].Add(uint64(n))
	c.sumNanos.Add(uint64(d) * uint64(n))
}

// AddBytes records bytes received (in) and sent (out) on behalf of
// requests. Negative values are ignored. It takes no lock and allocates
// nothing.
func (r *Recorder) AddBytes(in, out int) {
	if r == nil {
		return
	}
	s := r.stripe()
	if in > 0 {
		s.bytesIn.Add(uint64(in))
	}
	if out > 0 {
		s.bytesOut.Add(uint64(out))
	}
}

// Counts are the counters of one operation on one route.
type Counts struct {
	// Results counts requests by outcome, indexed by Result.
	Results [NumResults]uint64
	// Buckets counts requests by latency: Buckets[i] counts those slower
	// than Bounds()[i-1] and at most Bounds()[i]; the last counts those
	// slower than every bound. They are not cumulative.
	Buckets [NumBuckets]uint64
	// Sum is the total latency of the requests counted.
	Sum time.Duration
}

// Requests returns the number of requests counted, whatever their result.
func (c *Counts) Requests() uint64 {
	var n uint64
	for _, v := range c.Results {
		n += v
	}
	return n
}

// Observations returns the number of latencies counted: the sum of
// Buckets. It equals Requests except for updates that raced with the
// snapshot.
func (c *Counts) Observations() uint64 {
	var n uint64
	for _, v := range c.Buckets {
		n += v
	}
	return n
}

// Quantile estimates the q-quantile (0 < q <= 1) of the latencies as the
// upper bound of the bucket it falls in, the precision a status page
// needs. It returns 0 when nothing was counted, and the largest bound
// (not infinity) when the quantile lies beyond it.
func (c *Counts) Quantile(q float64) time.Duration {
	total := c.Observations()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, v := range c.Buckets {
		seen += v
		if seen >= rank {
			if i < len(bounds) {
				return bounds[i]
			}
			break
		}
	}
	return bounds[len(bounds)-1]
}

// add folds o into c.
func (c *Counts) add(o *Counts) {
	for i := range c.Results {
		c.Results[i] += o.Results[i]
	}
	for i := range c.Buckets {
		c.Buckets[i] += o.Buckets[i]
	}
	c.Sum += o.Sum
}

// OpCounts are one operation's counters.
type OpCounts struct {
	// Op is the operation; 0 stands for every operation counted as
	// "other" (see MaxOps).
	Op transport.Op
	// Local counts the requests this node served from its own store;
	// Forwarded those it sent on to another node.
	Local, Forwarded Counts
}

// Name returns the operation's name as used in metric labels.
func (o *OpCounts) Name() string {
	if o.Op == 0 {
		return "other"
	}
	return o.Op.String()
}

// Total returns the counters of both routes added together.
func (o *OpCounts) Total() Counts {
	t := o.Local
	t.add(&o.Forwarded)
	return t
}

// Snapshot is a copy of a Recorder's counters at one moment. Each counter
// is read atomically, but not all of them at the same instant: a request
// recorded during the copy may be counted in some of them only.
type Snapshot struct {
	// Ops holds every operation that was recorded at least once, in
	// operation order ("other" first).
	Ops []OpCounts
	// BytesIn and BytesOut are the totals passed to AddBytes.
	BytesIn, BytesOut uint64
}

// Requests returns the number of requests counted over every operation
// and route.
func (s *Snapshot) Requests() uint64 {
	var n uint64
	for i := range s.Ops {
		n += s.Ops[i].Local.Requests() + s.Ops[i].Forwarded.Requests()
	}
	return n
}

// Snapshot copies the counters. It is meant for scrapes and status pages,
// not hot paths: it reads every counter of every stripe. A nil Recorder
// returns an empty Snapshot.
func (r *Recorder) Snapshot() Snapshot {
	var s Snapshot
	if r == nil {
		return s
	}
	var all [MaxOps]OpCounts
	for si := range r.stripes {
		st := &r.stripes[si]
		s.BytesIn += st.bytesIn.Load()
		s.BytesOut += st.bytesOut.Load()
		for op := range st.cells {
			for route := range st.cells[op] {
				dst := &all[op].Local
				if route == 1 {
					dst = &all[op].Forwarded
				}
				readCell(dst, &st.cells[op][route])
			}
		}
	}
	for op := range all {
		o := &all[op]
		if o.Local.Observations()+o.Forwarded.Observations()+o.Local.Requests()+o.Forwarded.Requests() == 0 {
			continue
		}
		o.Op = transport.Op(op)
		s.Ops = append(s.Ops, *o)
	}
	return s
}

// readCell adds the current values of src to dst.
func readCell(dst *Counts, src *cell) {
	for i := range src.results {
		dst.Results[i] += src.results[i].Load()
	}
	for i := range src.buckets {
		dst.Buckets[i] += src.buckets[i].Load()
	}
	dst.Sum += time.Duration(src.sumNanos.Load())
}
