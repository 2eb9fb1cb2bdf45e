package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newMemberlistLogger returns a *log.Logger (what memberlist accepts) whose
// lines become slog records on l, tagged component=memberlist.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(&logWriter{log: l.With("component", "memberlist")}, "", 0)
}

// logWriter turns memberlist's "[LEVEL] memberlist: message" lines into slog
// records at the matching level.
type logWriter struct {
	log *slog.Logger
}

// Write logs one line. log.Logger calls it once per Printf, so p is one
// message; it never fails.
func (w *logWriter) Write(p []byte) (int, error) {
	level, msg := parseLogLine(string(p))
	if w.log.Enabled(context.Background(), level) {
		w.log.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

// levelPrefixes maps memberlist's level tags to slog levels. Untagged lines
// are logged at Info.
var levelPrefixes = []struct {
	tag   string
	level slog.Level
}{
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

// levelOverrides demote lines that are routine in a cluster where nodes come
// and go (the first match wins; a line is never promoted):
//   - every prober of a crashed node logs "Suspect ... has failed" at INFO,
//     hundreds of lines per crash in a big cluster; the one line per crash
//     that matters, "Marking ... as failed", stays at Info;
//   - failing to reach a peer that is crashing is a warning about that peer,
//     not an error of this node;
//   - "Conflicting address" is how a node restarted under the same name at
//     a new address is refused until DeadNodeReclaimTime has passed;
//   - sends on a socket closed by this node's own Shutdown are expected.
var levelOverrides = []struct {
	contains string
	level    slog.Level
}{
	{"use of closed network connection", slog.LevelDebug},
	{" has failed, no acks received", slog.LevelDebug},
	{"Failed to send gossip to ", slog.LevelWarn},
	{"Failed fallback TCP ping", slog.LevelWarn},
	{"Push/Pull with ", slog.LevelWarn},
	{"Conflicting address for ", slog.LevelWarn},
}

// parseLogLine splits a memberlist log line into its level and message,
// dropping the level tag, the "memberlist: " prefix and the newline.
func parseLogLine(line string) (slog.Level, string) {
	line = strings.TrimRight(line, "\r\n")
	level := slog.LevelInfo
	for _, p := range levelPrefixes {
		if rest, ok := strings.CutPrefix(line, p.tag); ok {
			level = p.level
			line = strings.TrimLeft(rest, " ")
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	for _, o := range levelOverrides {
		if strings.Contains(line, o.contains) {
			if o.level < level {
				level = o.level
			}
			break
		}
	}
	return level, line
}
