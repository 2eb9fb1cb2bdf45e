package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file drives the real binary and scripts/cluster.sh as a user would:
// separate processes talking over loopback.

type e2e struct {
	t          *testing.T
	dir        string // cluster dir: binary, logs, PIDs
	bin        string
	dataBase   int
	gossipBase int
	respBase   int
	httpBase   int
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process end-to-end test skipped in -short mode")
	}
	dir := t.TempDir()
	e := &e2e{t: t, dir: dir, bin: filepath.Join(dir, "starling")}
	bases := freePortRanges(t, 4, 3)
	e.dataBase, e.gossipBase, e.respBase, e.httpBase = bases[0], bases[1], bases[2], bases[3]
	return e
}

// freePortRanges finds count runs of n consecutive ports free on 127.0.0.1
// for both TCP and UDP, for the script's base+i layout.
func freePortRanges(t *testing.T, count, n int) []int {
	t.Helper()
	free := func(base int) bool {
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				return false
			}
			l.Close()
			u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				return false
			}
			u.Close()
		}
		return true
	}
	var bases []int
	for range 500 {
		// Each run gets its own slice of the port space, so runs never overlap.
		i := len(bases)
		span := 40000 / count
		b := 20000 + i*span + rand.IntN(span-n)
		if free(b) {
			if bases = append(bases, b); len(bases) == count {
				return bases
			}
		}
	}
	t.Fatal("no free port ranges on 127.0.0.1")
	return nil
}

func (e *e2e) env() []string {
	return append(os.Environ(),
		"STARLING_CLUSTER_DIR="+e.dir,
		fmt.Sprintf("STARLING_DATA_PORT=%d", e.dataBase),
		fmt.Sprintf("STARLING_GOSSIP_PORT=%d", e.gossipBase),
		fmt.Sprintf("STARLING_RESP_PORT=%d", e.respBase),
		fmt.Sprintf("STARLING_HTTP_PORT=%d", e.httpBase),
		"STARLING_GOSSIP_PROFILE=local",
		"STARLING_WAIT=60",
	)
}

func (e *e2e) dataAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", e.dataBase+i-1) }

// script runs scripts/cluster.sh with args and fails the test on error.
func (e *e2e) script(args ...string) string {
	e.t.Helper()
	out, err := e.run(exec.Command("bash", append([]string{"../../scripts/cluster.sh"}, args...)...))
	if err != nil {
		e.t.Fatalf("cluster.sh %s: %v\n%s\nlogs:\n%s", strings.Join(args, " "), err, out, e.logs())
	}
	return out
}

// starling runs the built binary and returns its stdout+stderr and exit code.
func (e *e2e) starling(args ...string) (string, int) {
	e.t.Helper()
	out, err := e.run(exec.Command(e.bin, args...))
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	e.t.Fatalf("starling %v: %v", args, err)
	return "", -1
}

func (e *e2e) run(cmd *exec.Cmd) (string, error) {
	cmd.Env = e.env()
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		return buf.String(), fmt.Errorf("timed out")
	}
}

func (e *e2e) logs() string {
	var b strings.Builder
	for i := 1; i <= 3; i++ {
		data, _ := os.ReadFile(filepath.Join(e.dir, fmt.Sprintf("node%d.log", i)))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "--- node%d\n%s\n", i, strings.Join(lines, "\n"))
	}
	return b.String()
}

// aliveMembers counts the rows in state "alive" that `starling members` prints.
func (e *e2e) aliveMembers(node int) int {
	out, code := e.starling("members", "--addr", e.dataAddr(node), "--timeout", "1s")
	if code != 0 {
		return -1
	}
	n := 0
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 4 && f[3] == "alive" {
			n++
		}
	}
	return n
}

