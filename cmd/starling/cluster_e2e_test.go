package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/client/clienttest"
)

// This file starts starling processes directly (not through the script)
// to test replication and rebalancing as separate processes over loopback.

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// binary builds cmd/starling once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "starling-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "starling")
		out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// proc is one starling process.
type proc struct {
	name, data, gossip, resp string
	cmd                      *exec.Cmd
	exited                   chan struct{}
	log                      *os.File
}

type procCluster struct {
	t     *testing.T
	bin   string
	dir   string
	flags []string
	procs map[string]*proc
	seeds []string
}

func freePort(t *testing.T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		// Below Linux's ephemeral range (32768+): a port picked there could
		// be taken as the source port of some outgoing connection before
		// the node binds it. Never the same port twice in one test binary.
		port := 20000 + rand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		u, err := net.ListenPacket("udp", addr) // gossip needs UDP on the same port
		if err != nil {
			continue
		}
		u.Close()
		handedOut.ports[port] = true
		return addr
	}
	t.Fatal("no free port")
	return ""
}

// handedOut remembers the ports freePort returned, so two nodes of a test
// binary never get the same one.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

func newProcCluster(t *testing.T, flags ...string) *procCluster {
	c := &procCluster{t: t, bin: binary(t), dir: t.TempDir(), flags: flags, procs: map[string]*proc{}}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.kill()
		}
		if t.Failed() {
			c.logTails(60)
		}
	})
	return c
}

// logTails logs the last n lines of every node's log, so that a failure in
// CI, whose temporary directory is gone afterwards, shows what the nodes
// saw.
func (c *procCluster) logTails(n int) {
	names := make([]string, 0, len(c.procs))
	for name := range c.procs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(c.dir, name+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		c.t.Logf("%s.log, last %d lines:\n%s", name, min(n, len(lines)), strings.Join(lines[max(0, len(lines)-n):], "\n"))
	}
}

// start launches (or relaunches, same ports) the named node, with every
// node this cluster has known as its seeds.
func (c *procCluster) start(name string) *proc {
	c.t.Helper()
	if c.procs[name] == nil {
		c.reserve(name)
	}
	return c.startJoin(name, c.seeds)
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.log.Close()
	}
}

// stop sends SIGTERM (graceful hand-off and leave) and waits for exit.
func (c *procCluster) stop(p *proc) time.Duration {
	c.t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		c.t.Fatalf("%s did not exit within 60s of SIGTERM", p.name)
	}
	p.log.Close()
	return time.Since(start)
}

