package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"

	"github.com/starlingcache/starling/node"
)

// tuneGC sets this process's garbage collector for a node whose store may
// hold maxMemory bytes (node.DefaultGC), except for what GOGC or
// GOMEMLIMIT in the environment set (the runtime applied those at start,
// and an operator's choice wins), and logs what is in effect. It belongs
// here, not in node: it changes the whole process, which only main may.
func tuneGC(logger *slog.Logger, maxMemory int64) node.GCSettings {
	want, fromEnv := node.DefaultGC(maxMemory), envGC(os.Getenv)
	if !slices.Contains(fromEnv, "GOGC") {
		debug.SetGCPercent(want.Percent)
	}
	if !slices.Contains(fromEnv, "GOMEMLIMIT") {
		debug.SetMemoryLimit(want.Limit)
	}
	cur := currentGC()
	logger.Info("garbage collector", "settings", cur.String(), "from_environment", strings.Join(fromEnv, ","))
	if cur.Cramped(maxMemory) {
		logger.Warn("the memory limit leaves little room above --max-memory: once the store is full the garbage collector will run near constantly; lower --max-memory or raise the limit",
			"max_memory", node.FormatSize(maxMemory), "settings", cur.String())
	}
	return cur
}

// currentGC reads the garbage collector settings in effect.
func currentGC() node.GCSettings {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	// GOGC=off reads as the uint64 of -1.
	return node.GCSettings{Percent: int(int64(s[0].Value.Uint64())), Limit: int64(s[1].Value.Uint64())}
}

// envGC returns which of GOGC and GOMEMLIMIT the environment, read
// through getenv, sets. A value the runtime rejects still counts: the
// runtime then uses its own default, and the log says the environment
// decided.
func envGC(getenv func(string) string) []string {
	var set []string
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		if strings.TrimSpace(getenv(name)) != "" {
			set = append(set, name)
		}
	}
	return set
}
