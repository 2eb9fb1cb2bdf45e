package node_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

// TestHandoffThroughput measures how fast keys move on a join and on a
// graceful leave. It is a measurement, not a check, so it only runs when
// STARLING_HANDOFF_KEYS is set (e.g. 1000000):
//
//	STARLING_HANDOFF_KEYS=1000000 go test -run TestHandoffThroughput -v ./node/
func TestHandoffThroughput(t *testing.T) {
	keys, _ := strconv.Atoi(os.Getenv("STARLING_HANDOFF_KEYS"))
	if keys <= 0 {
		t.Skip("set STARLING_HANDOFF_KEYS to run this measurement")
	}
	const valueSize = 100
	big := func(c *node.Config) {
		c.Replicas = 1
		c.Store.MaxMemory = 2 << 30
		c.HandoffGrace = time.Minute
	}
	nodes := nodetest.StartCluster(t, 2, big)
	ctx := context.Background()
	value := make([]byte, valueSize)
	const batch = 512
	reqs := make([]*transport.Request, batch)
	resps := make([]*transport.Response, batch)
	start := time.Now()
	for i := 0; i < keys; i += batch {
		n := min(batch, keys-i)
		for j := range n {
			reqs[j] = &transport.Request{Op: transport.OpSet, Key: fmt.Sprintf("key-%09d", i+j), Value: value}
		}
		nodes[0].Do(ctx, reqs[:n], resps[:n])
		for j := range n {
			if err := resps[j].Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("loaded %d keys of %d bytes into 2 nodes in %v", keys, valueSize, time.Since(start).Round(time.Millisecond))

	// GET latency through node2 at rest, then while the join's hand-off runs.
	cl := newClient(t, nodes[1].Addr())
	probe := func(stop <-chan struct{}, max int) []time.Duration {
		var lat []time.Duration
		for i := 0; i < max; i++ {
			select {
			case <-stop:
				return lat
			default:
			}
			k := fmt.Sprintf("key-%09d", (i*7919)%keys)
			t0 := time.Now()
			if _, err := cl.Get(ctx, k); err != nil {
				t.Errorf("get %s: %v", k, err)
				return lat
			}
			lat = append(lat, time.Since(t0))
		}
		return lat
	}
	atRest := probe(nil, 5000)

	// Join: a third node takes about a third of the keys.
	cfg := nodetest.Config(t, "node3")
	big(&cfg)
	cfg.Gossip.Seeds = []string{nodes[0].GossipAddr()}
	start = time.Now()
	stopProbe := make(chan struct{})
	during := make(chan []time.Duration)
	go func() { during <- probe(stopProbe, 1<<30) }()
	joiner := nodetest.Start(t, cfg)
	nodetest.WaitConverged(t, append(nodes, joiner), 3)
	// Settled: every key held exactly once and the joiner's count stable.
	var last int64 = -1
	var stableSince time.Time
	nodetest.WaitFor(t, 10*time.Minute, func() bool {
		var total int64
		for _, nd := range append(nodes, joiner) {
			total += nd.Store().Stats().Entries
		}
		got := joiner.Store().Stats().Entries
		if total != int64(keys) || got == 0 || got != last {
			last, stableSince = got, time.Now()
			return false
		}
		return time.Since(stableSince) > 300*time.Millisecond
	}, "hand-off to the joiner to settle")
	close(stopProbe)
	duringJoin := <-during
	t.Logf("GET via node2, p50/p99/max: at rest %v / %v / %v (%d gets); during the join hand-off %v / %v / %v (%d gets)",
		pct(atRest, 50), pct(atRest, 99), pct(atRest, 100), len(atRest),
		pct(duringJoin, 50), pct(duringJoin, 99), pct(duringJoin, 100), len(duringJoin))
	moved := joiner.Store().Stats().Entries
	d := time.Since(start) - 300*time.Millisecond
	t.Logf("join: %d keys (%.1f MB) moved in %v: %.0f keys/s, %.1f MB/s", moved, float64(moved*(valueSize+13))/1e6,
		d.Round(time.Millisecond), float64(moved)/d.Seconds(), float64(moved*(valueSize+13))/1e6/d.Seconds())

	// Leave: node1 hands everything it has to the other two.
	held := nodes[0].Store().Stats().Entries
	start = time.Now()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := nodes[0].Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	d = time.Since(start)
	t.Logf("leave: %d keys (%.1f MB) handed off in %v: %.0f keys/s, %.1f MB/s", held, float64(held*(valueSize+13))/1e6,
		d.Round(time.Millisecond), float64(held)/d.Seconds(), float64(held*(valueSize+13))/1e6/d.Seconds())
	if got := nodes[1].Store().Stats().Entries + joiner.Store().Stats().Entries; got != int64(keys) {
		t.Fatalf("after the leave the survivors hold %d keys, want %d", got, keys)
	}
}

// pct returns the p-th percentile of lat (which it sorts).
func pct(lat []time.Duration, p int) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := min(len(lat)-1, len(lat)*p/100)
	return lat[i].Round(time.Microsecond)
}
