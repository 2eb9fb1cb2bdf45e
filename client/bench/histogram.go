package bench

import (
	"math"
	"math/bits"
	"time"
)

// The histogram's layout: values below 2*subCount get a bucket each; above,
// every power of two is split into subCount buckets, so a bucket is never
// wider than 1/subCount of the values it holds (0.8% with 128).
const (
	subBits  = 7
	subCount = 1 << subBits
	// maxBits bounds recorded values to 2^40 ns (about 18 minutes);
	// larger ones are counted as that.
	maxBits    = 40
	maxValue   = 1<<maxBits - 1
	numBuckets = (maxBits - subBits + 1) * subCount
)

// Histogram records durations in fixed memory (about 35 KB) with at most
// 0.8% relative error, in the manner of HdrHistogram: log-linear buckets,
// so recording is an index computation and an increment. It is not safe
// for concurrent use: give each worker its own and Merge them at the end,
// which keeps locks off the measured path. The zero value is ready to use.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	sum    float64 // nanoseconds, for the mean
	min    int64
	max    int64
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v int64) int {
	switch {
	case v < 0:
		v = 0
	case v > maxValue:
		v = maxValue
	}
	e := max(0, bits.Len64(uint64(v))-subBits-1)
	return e*subCount + int(uint64(v)>>e)
}

// bucketRange returns the smallest and largest value that land in bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	e := i/subCount - 1
	m := int64(i%subCount + subCount)
	return m << e, (m+1)<<e - 1
}

// Record adds one observation of d.
func (h *Histogram) Record(d time.Duration) { h.RecordN(d, 1) }

// RecordN adds n observations of d, as for n pipelined requests that
// completed together.
func (h *Histogram) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	v := min(max(int64(d), 0), maxValue)
	h.counts[bucketOf(v)] += n
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total += n
	h.sum += float64(v) * float64(n)
}

// Merge adds every observation of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.total }

// Min returns the smallest observation, exactly (0 if empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest observation, exactly (0 if empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the average observation (0 if empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.total)))
}

// Quantile returns the value below or at which a fraction q (0 to 1) of the
// observations fall: the top of the bucket holding that rank, so it
// overstates by at most one bucket width (0.8%), and never exceeds Max.
// It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			_, hi := bucketRange(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
