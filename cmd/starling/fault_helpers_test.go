package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/client/clienttest"
	"github.com/starlingcache/starling/transport"
)

// Helpers for fault_e2e_test.go: processes started with chosen seeds,
// frozen and thawed, moved to new ports; membership and replica-count
// watchers; and a paced load that measures how long its clients see errors.

// opTimeout bounds one request of the fault tests' clients, so a request
// that hangs on a dead or frozen node shows up as an error window of at
// most this long rather than a stuck test.
const opTimeout = 2 * time.Second

// loadMaxTime bounds every load worker of these tests.
const loadMaxTime = 90 * time.Second

// startJoin launches (or relaunches, same ports) the named node with join
// as its only seeds; an empty join starts a new cluster. Unlike start, it
// lets a test decide who can find whom.
func (c *procCluster) startJoin(name string, join []string) *proc {
	c.t.Helper()
	p := c.procs[name]
	if p == nil {
		p = c.reserve(name)
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	args := append([]string{"start", "--name", name, "--addr", p.data, "--gossip-addr", p.gossip,
		"--join", strings.Join(join, ","), "--resp-addr", p.resp, "--gossip-profile", "local", "--max-memory", "256MiB"}, c.flags...)
	p.cmd = exec.Command(c.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.log = logf
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.exited)
	return p
}

// reserve allocates ports for a node without starting it, so others can be
// given its gossip address as a seed before anything listens there.
func (c *procCluster) reserve(name string) *proc {
	c.t.Helper()
	p := &proc{name: name, data: freePort(c.t), gossip: freePort(c.t), resp: freePort(c.t)}
	c.procs[name] = p
	c.seeds = append(c.seeds, p.gossip)
	return p
}

// relocate gives a stopped node new data, gossip and RESP ports; the next
// start brings it back under the same name at the new address.
func (c *procCluster) relocate(p *proc) {
	c.t.Helper()
	p.data, p.gossip, p.resp = freePort(c.t), freePort(c.t), freePort(c.t)
	c.seeds = append(c.seeds, p.gossip)
}

// signal sends sig (SIGSTOP, SIGCONT) to a running node.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// gossipAddrs returns the gossip addresses of ps, for --join.
func gossipAddrs(ps ...*proc) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.gossip
	}
	return out
}

func names(ps ...*proc) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name
	}
	sort.Strings(out)
	return out
}

// aliveView returns the names p reports alive and the data address of each.
func aliveView(ctx context.Context, cl *client.Client) (alive []string, addrs map[string]string, err error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ms, err := cl.Members(ctx)
	if err != nil {
		return nil, nil, err
	}
	addrs = map[string]string{}
	for _, m := range ms {
		if m.State == "alive" {
			alive = append(alive, m.Name)
			addrs[m.Name] = m.DataAddr
		}
	}
	sort.Strings(alive)
	return alive, addrs, nil
}

