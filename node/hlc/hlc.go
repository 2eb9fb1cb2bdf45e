// Package hlc is a hybrid logical clock: versions that follow wall time
// closely, never go backwards on one node, and order every write in the
// cluster, so replicas can apply "last writer wins" without coordination.
//
// A version is one uint64, compared as a plain integer:
//
//	| 42 bits: milliseconds since 2024-01-01 UTC | 14 bits: counter | 8 bits: node tag |
//
// 42 bits of milliseconds last until the year 2163. The counter orders
// writes within one millisecond (16384 of them; past that the clock borrows
// the next millisecond). The node tag breaks ties between two nodes that
// write in the same millisecond with the same counter; two nodes with the
// same tag still order deterministically, just not by node.
package hlc

import (
	"sync/atomic"
	"time"
)

const (
	tagBits     = 8
	counterBits = 14
	counterMax  = 1<<counterBits - 1
	// epochMillis is 2024-01-01T00:00:00Z in Unix milliseconds.
	epochMillis = 1704067200000
)

// Clock issues versions for one node. It is safe for concurrent use.
type Clock struct {
	tag uint64
	now func() time.Time

	// last is the highest version issued or observed, without the tag.
	// Updated by compare-and-swap: every write on the node takes a version,
	// so a mutex here would be a global lock on the write path.
	last atomic.Uint64
}

// New returns a clock whose versions carry tag (only its low 8 bits are
// used; derive it from the node name). now is the wall clock; nil means
// time.Now.
func New(tag uint8, now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{tag: uint64(tag), now: now}
}

// Now returns a version greater than every version this clock has issued
// or observed.
func (c *Clock) Now() uint64 { return c.At(c.now()) }

// At is Now for a caller that has just read the wall clock itself (wall):
// a server stamping a pipeline of writes reads the clock once for all of
// them. The version is still greater than every one issued or observed;
// wall only stands in for the clock's own reading, so it must come from
// the same clock (the one given to New) and be recent (a stale one makes
// the write lose to others it followed).
func (c *Clock) At(wall time.Time) uint64 {
	w := physical(wall) << (counterBits + tagBits)
	for {
		last := c.last.Load()
		next := last + 1<<tagBits // same millisecond, next counter
		if w > next {
			next = w
		}
		if c.last.CompareAndSwap(last, next) {
			return next | c.tag
		}
	}
}

// Observe moves the clock past a version seen from another node, so that
// this node's next write orders after it even if the other node's wall
// clock runs ahead.
func (c *Clock) Observe(v uint64) {
	v &^= 1<<tagBits - 1
	for {
		last := c.last.Load()
		if v <= last || c.last.CompareAndSwap(last, v) {
			return
		}
	}
}

// Time returns the wall-clock time a version was issued at, to the
// millisecond, for logs and debugging.
func Time(v uint64) time.Time {
	return time.UnixMilli(int64(v>>(counterBits+tagBits)) + epochMillis).UTC()
}

// Tag returns the node tag carried by a version.
func Tag(v uint64) uint8 { return uint8(v) }

func physical(t time.Time) uint64 {
	ms := t.UnixMilli() - epochMillis
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}
