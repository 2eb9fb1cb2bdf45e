package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/transport"
)

// Helpers for fault_e2e_test.go: processes started with chosen seeds,
// frozen and thawed, moved to new ports; membership and replica-count
// watchers; and a paced load that measures how long its clients see errors.

// opTimeout bounds one request of the fault tests' clients, so a request
// that hangs on a dead or frozen node shows up as an error window of at
// most this long rather than a stuck test.
const opTimeout = 2 * time.Second

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

// detected waits for every watcher and returns the latest (the time until
// all survivors dropped the victim); it fails if one gave up.
func detected(t *testing.T, what string, chs ...<-chan time.Duration) time.Duration {
	t.Helper()
	var worst time.Duration
	for _, ch := range chs {
		d := <-ch
		if d < 0 {
			t.Fatalf("%s: not seen by every survivor in time", what)
		}
		worst = max(worst, d)
	}
	return worst
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

// load runs paced workers, each issuing one request at a time, and
// records per worker the longest error window: from the start of the first
// failing request to the end of the next successful one. Every loop is
// bounded by loadMaxOps and loadMaxTime.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup

	total atomic.Int64 // requests issued so far, all workers

	mu      sync.Mutex
	windows map[string]time.Duration // worker -> longest error window
	errs    map[string]int
	ops     map[string]int
	slowest time.Duration // longest single request, failed or not
	first   []string      // first few errors, for the report
}

const (
	loadMaxOps  = 200000
	loadMaxTime = 90 * time.Second
	loadPace    = 2 * time.Millisecond
)

func newLoad() *load {
	return &load{stop: make(chan struct{}), windows: map[string]time.Duration{}, errs: map[string]int{}, ops: map[string]int{}}
}

// run starts a worker calling op(ctx, i) for i = 0, 1, ... until halt.
func (l *load) run(name string, op func(ctx context.Context, i int) error) {
	l.wg.Go(func() {
		var (
			inErr    bool
			errStart time.Time
			worst    time.Duration
			nerr     int
			slowest  time.Duration
			i        int
		)
		began := time.Now()
		defer func() {
			if inErr {
				worst = max(worst, time.Since(errStart))
			}
			l.mu.Lock()
			l.windows[name], l.errs[name], l.ops[name] = worst, nerr, i
			l.slowest = max(l.slowest, slowest)
			l.mu.Unlock()
		}()
		for ; i < loadMaxOps && time.Since(began) < loadMaxTime; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			err := op(ctx, i)
			l.total.Add(1)
			cancel()
			end := time.Now()
			slowest = max(slowest, end.Sub(start))
			switch {
			case err != nil:
				nerr++
				if !inErr {
					inErr, errStart = true, start
				}
				l.mu.Lock()
				if len(l.first) < 5 {
					l.first = append(l.first, fmt.Sprintf("%s at %s: %v", name, start.Format("15:04:05.000"), err))
				}
				l.mu.Unlock()
			case inErr:
				inErr = false
				worst = max(worst, end.Sub(errStart))
			}
			time.Sleep(loadPace)
		}
	})
}

// warm waits until the workers have issued n requests, so a fault lands
// on a load that is already running.
func (l *load) warm(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.total.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("load issued %d requests in 30s, want %d", l.total.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// halt stops the workers and returns the longest error window any saw.
func (l *load) halt(t *testing.T, label string) time.Duration {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	ws := slices.Sorted(func(yield func(string) bool) {
		for w := range l.windows {
			if !yield(w) {
				return
			}
		}
	})
	var parts []string
	for _, w := range ws {
		worst = max(worst, l.windows[w])
		parts = append(parts, fmt.Sprintf("%s %d ops %d errors window %v", w, l.ops[w], l.errs[w], l.windows[w].Round(time.Millisecond)))
	}
	t.Logf("%s load: %s; slowest request %v", label, strings.Join(parts, "; "), l.slowest.Round(time.Millisecond))
	for _, e := range l.first {
		t.Logf("%s load error: %s", label, e)
	}
	if worst > time.Second {
		t.Logf("%s: WARNING longest client error window %v exceeds the 1 s target", label, worst.Round(time.Millisecond))
	}
	return worst
}

// counters tracks, per key a writer owns, the last value attempted and the
// last value acknowledged, so that a final read can tell a lost
// acknowledged write (value below acked) from an unacknowledged one that
// landed anyway (between acked and attempted, which is fine).
type counters struct {
	prefix    string
	attempted []atomic.Int64
	acked     []atomic.Int64
}

func newCounters(prefix string, n int) *counters {
	return &counters{prefix: prefix, attempted: make([]atomic.Int64, n), acked: make([]atomic.Int64, n)}
}

func (w *counters) key(j int) string { return fmt.Sprintf("%s-%04d", w.prefix, j) }

// writer returns a load op that writes round i to key i mod n.
func (w *counters) writer(cl *client.Client) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		j := i % len(w.acked)
		round := int64(i/len(w.acked) + 1)
		w.attempted[j].Store(round)
		if err := cl.Set(ctx, w.key(j), []byte(fmt.Sprint(round)), 0); err != nil {
			return fmt.Errorf("set %s = %d: %w", w.key(j), round, err)
		}
		w.acked[j].Store(round)
		return nil
	}
}

// check reads every key through cl and reports acknowledged writes that
// are lost or values that were never written, and the keys concerned.
func (w *counters) check(cl *client.Client, via string) (bad []string, _ error) {
	var errs []error
	for j := range w.acked {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		v, err := cl.Get(ctx, w.key(j))
		cancel()
		acked, attempted := w.acked[j].Load(), w.attempted[j].Load()
		var got int64
		if err == nil {
			_, err = fmt.Sscan(string(v), &got)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("get %s via %s: %w (acknowledged %d)", w.key(j), via, err, acked))
			bad = append(bad, w.key(j))
		case got < acked || got > attempted:
			errs = append(errs, fmt.Errorf("get %s via %s = %d; acknowledged %d, attempted %d", w.key(j), via, got, acked, attempted))
			bad = append(bad, w.key(j))
		}
		if len(errs) >= 5 {
			break
		}
	}
	return bad, errors.Join(errs...)
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

// preload writes round 0 to every key the counters own.
func (w *counters) preload(t *testing.T, cl *client.Client) {
	t.Helper()
	parallel(t, len(w.acked), func(j int) error { return cl.Set(context.Background(), w.key(j), []byte("0"), 0) })
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
	parallel(t, n, func(i int) error { return cl.Set(context.Background(), key(i), []byte(value(i)), 0) })
}

// readKeys checks key(i) == value(i) for every i in [0, n) through cl.
func readKeys(t *testing.T, cl *client.Client, n int, via string) {
	t.Helper()
	parallel(t, n, func(i int) error {
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