// waitView waits until every node in ps reports exactly want alive (and,
// if check is set, until check accepts its view). It returns how long
// that took from since, or fails the test after timeout.
func (c *procCluster) waitView(since time.Time, timeout time.Duration, want []string, check func(addrs map[string]string) bool, ps ...*proc) time.Duration {
	c.t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(timeout)
	for _, p := range ps {
		cl := c.client(p)
		for {
			alive, addrs, err := aliveView(context.Background(), cl)
			if err == nil && slices.Equal(alive, want) && (check == nil || check(addrs)) {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s sees alive %v (err %v), want %v within %v; logs in %s", p.name, alive, err, want, timeout, c.dir)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return time.Since(since)
}

// copies returns the number of entries the named nodes hold in total, as
// the node behind cl lists them; ok is false if one did not answer.
func copies(ctx context.Context, cl *client.Client, want []string) (total int64, per map[string]int64, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	st, err := cl.Stats(ctx)
	if err != nil {
		return 0, nil, false
	}
	per = map[string]int64{}
	for _, s := range st {
		if slices.Contains(want, s.Name) && s.Err == "" {
			per[s.Name] = s.Stats.Entries
			total += s.Stats.Entries
		}
	}
	return total, per, len(per) == len(want)
}

// waitCopies waits until the nodes named by ps, asked through via, hold
// want entries in total (replicas × distinct keys: every key at its full
// replica count, and nobody keeping a copy it should have dropped). It
// returns the time from since, or fails after timeout.
func (c *procCluster) waitCopies(since time.Time, timeout time.Duration, via *proc, want int64, ps ...*proc) time.Duration {
	c.t.Helper()
	cl := c.client(via)
	ns := names(ps...)
	deadline := time.Now().Add(timeout)
	for {
		total, per, ok := copies(context.Background(), cl, ns)
		if ok && total == want {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("copies on %v = %d %v, want %d within %v; logs in %s", ns, total, per, want, timeout, c.dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watch polls p's member list from now on and returns a channel that
// yields, once, how long after t0 seen first accepted p's view of the
// alive members. It gives up (yielding -1) after timeout.
func (c *procCluster) watch(t0 time.Time, timeout time.Duration, p *proc, seen func(alive []string, addrs map[string]string) bool) <-chan time.Duration {
	cl := c.client(p)
	out := make(chan time.Duration, 1)
	go func() {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			alive, addrs, err := aliveView(context.Background(), cl)
			if err == nil && seen(alive, addrs) {
				out <- time.Since(t0)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		out <- -1
	}()
	return out
}

// watchGone is watch for the moment p stops listing victim as alive.
func (c *procCluster) watchGone(t0 time.Time, timeout time.Duration, p *proc, victim string) <-chan time.Duration {
	return c.watch(t0, timeout, p, func(alive []string, _ map[string]string) bool { return !slices.Contains(alive, victim) })
}

// smartClient returns a client that routes by its own copy of the ring
// and knows every node in ps as a way in.
func smartClient(t *testing.T, ps ...*proc) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Addrs = nil
	for _, p := range ps {
		cfg.Addrs = append(cfg.Addrs, p.data)
	}
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// versionString decodes a hybrid-logical-clock version (node/hlc: 42 bits
// of milliseconds since 2024-01-01 UTC, 14 bits of counter, 8 bits of
// node tag) so a report shows when, and by which node, a value was stamped.
func versionString(v uint64) string {
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	at := epoch.Add(time.Duration(v>>22) * time.Millisecond)
	return fmt.Sprintf("v%d (stamped %s, counter %d, node tag %d)", v, at.Local().Format("15:04:05.000"), (v>>8)&(1<<14-1), v&0xff)
}

// localCopies describes what each node in ps holds under k in its own
// store (value and version), for failure reports.
func localCopies(t *testing.T, k string, ps ...*proc) string {
	t.Helper()
	tc, err := transport.NewClient(transport.DefaultConfig())
	if err != nil {
		return err.Error()
	}
	defer tc.Close()
	var parts []string
	for _, p := range ps {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		resp, err := tc.Call(ctx, p.data, &transport.Request{Op: transport.OpLookup, Key: k})
		cancel()
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("%s: %v", p.name, err))
		case resp.Error() != nil:
			parts = append(parts, fmt.Sprintf("%s: %v", p.name, resp.Error()))
		default:
			parts = append(parts, fmt.Sprintf("%s: %q %s", p.name, resp.Value, versionString(resp.Version)))
		}
	}
	return strings.Join(parts, ", ")
}

// reader returns a load op that reads key(i mod n) and expects value(i mod n).
func reader(cl *client.Client, n int) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		k := (i * 7919) % n
		v, err := cl.Get(ctx, key(k))
		if err != nil {
			return fmt.Errorf("get %s: %w", key(k), err)
		}
		if string(v) != value(k) {
			return fmt.Errorf("get %s = %q, want %q", key(k), v, value(k))
		}
		return nil
	}
}

// writeKeys writes value(i) under key(i) for i in [0, n) through cl.
func writeKeys(t *testing.T, cl *client.Client, n int) {
	t.Helper()
	clienttest.Parallel(t, n, func(i int) error { return cl.Set(context.Background(), key(i), []byte(value(i)), 0) })
}

// readKeys checks key(i) == value(i) for every i in [0, n) through cl.
func readKeys(t *testing.T, cl *client.Client, n int, via string) {
	t.Helper()
	clienttest.Parallel(t, n, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		v, err := cl.Get(ctx, key(i))
		if err != nil || string(v) != value(i) {
			return fmt.Errorf("get %s via %s = %q, %v; want %q", key(i), via, v, err, value(i))
		}
		return nil
	})
}

// summary logs the line the closing note lifts figures from.
func summary(t *testing.T, name string, detect, converge, window time.Duration, extra ...string) {
	t.Helper()
	ms := func(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
	line := fmt.Sprintf("FAULT %s: detect=%s converge=%s max_error_window=%s", name, ms(detect), ms(converge), ms(window))
	if len(extra) > 0 {
		line += " " + strings.Join(extra, " ")
	}
	t.Log(line)
}
