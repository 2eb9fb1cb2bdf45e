// Package clienttest drives a starling cluster through the client package
// in end-to-end tests: a paced Load that measures the longest stretch a
// steady client saw errors for, Counters whose final check tells a lost
// acknowledged write from an unacknowledged one that landed anyway,
// Increments that do the same for INCR and also catch an increment
// applied twice, Parallel, and Latest for fault watchers. The multi-process fault suite (cmd/starling) and the docker
// one (deploy) share it, so both measure failover the same way.
package clienttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
)

const (
	// loadMaxOps bounds the requests of one Load worker.
	loadMaxOps = 200000
	// loadPace is the pause between a worker's requests.
	loadPace = 2 * time.Millisecond
)

// Load runs paced workers, each issuing one request at a time, and records
// per worker the longest error window: from the start of the first failing
// request to the end of the next successful one. Every worker stops after
// 200,000 requests or maxTime, whichever comes first, if Halt has not
// stopped it already.
type Load struct {
	maxTime   time.Duration
	opTimeout time.Duration
	target    time.Duration // Halt warns of a longer window; 0: never
	stop      chan struct{}
	stopOnce  sync.Once
	wg        sync.WaitGroup

	total atomic.Int64 // requests issued so far, all workers

	mu      sync.Mutex
	windows map[string]time.Duration // worker -> longest error window
	errs    map[string]int
	ops     map[string]int
	slowest time.Duration // longest single request, failed or not
	first   []string      // first few errors, for the report
}

// NewLoad returns a Load whose workers run for at most maxTime and give
// each request opTimeout. Its workers are stopped when t ends, if the test
// did not get to Halt (it failed first).
func NewLoad(t testing.TB, maxTime, opTimeout time.Duration) *Load {
	l := &Load{
		maxTime:   maxTime,
		opTimeout: opTimeout,
		target:    time.Second,
		stop:      make(chan struct{}),
		windows:   map[string]time.Duration{},
		errs:      map[string]int{},
		ops:       map[string]int{},
	}
	t.Cleanup(l.halt)
	return l
}

// NoTarget stops Halt from warning of a window over the 1 s failover
// target, for requests that are not meant to fail over (an INCR whose
// owner may only be slow waits for it).
func (l *Load) NoTarget() { l.target = 0 }

