package node

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
)

// GCSettings are the Go garbage collector's two knobs, as a process
// hosting a node should set them.
type GCSettings struct {
	// Percent is GOGC: the collector runs when the heap has grown by this
	// percentage since the last collection left it.
	Percent int
	// Limit is GOMEMLIMIT, in bytes: past it the collector runs as often
	// as it must to stay under, whatever Percent says.
	Limit int64
}

// String formats s for a log line or an error.
func (s GCSettings) String() string {
	limit := "none"
	if s.Limit != math.MaxInt64 {
		limit = FormatSize(s.Limit)
	}
	return fmt.Sprintf("GOGC %d, memory limit %s", s.Percent, limit)
}

// Why the defaults differ from Go's (GOGC=100, no limit). A node's heap is
// mostly its store, and the collector's goal is twice the live heap:
//   - With a full store the goal is twice MaxMemory: a node with
//     --max-memory 256MiB grew to 520 MiB of RSS under a million SETs of
//     1 KB values. The limit holds it near the third more that the
//     deployment guide tells operators to leave: 399 MiB in the same run,
//     at the same SET rate (the collector ran about once per million SETs
//     either way).
//   - With a small store the goal is a few MiB above the live heap, so the
//     garbage of forwarding (a decoded reply per forwarded request) starts
//     a collection several times a second. A larger GOGC costs a few MiB
//     there; measured on one core, a forwarded GET took 2-5% less time
//     with GOGC=400 (BenchmarkDoForwarded, three alternating pairs).
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
// memory limit of maxMemory plus a third plus 64 MiB.
func DefaultGC(maxMemory int64) GCSettings {
	limit := int64(math.MaxInt64)
	if maxMemory > 0 && maxMemory < (math.MaxInt64-gcLimitFloor)/4*3 {
		limit = maxMemory + maxMemory/3 + gcLimitFloor
	}
	return GCSettings{Percent: defaultGCPercent, Limit: limit}
}

// TuneGC applies DefaultGC(maxMemory) to this process, except where the
// GOGC or GOMEMLIMIT environment variable is set: the runtime has applied
// those at start, and an operator's choice wins. It returns the settings
// in effect and the names of the variables it left alone.
//
// It changes process-wide state, so it is for a program's main function:
// a library or a test running several nodes in one process must not call
// it.
func TuneGC(maxMemory int64) (GCSettings, []string) {
	want, fromEnv := DefaultGC(maxMemory), envGC(os.Getenv)
	if !slices.Contains(fromEnv, "GOGC") {
		debug.SetGCPercent(want.Percent)
	}
	if !slices.Contains(fromEnv, "GOMEMLIMIT") {
		debug.SetMemoryLimit(want.Limit)
	}
	return currentGC(), fromEnv
}

// currentGC reads the settings in effect. Neither knob has a getter: a
// negative limit asks for the current one without changing it, and the
// percentage is read by setting it and putting it back at once.
func currentGC() GCSettings {
	cur := GCSettings{Limit: debug.SetMemoryLimit(-1)}
	cur.Percent = debug.SetGCPercent(100)
	debug.SetGCPercent(cur.Percent)
	return cur
}

// envGC returns which of GOGC and GOMEMLIMIT the environment, read
// through getenv, sets.
func envGC(getenv func(string) string) []string {
	var set []string
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		if strings.TrimSpace(getenv(name)) != "" {
			set = append(set, name)
		}
	}
	return set
}
