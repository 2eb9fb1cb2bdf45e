package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
// runtime's only switch that keeps it awake (it then wakes every 10 ms
// while the node is idle); the runtime reads GODEBUG once, before main,
// so the node sets it by executing itself again.

// sysmonTrace is the schedtrace interval set: the largest the runtime
// accepts (milliseconds in an int32, about 24.8 days), so the trace it
// enables prints at most one line per interval. The first comes at start
// on a host up for longer than that: the runtime counts from boot.
const sysmonTrace = "2147483647"

// sysmonModes are the values of --sysmon.
var sysmonModes = []string{"awake", "default"}

// godebugSchedtrace returns the schedtrace GODEBUG (godebug) sets, read
// as the runtime reads it at start (runtime1.go's parsegodebug):
// comma-separated key=value fields, no spaces trimmed, a value taken only
// if it parses as an int32, the last one taken winning. set is false if
// the runtime takes none, so a node given a setting the runtime ignores
// still executes itself again.
func godebugSchedtrace(godebug string) (n int64, set bool) {
	for _, field := range strings.Split(godebug, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok || k != "schedtrace" {
			continue
		}
		if i, err := strconv.ParseInt(v, 10, 32); err == nil {
			n, set = i, true
		}
	}
	return n, set
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
// again, with the same arguments (os.Args: the second run parses them
// afresh, config file included) and GODEBUG's schedtrace set, unless
// GODEBUG already sets a schedtrace the runtime takes (the operator's
// choice wins, as with GOGC, and a process executed here sets one).
// configPath is --config's file, read once already: if a second run
// could not read it again (a pipe such as <(…), a FIFO), the node keeps
// Go's default instead. It returns only if it did not execute, and then
// logs the monitor's mode, and why it did not execute where it tried.
func keepSysmonAwake(logger *slog.Logger, mode, configPath string) error {
	if !slices.Contains(sysmonModes, mode) {
		return fmt.Errorf("--sysmon %q: want %s", mode, strings.Join(sysmonModes, " or "))
	}
	godebug := os.Getenv("GODEBUG")
	n, set := godebugSchedtrace(godebug)
	if mode == "awake" && !set {
		if err := rereadable(configPath); err != nil {
			logger.Warn("not executing again to keep the Go runtime's monitor thread awake: a second run could not read --config; running with Go's default (set GODEBUG=schedtrace="+sysmonTrace+" to keep it awake)", "err", err)
		} else {
			err := reexec(awakeEnviron(os.Environ()))
			logger.Warn("could not execute again to keep the Go runtime's monitor thread awake; running with Go's default", "err", err)
		}
	}
	logger.Info("runtime monitor", "awake", set && n > 0, "godebug", godebug)
	return nil
}

// rereadable returns an error unless path is empty or names a regular
// file that a second run of the program can read again from its start.
// On Linux, opening /dev/stdin or /dev/fd/N opens the file afresh; on
// the BSDs and macOS it duplicates the descriptor, whose read position
// the first run has moved to the end, so there nothing under /dev passes.
func rereadable(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if runtime.GOOS != "linux" {
		if real, err := filepath.EvalSymlinks(path); err != nil || strings.HasPrefix(real, "/dev/") || strings.HasPrefix(path, "/dev/") {
			return fmt.Errorf("%s may be a descriptor, read once already", path)
		}
	}
	return nil
}
