package gossip

import (
	"log/slog"
	"strings"
	"testing"
)

func TestParseLogLine(t *testing.T) {
	cases := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Marking n1 as failed, suspect timeout reached (0 peer confirmations)\n", slog.LevelInfo, "Marking n1 as failed, suspect timeout reached (0 peer confirmations)"},
		{"[INFO] memberlist: Suspect n1 has failed, no acks received\n", slog.LevelDebug, "Suspect n1 has failed, no acks received"},
		{"[WARN] memberlist: Refuting a dead message (from: n2)\n", slog.LevelWarn, "Refuting a dead message (from: n2)"},
		{"[ERR] memberlist: Failed to decode ping: x\n", slog.LevelError, "Failed to decode ping: x"},
		{"[ERROR] memberlist: Failed to compress payload: x\n", slog.LevelError, "Failed to compress payload: x"},
		{"[ERR] memberlist: Failed to send gossip to 1.2.3.4:5: refused\n", slog.LevelWarn, "Failed to send gossip to 1.2.3.4:5: refused"},
		{"[ERR] memberlist: Push/Pull with n1 failed: EOF\n", slog.LevelWarn, "Push/Pull with n1 failed: EOF"},
		{"[ERR] memberlist: Conflicting address for n1. Mine: a Theirs: b Old state: 2\n", slog.LevelWarn, "Conflicting address for n1. Mine: a Theirs: b Old state: 2"},
		{"[WARN] memberlist: Failed to send gossip to x: use of closed network connection\n", slog.LevelDebug, "Failed to send gossip to x: use of closed network connection"},
		{"[ERR] Failed to shutdown transport: x\n", slog.LevelError, "Failed to shutdown transport: x"},
		{"no level at all\n", slog.LevelInfo, "no level at all"},
		{"", slog.LevelInfo, ""},
		// A demotion never raises a level.
		{"[DEBUG] memberlist: Push/Pull with n1 failed\n", slog.LevelDebug, "Push/Pull with n1 failed"},
	}
	for _, tc := range cases {
		level, msg := parseLogLine(tc.line)
		if level != tc.level || msg != tc.msg {
			t.Errorf("parseLogLine(%q) = %v %q, want %v %q", tc.line, level, msg, tc.level, tc.msg)
		}
	}
}

func TestMemberlistLoggerWritesSlogRecords(t *testing.T) {
	var buf lockedBuffer
	l := newMemberlistLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Printf("[DEBUG] memberlist: hidden")
	l.Printf("[WARN] memberlist: shown %d", 42)
	out := buf.String()
	if strings.Contains(out, "hidden") {
		t.Errorf("debug line logged at info level: %s", out)
	}
	if !strings.Contains(out, `level=WARN msg="shown 42" component=memberlist`) {
		t.Errorf("warn line not routed: %s", out)
	}
}
