package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// The Go runtime's monitor thread (sysmon) parks whenever every goroutine
// of the process is idle, and the first system call after that wakes it,
// after which it polls every 20 µs for a millisecond or more. A cache node
// goes idle and busy again thousands of times a second, so on a core it
// shares (several nodes on one machine, a container with a CPU quota)
// each of those wake-ups and polls takes the core from the process that
// has work: with three nodes sharing one core, keeping the monitor awake
// cut their CPU per request in six of eight alternated pairs
// (docs/benchmarks.md, session 14). GODEBUG's schedtrace setting is the
// runtime's only switch that keeps it awake; the runtime reads GODEBUG
// once, before main, so the node sets it by executing itself again.

// sysmonTrace is the schedtrace interval set: the largest the runtime
// accepts (milliseconds in an int32, about 24.8 days), so the trace it
// enables prints at most one line per interval. The first comes at start
// on a host up for longer than that: the runtime counts from boot.
const sysmonTrace = "2147483647"

// sysmonModes are the values of --sysmon.
var sysmonModes = []string{"awake", "default"}

// godebugValue returns the value GODEBUG (godebug) gives key, and whether
// it gives one. Later settings win, as in the runtime.
func godebugValue(godebug, key string) (string, bool) {
	var value string
	found := false
	for _, field := range strings.Split(godebug, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if ok && k == key {
			value, found = v, true
		}
	}
	return value, found
}

// awakeEnviron returns environ with GODEBUG's schedtrace set to
// sysmonTrace, keeping every other setting.
func awakeEnviron(environ []string) []string {
	out := make([]string, 0, len(environ)+1)
	godebug := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v
			continue
		}
		out = append(out, kv)
	}
	if godebug != "" {
		godebug += ","
	}
	return append(out, "GODEBUG="+godebug+"schedtrace="+sysmonTrace)
}

// keepSysmonAwake applies --sysmon. For "awake" it executes this program
// again, with the same arguments and GODEBUG's schedtrace set, unless
// GODEBUG already sets schedtrace (the operator's choice wins, as with
// GOGC, and a process executed here sets it). It returns only if it did
// not execute: then it logs the monitor's mode, or why the re-execution
// failed (the node then runs with Go's default, which is correct, only
// slower on a shared core).
func keepSysmonAwake(logger *slog.Logger, mode string) error {
	switch mode {
	case "awake", "default":
	default:
		return fmt.Errorf("--sysmon %q: want %s", mode, strings.Join(sysmonModes, " or "))
	}
	v, set := godebugValue(os.Getenv("GODEBUG"), "schedtrace")
	if mode == "awake" && !set {
		err := reexec(awakeEnviron(os.Environ()))
		logger.Warn("could not execute again to keep the Go runtime's monitor thread awake; running with Go's default", "err", err)
		return nil
	}
	n, err := strconv.Atoi(v)
	logger.Info("runtime monitor", "awake", set && err == nil && n > 0, "godebug", os.Getenv("GODEBUG"))
	return nil
}