func (e *e2e) waitMembers(node, want int, timeout time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	for e.aliveMembers(node) != want {
		if time.Since(start) > timeout {
			e.t.Fatalf("node%d does not see %d alive members after %v\n%s", node, want, timeout, e.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func TestEndToEndLocalCluster(t *testing.T) {
	e := newE2E(t)
	t.Cleanup(func() { e.run(exec.Command("bash", "../../scripts/cluster.sh", "down")) })

	out := e.script("up", "3")
	for i := 1; i <= 3; i++ {
		if !strings.Contains(out, e.dataAddr(i)) {
			t.Fatalf("cluster.sh up does not print node%d's address %s:\n%s", i, e.dataAddr(i), out)
		}
	}
	// The binary tunes the garbage collector to the store's bound unless
	// the environment does.
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		data, err := os.ReadFile(filepath.Join(e.dir, "node1.log"))
		if err != nil || !strings.Contains(string(data), `msg="garbage collector" settings="GOGC 400, memory limit `) {
			t.Fatalf("node1.log does not report the tuned garbage collector (%v):\n%s", err, data)
		}
	}
	// Safe to run twice: a second "up" refuses instead of starting duplicates.
	if out, err := e.run(exec.Command("bash", "../../scripts/cluster.sh", "up", "3")); err == nil {
		t.Fatalf("second 'up' succeeded while the cluster runs:\n%s", out)
	}

	// A recorded PID that is some other process — here node 2, a starling
	// too — is not node 3: status must not report node 3 up on it, and
	// down must not stop that process in node 3's name.
	pidFile := filepath.Join(e.dir, "node3.pid")
	own, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(filepath.Join(e.dir, "node2.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile, other, 0o644); err != nil {
		t.Fatal(err)
	}
	status := e.script("status")
	if err := os.WriteFile(pidFile, own, 0o644); err != nil {
		t.Fatal(err)
	}
	if row := statusRow(status, "node3"); !strings.HasSuffix(row, " down") {
		t.Fatalf("status with node3's PID file naming node2's process: node3 row %q, want down:\n%s", row, status)
	}
	if row := statusRow(e.script("status"), "node3"); !strings.HasSuffix(row, " up") {
		t.Fatalf("status with node3's own PID back: node3 row %q, want up", row)
	}

	// Issue acceptance: set through node 1, get through node 3.
	if out, code := e.starling("set", "--addr", e.dataAddr(1), "--ttl", "30s", "greeting", "hello"); code != 0 {
		t.Fatalf("set: exit %d: %s", code, out)
	}
	if out, code := e.starling("get", "--addr", e.dataAddr(3), "greeting"); code != 0 || out != "hello\n" {
		t.Fatalf("get via node3 = %q (exit %d), want hello", out, code)
	}
	// Many keys, so every node owns some and forwarding is exercised.
	for i := 0; i < 30; i++ {
		k, v := fmt.Sprintf("key-%d", i), fmt.Sprintf("value-%d", i)
		if out, code := e.starling("set", "--addr", e.dataAddr(1+i%3), k, v); code != 0 {
			t.Fatalf("set %s: exit %d: %s", k, code, out)
		}
		if out, code := e.starling("get", "--addr", e.dataAddr(1+(i+1)%3), k); code != 0 || out != v+"\n" {
			t.Fatalf("get %s = %q (exit %d)", k, out, code)
		}
	}
	// Listing: every key, through any node.
	out, code := e.starling("scan", "--addr", e.dataAddr(2), "--match", "key-*", "--count", "7")
	if keys := strings.Fields(out); code != 0 || len(slices.Compact(slices.Sorted(slices.Values(keys)))) != 30 {
		t.Fatalf("scan --match key-*: exit %d, %d keys, want 30: %q", code, len(keys), out)
	}
	if out, code := e.starling("del", "--addr", e.dataAddr(2), "greeting"); code != 0 {
		t.Fatalf("del: exit %d: %s", code, out)
	}
	out, code = e.starling("get", "--addr", e.dataAddr(1), "greeting")
	if code != exitNotFound || !strings.Contains(out, "not found") {
		t.Fatalf("get of a deleted key: exit %d %q; want exit %d and 'not found'", code, out, exitNotFound)
	}
	if out, code := e.starling("get", "--addr", "127.0.0.1:1", "--timeout", "2s", "x"); code != exitUnavailable {
		t.Fatalf("get from a dead address: exit %d %q; want %d", code, out, exitUnavailable)
	}
	if out, code := e.starling("get", "--addr", e.dataAddr(1)); code != exitUsage {
		t.Fatalf("get without a key: exit %d %q; want %d", code, out, exitUsage)
	}
	if out, code := e.starling("start", "--name", "bad", "--addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--peer-conns", "0"); code != exitUsage || !strings.Contains(out, "ConnsPerPeer 0") {
		t.Fatalf("start --peer-conns 0: exit %d %q; want %d and the bad setting named", code, out, exitUsage)
	}
	if n := e.aliveMembers(2); n != 3 {
		t.Fatalf("members via node2: %d alive, want 3", n)
	}

	// kill -9 node 2: the others drop it and keep serving keys they own.
	e.script("kill", "2")
	d := e.waitMembers(1, 2, 30*time.Second)
	e.waitMembers(3, 2, 30*time.Second)
	t.Logf("kill -9 of node2 detected by node1 after %v", d.Round(time.Millisecond))
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("after-kill-%d", i)
		if out, code := e.starling("set", "--addr", e.dataAddr(1), k, "v"); code != 0 {
			t.Fatalf("set %s with node2 dead: exit %d: %s", k, code, out)
		}
		if out, code := e.starling("get", "--addr", e.dataAddr(3), k); code != 0 {
			t.Fatalf("get %s with node2 dead: exit %d: %s", k, code, out)
		}
	}

	// The same node restarts with the same name and rejoins; the script
	// returns once it sees the other two.
	if out := e.script("start", "2"); !strings.Contains(out, "node2 is up; it sees all 3 running nodes") {
		t.Fatalf("start 2:\n%s", out)
	}
	d = e.waitMembers(1, 3, 30*time.Second)
	e.waitMembers(2, 3, 30*time.Second)
	t.Logf("restarted node2 seen by node1 after %v", d.Round(time.Millisecond))

	if out := e.script("status"); !strings.Contains(out, "node2") || strings.Contains(out, " down") {
		t.Fatalf("status after restart:\n%s", out)
	}
	out = e.script("down")
	if !strings.Contains(out, "stopped 3 node(s)") {
		t.Fatalf("down:\n%s", out)
	}
	if _, code := e.starling("get", "--addr", e.dataAddr(1), "--timeout", "1s", "x"); code != exitUnavailable {
		t.Fatalf("node1 still answers after down")
	}
}

// statusRow returns the line of cluster.sh status output for node name.
func statusRow(out, name string) string {
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
