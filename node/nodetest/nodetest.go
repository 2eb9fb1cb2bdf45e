// Package nodetest starts in-process starling clusters for tests: every node
// on 127.0.0.1 with ephemeral ports and the fast gossip profile, so a
// three-node cluster converges in well under a second.
package nodetest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starlingcache/starling/node"
)

// Config returns a node configuration for a test: fast gossip, ephemeral
// ports on loopback, warnings and errors logged through t.
func Config(t testing.TB, name string) node.Config {
	cfg := node.DefaultLocalConfig()
	cfg.Name = name
	cfg.Addr = "127.0.0.1:0"
	cfg.Gossip.BindAddr = "127.0.0.1:0"
	cfg.Store.MaxMemory = 64 << 20 // many nodes share one test process
	// Generous timeouts: tests run under -race on 2 shared cores, where a
	// healthy peer can take well over the production budget to answer.
	// Speed is measured by benchmarks, not by tests.
	cfg.ForwardTimeout = 5 * time.Second
	// Fast detection, but tolerant of a starved CPU: without this, members
	// of a loaded test machine are declared dead and rejoin.
	cfg.Gossip.SuspicionMult = 5
	cfg.ReplicaTimeout = 2 * time.Second
	w := &testWriter{t: t}
	// Registered before the node's own cleanup, so it runs after the node
	// has shut down: nothing logs to a finished test.
	t.Cleanup(w.close)
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// StartCluster starts n nodes named node1..nodeN, each joining node1, waits
// until every node's ring holds all n, and shuts them down when the test
// ends. mutate, if not nil, adjusts each node's configuration.
func StartCluster(t testing.TB, n int, mutate func(*node.Config)) []*node.Node {
	t.Helper()
	nodes := make([]*node.Node, 0, n)
	for i := 1; i <= n; i++ {
		cfg := Config(t, fmt.Sprintf("node%d", i))
		if i > 1 {
			cfg.Gossip.Seeds = []string{nodes[0].GossipAddr()}
		}
		if mutate != nil {
			mutate(&cfg)
		}
		nodes = append(nodes, Start(t, cfg))
	}
	WaitConverged(t, nodes, n)
	return nodes
}

// Start creates and starts one node and registers its shutdown with t.
func Start(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	nd, err := node.New(cfg)
	if err != nil {
		t.Fatalf("node.New(%s): %v", cfg.Name, err)
	}
	return StartNode(t, nd)
}

// StartNode starts a node built with node.New (say, after seeding its
// store) and registers its shutdown with t.
func StartNode(t testing.TB, nd *node.Node) *node.Node {
	t.Helper()
	if err := nd.Start(context.Background()); err != nil {
		t.Fatalf("start %s: %v", nd.Name(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := nd.Shutdown(ctx); err != nil {
			t.Logf("shutdown %s: %v", nd.Name(), err)
		}
	})
	return nd
}

// WaitConverged waits until every node's ring has exactly want members and
// all rings agree, failing the test after 20 seconds.
func WaitConverged(t testing.TB, nodes []*node.Node, want int) {
	t.Helper()
	WaitFor(t, 20*time.Second, func() bool {
		var version uint64
		for i, nd := range nodes {
			r := nd.Ring()
			if r.Len() != want {
				return false
			}
			if i == 0 {
				version = r.Version()
			} else if r.Version() != version {
				return false
			}
		}
		return true
	}, "%d nodes to agree on a ring of %d members", len(nodes), want)
}

// WaitFor polls cond until it holds, failing the test with the formatted
// message if timeout passes first. Tests wait on conditions, never on sleeps.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testWriter sends log output to t.Log so it appears only for failing
// tests, and drops it once the test is over (t.Log would panic then).
type testWriter struct {
	t testing.TB

	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