// halt stops the workers and waits for them; it may be called again.
func (l *Load) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// Run starts a worker named name calling op(ctx, i) for i = 0, 1, ...
// until Halt.
func (l *Load) Run(name string, op func(ctx context.Context, i int) error) {
	l.wg.Go(func() {
		var (
			inErr    bool
			errStart time.Time
			worst    time.Duration
			nerr, i  int
			slowest  time.Duration
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
		for ; i < loadMaxOps && time.Since(began) < l.maxTime; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), l.opTimeout)
			err := op(ctx, i)
			cancel()
			l.total.Add(1)
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

// Warm waits until the workers have issued n requests, so that a fault
// lands on a load that is already running. It fails the test after 30 s.
func (l *Load) Warm(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.total.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("load issued %d requests in 30s, want %d", l.total.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Halt stops the workers, logs what each saw under label, and returns the
// longest error window any saw and the errors they saw in all.
func (l *Load) Halt(t testing.TB, label string) (worst time.Duration, errs int) {
	t.Helper()
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for _, w := range slices.Sorted(func(yield func(string) bool) {
		for w := range l.windows {
			if !yield(w) {
				return
			}
		}
	}) {
		worst = max(worst, l.windows[w])
		errs += l.errs[w]
		parts = append(parts, fmt.Sprintf("%s %d ops %d errors window %v", w, l.ops[w], l.errs[w], l.windows[w].Round(time.Millisecond)))
	}
	t.Logf("%s load: %s; slowest request %v", label, strings.Join(parts, "; "), l.slowest.Round(time.Millisecond))
	for _, e := range l.first {
		t.Logf("%s load error: %s", label, e)
	}
	if l.target > 0 && worst > l.target {
		t.Logf("%s: WARNING longest client error window %v exceeds the %v target", label, worst.Round(time.Millisecond), l.target)
	}
	return worst, errs
}

// bounds is what Counters and Increments share: per key a writer owns,
// the value (round or count) a correct cluster may read back at least (the
// last acknowledged) and at most (the last attempted).
type bounds struct {
	prefix    string
	opTimeout time.Duration
	attempted []atomic.Int64
	acked     []atomic.Int64
}

func newBounds(prefix string, n int, opTimeout time.Duration) bounds {
	return bounds{prefix: prefix, opTimeout: opTimeout, attempted: make([]atomic.Int64, n), acked: make([]atomic.Int64, n)}
}

// Len returns how many keys the writer owns.
func (b *bounds) Len() int { return len(b.acked) }

// Key returns the name of key j.
func (b *bounds) Key(j int) string { return fmt.Sprintf("%s-%04d", b.prefix, j) }

// check reads every key through cl and reports values outside their
// bounds or unreadable (the first five), and the keys concerned; via names
// cl in the errors, unit what the values count. A key nothing was
// attempted on may be absent if absentOK.
func (b *bounds) check(cl *client.Client, via, unit string, absentOK bool) (bad []string, _ error) {
	var errs []error
	for j := range b.acked {
		ctx, cancel := context.WithTimeout(context.Background(), b.opTimeout)
		v, err := cl.Get(ctx, b.Key(j))
		cancel()
		acked, attempted := b.acked[j].Load(), b.attempted[j].Load()
		if absentOK && attempted == 0 && errors.Is(err, client.ErrNotFound) {
			continue
		}
		var got int64
		if err == nil {
			_, err = fmt.Sscan(string(v), &got)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("get %s via %s: %w (acknowledged %d%s)", b.Key(j), via, err, acked, unit))
			bad = append(bad, b.Key(j))
		case got < acked || got > attempted:
			errs = append(errs, fmt.Errorf("get %s via %s = %d; acknowledged %d%s, attempted %d", b.Key(j), via, got, acked, unit, attempted))
			bad = append(bad, b.Key(j))
		}
		if len(errs) >= 5 {
			break
		}
	}
	return bad, errors.Join(errs...)
}

// Counters tracks, per key a writer owns, the last round attempted and
// the last acknowledged, so that a final read can tell a lost acknowledged
// write (a value below the acknowledged round) from an unacknowledged one
// that landed anyway (between acknowledged and attempted, which is fine).
type Counters struct {
	bounds
	ackedAt []atomic.Int64 // when the last acknowledged write returned, Unix ns
}

// NewCounters returns Counters for n keys named prefix-0000 and on; each
// read of Check gets opTimeout (the writes get their Load's).
func NewCounters(prefix string, n int, opTimeout time.Duration) *Counters {
	return &Counters{bounds: newBounds(prefix, n, opTimeout), ackedAt: make([]atomic.Int64, n)}
}

// Acked returns key j's last acknowledged round and when its write
// returned.
func (w *Counters) Acked(j int) (round int64, at time.Time) {
	return w.acked[j].Load(), time.Unix(0, w.ackedAt[j].Load())
}

// Preload writes round 0 to every key, each write bounded by the
// client's own Timeout.
func (w *Counters) Preload(t testing.TB, cl *client.Client) {
	t.Helper()
	Parallel(t, w.Len(), func(j int) error { return cl.Set(context.Background(), w.Key(j), []byte("0"), 0) })
}

// Writer returns a Load op that writes round i/n+1 to key i mod n.
func (w *Counters) Writer(cl *client.Client) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		j := i % len(w.acked)
		round := int64(i/len(w.acked) + 1)
		w.attempted[j].Store(round)
		if err := cl.Set(ctx, w.Key(j), []byte(fmt.Sprint(round)), 0); err != nil {
			return fmt.Errorf("set %s = %d: %w", w.Key(j), round, err)
		}
		w.acked[j].Store(round)
		w.ackedAt[j].Store(time.Now().UnixNano())
		return nil
	}
}

// Check reads every key through cl and reports acknowledged writes that
// are lost and values that were never written (the first five), and the
// keys concerned; via names cl in the errors.
func (w *Counters) Check(cl *client.Client, via string) (bad []string, _ error) {
	return w.check(cl, via, "", false)
}

// Increments is Counters for INCR: per key a writer owns, how many
// increments were attempted and how many acknowledged, so that a final
// read can tell a lost acknowledged increment (a count below the
// acknowledged ones) from an increment applied twice (above the
// attempted ones); unacknowledged increments may or may not have landed.
// A doubled increment hides behind a failed one on the same key, so the
// second check is only as sharp as the failures are few.
type Increments struct {
	bounds
}

// NewIncrements returns Increments for n keys named prefix-0000 and on,
// which must not exist yet; each read of Check gets opTimeout.
func NewIncrements(prefix string, n int, opTimeout time.Duration) *Increments {
	return &Increments{bounds: newBounds(prefix, n, opTimeout)}
}

// Preload increments every key once, each increment bounded by the
// client's own Timeout, so that every key exists before a fault.
func (w *Increments) Preload(t testing.TB, cl *client.Client) {
	t.Helper()
	Parallel(t, w.Len(), func(j int) error { return w.incr(context.Background(), cl, j) })
}

// Writer returns a Load op that increments key i mod n by one.
func (w *Increments) Writer(cl *client.Client) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error { return w.incr(ctx, cl, i%w.Len()) }
}

func (w *Increments) incr(ctx context.Context, cl *client.Client, j int) error {
	w.attempted[j].Add(1)
	if _, err := cl.Incr(ctx, w.Key(j), 1); err != nil {
		return fmt.Errorf("incr %s: %w", w.Key(j), err)
	}
	w.acked[j].Add(1)
	return nil
}

// Check reads every key through cl and reports counts below the
// acknowledged increments (lost) or above the attempted ones (applied
// twice), the first five, and the keys concerned; via names cl in the
// errors. A key never incremented must be absent.
func (w *Increments) Check(cl *client.Client, via string) (bad []string, _ error) {
	return w.check(cl, via, " increments", true)
}

// parallelWorkers is how many goroutines Parallel runs.
const parallelWorkers = 16

// Parallel runs fn(i) for i in [0, n) on a few goroutines and fails the
// test on the first error, once all have stopped (none starts another
// call after an error).
func Parallel(t testing.TB, n int, fn func(i int) error) {
	t.Helper()
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
	)
	for range parallelWorkers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// Latest waits for a value from each of chs — how long after a fault each
// watcher saw what it waited for, negative if it gave up — and returns the
// largest. A watcher that gave up fails the test, naming what.
func Latest(t testing.TB, what string, chs ...<-chan time.Duration) time.Duration {
	t.Helper()
	var worst time.Duration
	for _, ch := range chs {
		d := <-ch
		if d < 0 {
			t.Fatalf("%s: not seen by every watcher in time", what)
		}
		worst = max(worst, d)
	}
	return worst
}
