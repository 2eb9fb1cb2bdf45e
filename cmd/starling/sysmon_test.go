package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GODEBUG is read as the runtime reads it (runtime1.go's parsegodebug):
// a setting the runtime ignores must not stop the re-execution, and the
// log must say what the runtime took.
func TestGodebugSchedtrace(t *testing.T) {
	for _, tc := range []struct {
		godebug string
		n       int64
		set     bool
	}{
		{"", 0, false},
		{"madvdontneed=1", 0, false},
		{"scheddetail=1", 0, false},
		{"schedtrace=0", 0, true},
		{"madvdontneed=1,schedtrace=5", 5, true},
		{"schedtrace=1,schedtrace=2", 2, true},       // the last one taken wins
		{"schedtrace=1000,schedtrace=x", 1000, true}, // ...and x is not taken
		{"schedtrace=-1", -1, true},
		{"schedtrace=" + sysmonTrace, 2147483647, true},
		// The runtime ignores these: no spaces trimmed, nothing but an
		// int32 taken. The node executes again.
		{"schedtrace", 0, false},
		{"schedtrace=", 0, false},
		{"schedtrace=abc", 0, false},
		{" schedtrace=5", 0, false},
		{"madvdontneed=1, schedtrace=5", 0, false},
		{"schedtrace=5 ", 0, false},
		{"schedtrace=2147483648", 0, false},
	} {
		n, set := godebugSchedtrace(tc.godebug)
		if n != tc.n || set != tc.set {
			t.Errorf("godebugSchedtrace(%q) = %d, %v; want %d, %v", tc.godebug, n, set, tc.n, tc.set)
		}
	}
}

// The re-executed run keeps every other variable and GODEBUG setting.
func TestAwakeEnviron(t *testing.T) {
	got := awakeEnviron([]string{"A=1", "GODEBUG=madvdontneed=1", "B=2"})
	want := []string{"A=1", "B=2", "GODEBUG=madvdontneed=1,schedtrace=" + sysmonTrace}
	if !slices.Equal(got, want) {
		t.Errorf("with GODEBUG: got %q, want %q", got, want)
	}
	got = awakeEnviron([]string{"A=1"})
	want = []string{"A=1", "GODEBUG=schedtrace=" + sysmonTrace}
	if !slices.Equal(got, want) {
		t.Errorf("without GODEBUG: got %q, want %q", got, want)
	}
	if n, err := strconv.ParseInt(sysmonTrace, 10, 32); err != nil || n <= 0 {
		t.Errorf("sysmonTrace %s: the runtime parses schedtrace as a positive int32 (%v)", sysmonTrace, err)
	}
}

// TestStartKeepsSysmonAwake runs the binary: by default a node executes
// itself again with the monitor kept awake, under the same PID, and logs
// it once; GODEBUG's own schedtrace and --sysmon default keep Go's
// default, without executing again.
func TestStartKeepsSysmonAwake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/PID/environ")
	}
	bin := binary(t)
	for _, tc := range []struct {
		name      string
		godebug   string // "" leaves GODEBUG unset
		flags     []string
		config    string // "file", "stdin" (a pipe) or "stdin-file": --config gives max-memory 48MiB
		link      bool   // run the binary through a symbolic link named starling-link
		awake     bool
		wantDebug string // GODEBUG of the running node
	}{
		{name: "default", awake: true, wantDebug: "schedtrace=" + sysmonTrace},
		{name: "keeps other settings", godebug: "madvdontneed=1", awake: true, wantDebug: "madvdontneed=1,schedtrace=" + sysmonTrace},
		{name: "environment wins", godebug: "schedtrace=0", awake: false, wantDebug: "schedtrace=0"},
		{name: "flag", flags: []string{"--sysmon", "default"}, awake: false},
		{name: "a setting the runtime ignores", godebug: " schedtrace=5", awake: true, wantDebug: " schedtrace=5,schedtrace=" + sysmonTrace},
		// The second run reads a config file again...
		{name: "config file", config: "file", awake: true, wantDebug: "schedtrace=" + sysmonTrace},
		// ...and on Linux /dev/stdin too, reopened at its start, where it is
		// a file...
		{name: "config from stdin, a file", config: "stdin-file", awake: true, wantDebug: "schedtrace=" + sysmonTrace},
		// ...but could not read a pipe again: no second run.
		{name: "config from a pipe", config: "stdin", awake: false},
		// Started through a symbolic link, it keeps the link's name.
		{name: "through a link", link: true, awake: true, wantDebug: "schedtrace=" + sysmonTrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "node.log")
			logf, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			logged := func() string { b, _ := os.ReadFile(logPath); return string(b) }
			args := append([]string{"start", "--name", "solo", "--addr", freePort(t), "--gossip-addr", freePort(t)}, tc.flags...)
			const config = "max-memory: 48MiB\n"
			switch tc.config {
			case "file":
				path := filepath.Join(t.TempDir(), "starling.yaml")
				if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			case "stdin", "stdin-file":
				args = append(args, "--config", "/dev/stdin")
			}
			prog := bin
			if tc.link {
				prog = filepath.Join(t.TempDir(), "starling-link")
				if err := os.Symlink(bin, prog); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(prog, args...)
			switch tc.config {
			case "stdin":
				cmd.Stdin = strings.NewReader(config) // a pipe
			case "stdin-file":
				path := filepath.Join(t.TempDir(), "stdin.yaml")
				if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.Stdin = f
			}
			cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
				return strings.HasPrefix(kv, "GODEBUG=") || strings.HasPrefix(kv, "STARLING_")
			})
			if tc.godebug != "" {
				cmd.Env = append(cmd.Env, "GODEBUG="+tc.godebug)
			}
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			line := "awake=" + strconv.FormatBool(tc.awake)
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(logged(), `msg="memory bound"`) {
				if time.Now().After(deadline) {
					t.Fatalf("no start-up log within 20 s:\n%s", logged())
				}
				time.Sleep(10 * time.Millisecond)
			}
			out := logged()
			if n := strings.Count(out, `msg="runtime monitor"`); n != 1 || !strings.Contains(out, `msg="runtime monitor" `+line) {
				t.Errorf("want one %q log line, got %d such lines (and none with %s):\n%s", `runtime monitor `+line, n, line, out)
			}
			if tc.config != "" && !strings.Contains(out, `max_memory="48 MiB"`) {
				t.Errorf("the running node did not apply --config:\n%s", out)
			}
			// Named as before (ps, pgrep and cluster.sh find it by name).
			if comm, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm"); err != nil || strings.TrimSpace(string(comm)) != filepath.Base(prog) {
				t.Errorf("the node runs as %q (%v), want %q", comm, err, filepath.Base(prog))
			}
			env, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, kv := range strings.Split(string(env), "\x00") {
				if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
					got = v
				}
			}
			if got != tc.wantDebug {
				t.Errorf("the node (PID %d, the one started) runs with GODEBUG=%q, want %q", cmd.Process.Pid, got, tc.wantDebug)
			}
		})
	}
}
