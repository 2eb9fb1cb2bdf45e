package gossip

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait on a cluster condition. The conditions are
// normally met in milliseconds with DefaultFastConfig; the margin is for a
// loaded 2-core machine under -race.
const waitTimeout = 15 * time.Second

// waitUntil polls cond until it holds or waitTimeout passes.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	waitWithin(tb, what, waitTimeout, cond)
}

// waitWithin polls cond until it holds or timeout passes.
func waitWithin(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testLog returns a logger writing to the test's output at level, and stops
// writing once the test ends: memberlist's connection handlers can log a
// line after Shutdown returns, and writing to a finished test panics.
func testLog(tb testing.TB, level slog.Level) *slog.Logger {
	w := &stoppableWriter{w: tb.Output()}
	tb.Cleanup(w.stop) // registered first, so it runs after the nodes' Shutdown
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// stoppableWriter forwards writes until stopped, then drops them.
type stoppableWriter struct {
	mu      sync.Mutex
	w       io.Writer
	stopped bool
}

func (s *stoppableWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *stoppableWriter) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// testNode is a started Gossip whose events are collected with the time
// each arrived.
type testNode struct {
	*Gossip
	name string
	col  *collector
}

// collector reads a Gossip's events until the channel closes.
type collector struct {
	mu     sync.Mutex
	events []timedEvent
	closed bool
	done   chan struct{}
}

type timedEvent struct {
	Event
	at time.Time
}

func collect(ch <-chan Event) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ev := range ch {
			c.mu.Lock()
			c.events = append(c.events, timedEvent{Event: ev, at: time.Now()})
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
	}()
	return c
}

// find returns the first event of kind about member name at or after since.
func (c *collector) find(kind EventKind, name string, since time.Time) (timedEvent, bool) {
	return c.findWhere(since, func(e Event) bool { return e.Kind == kind && e.Member.Name == name })
}

// findWhere returns the first event at or after since that match accepts.
func (c *collector) findWhere(since time.Time, match func(Event) bool) (timedEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if !e.at.Before(since) && match(e.Event) {
			return e, true
		}
	}
	return timedEvent{}, false
}

// fastConfig returns DefaultFastConfig for a test node, publishing a
// DataAddr derived from the name so metadata can be checked. Tests of
// failure detection use it as is.
func fastConfig(tb testing.TB, name string, seeds ...string) Config {
	cfg := DefaultFastConfig()
	cfg.Name = name
	cfg.Seeds = seeds
	cfg.Meta = Meta{DataAddr: dataAddrOf(name), Proto: 1}
	cfg.Logger = testLog(tb, slog.LevelWarn)
	return cfg
}

// nodeConfig is fastConfig with a wider suspicion window, for the tests
// that are not about failure detection. With SuspicionMult 2, a node that
// does not refute a suspicion within 200 ms is declared dead; on a CPU-
// starved machine (other packages' tests, -race) that happens to live nodes,
// which then rejoin. Such flaps are harmless to a cluster but would turn
// "left" into "dead" in a test that checks it.
func nodeConfig(tb testing.TB, name string, seeds ...string) Config {
	cfg := fastConfig(tb, name, seeds...)
	cfg.SuspicionMult = 6
	return cfg
}

// dataAddrOf is the DataAddr nodeConfig publishes for name.
func dataAddrOf(name string) string {
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(10000+len(name)))
}

// startNode starts a node from cfg, collects its events and shuts it down
// when the test ends.
func startNode(tb testing.TB, cfg Config) *testNode {
	tb.Helper()
	g, err := Start(cfg)
	if err != nil {
		tb.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	return newTestNode(tb, g)
}

// newTestNode collects g's events and shuts g down when the test ends.
func newTestNode(tb testing.TB, g *Gossip) *testNode {
	n := &testNode{Gossip: g, name: g.cfg.Name, col: collect(g.Events())}
	tb.Cleanup(func() {
		_ = g.Shutdown()
		<-n.col.done
	})
	return n
}

// startNodeAt starts a node whose BindAddr is a fixed port that an earlier
// node of the test just released. Another process's outgoing connection can
// hold that port as its local port for a while; retry, and skip rather than
// fail if it stays taken, since the test cannot pick another port.
func startNodeAt(tb testing.TB, cfg Config) *testNode {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		g, err := Start(cfg)
		if err == nil {
			n := &testNode{Gossip: g, name: cfg.Name, col: collect(g.Events())}
			tb.Cleanup(func() {
				_ = g.Shutdown()
				<-n.col.done
			})
			return n
		}
		if !strings.Contains(err.Error(), "address already in use") {
			tb.Fatalf("Start(%s) at %s: %v", cfg.Name, cfg.BindAddr, err)
		}
		if time.Now().After(deadline) {
			tb.Skipf("port %s taken by another process meanwhile: %v", cfg.BindAddr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCluster starts n nodes (node-0 .. node-n-1) from newConfig (fastConfig
// or nodeConfig), all but the first seeded with the first, and waits until
// every node lists all of them and has delivered their joins as events.
func startCluster(tb testing.TB, n int, newConfig func(testing.TB, string, ...string) Config, mod func(*Config)) []*testNode {
	tb.Helper()
	nodes := make([]*testNode, 0, n)
	for i := range n {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].Addr()}
		}
		cfg := newConfig(tb, fmt.Sprintf("node-%d", i), seeds...)
		if mod != nil {
			mod(&cfg)
		}
		nodes = append(nodes, startNode(tb, cfg))
	}
	waitConverged(tb, nodes)
	waitJoinEvents(tb, nodes)
	return nodes
}

// waitJoinEvents waits until every node's collector holds an EventJoin for
// every other node. Members() runs ahead of Events(), so without this a
// test that acts right after convergence (a crash, a restart) could see
// the startup joins arrive later and mistake them for reactions to what it
// did.
func waitJoinEvents(tb testing.TB, nodes []*testNode) {
	tb.Helper()
	for _, n := range nodes {
		for _, other := range nodes {
			if other == n {
				continue
			}
			waitUntil(tb, fmt.Sprintf("%s to deliver EventJoin(%s)", n.name, other.name), func() bool {
				_, ok := n.col.find(EventJoin, other.name, time.Time{})
				return ok
			})
		}
	}
}

// waitConverged waits until every node lists exactly the given nodes.
func waitConverged(tb testing.TB, nodes []*testNode) {
	tb.Helper()
	want := make([]string, len(nodes))
	for i, n := range nodes {
		want[i] = n.name
	}
	waitUntil(tb, fmt.Sprintf("all nodes to list %v", want), func() bool {
		for _, n := range nodes {
			if !sameNames(n.Members(), want) {
				return false
			}
		}
		return true
	})
}

// sameNames reports whether members has exactly the names in want.
func sameNames(members []Member, want []string) bool {
	if len(members) != len(want) {
		return false
	}
	set := make(map[string]bool, len(want))
	for _, w := range want {
		set[w] = true
	}
	for _, m := range members {
		if !set[m.Name] {
			return false
		}
	}
	return true
}

// member returns the member called name from g's list.
func member(g *Gossip, name string) (Member, bool) {
	for _, m := range g.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// ourGoroutines returns the stacks of goroutines that belong to memberlist
// or to this package's Gossip (not the tests' own).
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "hashicorp/memberlist") ||
			strings.Contains(g, "starling/gossip.(*Gossip)") ||
			strings.Contains(g, "starling/gossip.collect") {
			out = append(out, g)
		}
	}
	return out
}

// ctxTimeout returns a context that ends after d and is cancelled when the
// test ends.
func ctxTimeout(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