func (c *procCluster) client(p *proc) *client.Client {
	c.t.Helper()
	cfg := client.DefaultConfig()
	cfg.Addrs = []string{p.data}
	cfg.Smart = false // through this node, so its routing and forwarding are what is tested
	cl, err := client.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// waitMembers waits until every listed process reports exactly want alive members.
func (c *procCluster) waitMembers(want int, ps ...*proc) time.Duration {
	c.t.Helper()
	start := time.Now()
	for _, p := range ps {
		cl := c.client(p)
		for {
			ms, err := cl.Members(context.Background())
			alive := 0
			for _, m := range ms {
				if m.State == "alive" {
					alive++
				}
			}
			if err == nil && alive == want {
				break
			}
			if time.Since(start) > 60*time.Second {
				c.t.Fatalf("%s sees %d alive members (err %v), want %d; logs in %s", p.name, alive, err, want, c.dir)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return time.Since(start)
}

func key(i int) string   { return fmt.Sprintf("key-%06d", i) }
func value(i int) string { return fmt.Sprintf("value-%06d", i) }

const e2eKeys = 50000

func writeAll(t *testing.T, cl *client.Client) {
	t.Helper()
	start := time.Now()
	clienttest.Parallel(t, e2eKeys, func(i int) error {
		return cl.Set(context.Background(), key(i), []byte(value(i)), 0)
	})
	t.Logf("wrote %d keys in %v", e2eKeys, time.Since(start).Round(time.Millisecond))
}

func readAll(t *testing.T, cl *client.Client, via string) {
	t.Helper()
	clienttest.Parallel(t, e2eKeys, func(i int) error {
		v, err := cl.Get(context.Background(), key(i))
		if err != nil || string(v) != value(i) {
			return fmt.Errorf("get %s via %s = %q, %v; want %q", key(i), via, v, err, value(i))
		}
		return nil
	})
}

// Issue acceptance: 3 nodes, --replicas 2, 50,000 keys, kill -9 one node:
// every key is still readable through every survivor.
func TestE2EKillWithTwoReplicasLosesNothing(t *testing.T) {
	c := newProcCluster(t, "--replicas", "2")
	ps := []*proc{c.start("n1"), c.start("n2"), c.start("n3")}
	c.waitMembers(3, ps...)
	writeAll(t, c.client(ps[0]))
	ps[2].kill()
	start := time.Now()
	for _, p := range ps[:2] {
		readAll(t, c.client(p), p.name) // right away: no waiting for failure detection
	}
	t.Logf("all %d keys read through both survivors in %v after kill -9", e2eKeys, time.Since(start).Round(time.Millisecond))
}

// Issue acceptance: 3 nodes, --replicas 1, 50,000 keys, restart every node
// one at a time gracefully: every key is still readable.
func TestE2ERollingRestartWithOneReplicaLosesNothing(t *testing.T) {
	c := newProcCluster(t, "--replicas", "1")
	ps := []*proc{c.start("n1"), c.start("n2"), c.start("n3")}
	c.waitMembers(3, ps...)
	writeAll(t, c.client(ps[0]))
	for i, p := range ps {
		took := c.stop(p)
		others := []*proc{ps[(i+1)%3], ps[(i+2)%3]}
		c.waitMembers(2, others...)
		readAll(t, c.client(others[0]), others[0].name)
		ps[i] = c.start(p.name)
		d := c.waitMembers(3, ps...)
		t.Logf("%s: graceful stop (hand-off included) %v, rejoined in %v", p.name, took.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	for _, p := range ps {
		readAll(t, c.client(p), p.name)
	}
}

// Issue acceptance: a 4th node joins while a writer writes and a reader
// reads; the reader never misses a key it saw written nor reads an older
// value; about a quarter of the data moves; nobody keeps keys it neither
// owns nor replicates.
func TestE2EJoinUnderLoad(t *testing.T) {
	c := newProcCluster(t, "--replicas", "2")
	ps := []*proc{c.start("n1"), c.start("n2"), c.start("n3")}
	c.waitMembers(3, ps...)
	const keys = 20000
	w := c.client(ps[0])
	clienttest.Parallel(t, keys, func(i int) error { return w.Set(context.Background(), key(i), []byte("0"), 0) })

	var acked [keys]atomic.Int64
	stop := make(chan struct{})
	var bad atomic.Int64
	var firstBad atomic.Value
	report := func(err error) {
		if bad.Add(1) == 1 {
			firstBad.Store(err.Error())
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for round := int64(1); ; round++ {
			for i := 0; i < keys; i += 7 {
				select {
				case <-stop:
					return
				default:
				}
				if err := w.Set(context.Background(), key(i), []byte(fmt.Sprint(round)), 0); err != nil {
					report(err)
					continue
				}
				acked[i].Store(round)
			}
		}
	})
	r := c.client(ps[1])
	wg.Go(func() {
		seen := make([]int64, keys)
		for {
			for i := 0; i < keys; i += 7 {
				select {
				case <-stop:
					return
				default:
				}
				floor := acked[i].Load()
				v, err := r.Get(context.Background(), key(i))
				if err != nil {
					report(fmt.Errorf("get %s: %w", key(i), err))
					continue
				}
				var got int64
				fmt.Sscan(string(v), &got)
				if got < floor || got < seen[i] {
					report(fmt.Errorf("%s read %d, after seeing %d (acknowledged %d)", key(i), got, seen[i], floor))
				}
				seen[i] = got
			}
		}
	})
	n4 := c.start("n4")
	all := append(ps, n4)
	c.waitMembers(4, all...)
	// Keep the load on while the hand-off runs, until every node holds
	// exactly its share (2 copies of each key in total).
	cl := c.client(ps[0])
	deadline := time.Now().Add(60 * time.Second)
	var st []client.NodeStats
	for {
		var err error
		st, err = cl.Stats(context.Background())
		total := int64(0)
		for _, s := range st {
			total += s.Stats.Entries
		}
		if err == nil && len(st) == 4 && total == 2*keys {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entries did not settle at %d (2 per key): %+v", 2*keys, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d misses, errors or stale reads during the join; first: %v", n, firstBad.Load())
	}
	for _, s := range st {
		if s.Name == "n4" {
			frac := float64(s.Stats.Entries) / float64(2*keys)
			t.Logf("n4 holds %d of %d copies (%.3f; ideal 0.25)", s.Stats.Entries, 2*keys, frac)
			if frac < 0.25/1.2 || frac > 0.25*1.2 {
				t.Fatalf("n4 holds %.3f of the data, not within 1.2x of 0.25", frac)
			}
		}
	}
}

// Issue acceptance: a delete followed by a crash and rejoin of a replica
// does not bring the key back.
func TestE2EDeleteCrashRejoinDoesNotResurrect(t *testing.T) {
	c := newProcCluster(t, "--replicas", "2")
	ps := []*proc{c.start("n1"), c.start("n2"), c.start("n3")}
	c.waitMembers(3, ps...)
	cl := c.client(ps[0])
	ctx := context.Background()
	clienttest.Parallel(t, 1000, func(i int) error { return cl.Set(ctx, key(i), []byte(value(i)), 0) })
	ps[1].kill()
	clienttest.Parallel(t, 1000, func(i int) error { return cl.Delete(ctx, key(i)) })
	ps[1] = c.start("n2")
	c.waitMembers(3, ps...)
	for _, p := range ps {
		pc := c.client(p)
		clienttest.Parallel(t, 1000, func(i int) error {
			if _, err := pc.Get(ctx, key(i)); !errors.Is(err, client.ErrNotFound) {
				return fmt.Errorf("get %s via %s after delete, crash and rejoin: %v", key(i), p.name, err)
			}
			return nil
		})
	}
}

// benchSummary matches redis-benchmark -q's final line per test.
var benchSummary = regexp.MustCompile(`(SET|GET): [0-9.]+ requests per second(, p50=[0-9.]+ msec)?`)

// redisTool runs redis-cli or redis-benchmark against a node's RESP port.
func redisTool(t *testing.T, tool string, p *proc, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(p.resp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// The Redis tools users already have work against any node of a
// multi-process cluster.
func TestE2ERedisTools(t *testing.T) {
	for _, tool := range []string{"redis-cli", "redis-benchmark"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian package redis-tools; .ci/run installs it): %v", tool, err)
		}
	}
	c := newProcCluster(t)
	ps := []*proc{c.start("n1"), c.start("n2"), c.start("n3")}
	c.waitMembers(3, ps...)
	for _, step := range []struct {
		node int
		args []string
		want string
	}{
		{0, []string{"PING"}, "PONG"},
		{0, []string{"SET", "greeting", "hello", "EX", "60"}, "OK"},
		{2, []string{"GET", "greeting"}, "hello"},
		{1, []string{"TTL", "greeting"}, "60"},
		{2, []string{"INCRBY", "counter", "5"}, "5"},
		{0, []string{"INCR", "counter"}, "6"},
		{1, []string{"MSET", "a", "1", "b", "2", "c", "3"}, "OK"},
		{2, []string{"MGET", "a", "b", "c", "nope"}, "1\n2\n3"},
		{0, []string{"EXISTS", "a", "b", "nope"}, "2"},
		{1, []string{"DEL", "a", "b", "nope"}, "2"},
		{0, []string{"DBSIZE"}, "3"},
		{2, []string{"TYPE", "greeting"}, "string"},
		{1, []string{"GETSET", "c", "4"}, "3"},
		{2, []string{"GET", "nope"}, ""},
		{0, []string{"NOSUCHCOMMAND"}, "ERR unknown command 'NOSUCHCOMMAND', with args beginning with:"},
		{1, []string{"INCR", "greeting"}, "ERR value is not an integer or out of range"},
	} {
		got := redisTool(t, "redis-cli", ps[step.node], step.args...)
		if got != step.want && !(step.args[0] == "TTL" && (got == "59" || got == "60")) {
			t.Errorf("redis-cli -p <node%d> %v = %q, want %q", step.node+1, step.args, got, step.want)
		}
	}
	// Listing keys: redis-cli --scan walks SCAN's cursor, through any
	// node, over every member's keys; KEYS does the same in one reply.
	for i, args := range [][]string{{"--scan"}, {"--scan", "--pattern", "c*"}, {"KEYS", "*"}} {
		got := strings.Fields(redisTool(t, "redis-cli", ps[i], args...))
		slices.Sort(got)
		want := []string{"c", "counter", "greeting"}
		if len(args) == 3 && args[0] == "--scan" {
			want = want[:2]
		}
		if !slices.Equal(got, want) {
			t.Errorf("redis-cli -p <node%d> %v = %q, want %q", i+1, args, got, want)
		}
	}
	info := redisTool(t, "redis-cli", ps[1], "INFO")
	for _, field := range []string{"used_memory:", "maxmemory:", "connected_clients:", "keyspace_hits:", "starling_cluster_members:3"} {
		if !strings.Contains(info, field) {
			t.Errorf("INFO lacks %q", field)
		}
	}
	// A short, bounded redis-benchmark run through one node completes
	// without errors, pipelined and not.
	for _, pipeline := range []string{"1", "16"} {
		out := redisTool(t, "redis-benchmark", ps[0], "-t", "set,get", "-n", "20000", "-c", "20",
			"-d", "100", "-r", "10000", "-P", pipeline, "-q")
		summary := benchSummary.FindAllString(out, -1)
		if strings.Contains(strings.ToLower(out), "error") || len(summary) != 2 {
			t.Fatalf("redis-benchmark -P %s:\n%s", pipeline, out)
		}
		t.Logf("redis-benchmark -P %s through one of 3 nodes: %s", pipeline, strings.Join(summary, "; "))
	}
}
