package node

import (
	"fmt"
	"math"
)

// GCSettings are the Go garbage collector's two knobs, as a process
// hosting a node should set them.
type GCSettings struct {
	// Percent is GOGC: the collector runs when the heap has grown by this
	// percentage since the last collection left it; negative is off.
	Percent int
	// Limit is GOMEMLIMIT, in bytes (math.MaxInt64 for none): past it the
	// collector runs as often as it must to stay under, whatever Percent
	// says.
	Limit int64
}

// String formats s for a log line.
func (s GCSettings) String() string {
	percent, limit := fmt.Sprint(s.Percent), "none"
	if s.Percent < 0 {
		percent = "off"
	}
	if s.Limit != math.MaxInt64 {
		limit = FormatSize(s.Limit)
	}
	return fmt.Sprintf("GOGC %s, memory limit %s", percent, limit)
}

// Cramped reports whether s's memory limit leaves less room above a store
// of maxMemory bytes than a node needs besides it: the collector would
// then run near constantly once the store is full.
func (s GCSettings) Cramped(maxMemory int64) bool {
	return s.Limit-maxMemory < gcLimitFloor
}

// Why the defaults differ from Go's (GOGC=100, no limit). A node's heap is
// mostly its store, and the collector's goal is twice the live heap:
//   - With a full store the goal is twice MaxMemory: a node with
//     --max-memory 256MiB grew to 520 MiB of RSS under a million SETs of
//     1 KB values. The limit holds it near the third more that the
//     deployment guide tells operators to leave: 399 MiB in the same run.
//   - With a small store the goal is a few MiB above the live heap, so the
//     garbage of forwarding (a decoded reply per forwarded request) starts
//     a collection several times a second. A larger GOGC costs a few MiB
//     there; measured on one core, a forwarded GET took 2-5% less time
//     with GOGC=400 (BenchmarkDoForwarded, three alternating pairs).
//   - In a container Go knows nothing of the memory limit, and a heap
//     past it is killed: the limit stays a tenth under the control
//     group's.
//
// The collector never holds the heap under a limit it cannot reach: past
// it, Go caps the collector at about half the CPU rather than spin, so a
// node with more live memory than the limit runs slower, not out of CPU.
const (
	// defaultGCPercent is GOGC for a node's process.
	defaultGCPercent = 400
	// gcLimitFloor is the limit's room for what is not the store: buffers,
	// goroutine stacks, the ring, hints, the runtime's own.
	gcLimitFloor = 64 << 20
)

// DefaultGC returns the garbage collector settings for a process hosting
// one node whose store may hold maxMemory bytes: GOGC=400, and a soft
// memory limit of maxMemory plus a third plus 64 MiB, or 90% of the
// process's control group limit if that is lower. It only computes them:
// applying them changes the whole process, which is its main function's
// business (the starling command does, leaving alone whichever of GOGC
// and GOMEMLIMIT the environment sets).
func DefaultGC(maxMemory int64) GCSettings {
	return defaultGC(maxMemory, containerMemory())
}

// defaultGC is DefaultGC for a control group limit of container bytes (0
// for none).
func defaultGC(maxMemory, container int64) GCSettings {
	limit := int64(math.MaxInt64)
	if maxMemory > 0 && maxMemory < (math.MaxInt64-gcLimitFloor)/4*3 {
		limit = maxMemory + maxMemory/3 + gcLimitFloor
	}
	if container > 0 {
		limit = min(limit, container/10*9)
	}
	return GCSettings{Percent: defaultGCPercent, Limit: limit}
}
