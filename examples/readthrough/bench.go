package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/starlingcache/starling/node"
)

// benchConfig is the -bench mode's workload: clients reading items on a
// Zipf distribution (a few hot items, a long tail), first straight from
// the database, then through a group on an in-process cluster whose TTL
// is short enough that keys expire and reload during the run.
type benchConfig struct {
	dsn      string
	clients  int
	duration time.Duration
	keys     int
	zipfS    float64
	ttl      time.Duration
	nodes    int
}

func defaultBenchConfig() benchConfig {
	return benchConfig{clients: 64, duration: 10 * time.Second, keys: 10000, zipfS: 1.1, ttl: 2 * time.Second, nodes: 3}
}

func (c *benchConfig) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.clients, "bench-clients", c.clients, "-bench: concurrent clients")
	fs.DurationVar(&c.duration, "bench-duration", c.duration, "-bench: length of each of the two runs")
	fs.IntVar(&c.keys, "bench-keys", c.keys, "-bench: items in the table")
	fs.Float64Var(&c.zipfS, "bench-zipf", c.zipfS, "-bench: Zipf exponent s (> 1; larger is more skewed)")
	fs.DurationVar(&c.ttl, "bench-ttl", c.ttl, "-bench: the group's TTL (keep it below -bench-duration, so keys expire during the run)")
	fs.IntVar(&c.nodes, "bench-nodes", c.nodes, "-bench: nodes in the in-process cluster")
}

func (c benchConfig) validate() error {
	switch {
	case c.clients < 1, c.keys < 2, c.nodes < 1:
		return errors.New("bench: clients and nodes must be at least 1, keys at least 2")
	case c.zipfS <= 1:
		return errors.New("bench: the Zipf exponent must be over 1")
	case c.duration <= 0, c.ttl <= 0:
		return errors.New("bench: duration and TTL must be positive")
	}
	return nil
}

// benchResult is one run's figures.
type benchResult struct {
	name     string
	requests int64
	errors   int64
	queries  int64
	elapsed  time.Duration
}

func runBench(ctx context.Context, c benchConfig, out io.Writer) error {
	if err := c.validate(); err != nil {
		return err
	}
	items, err := openItems(c.dsn)
	if err != nil {
		return err
	}
	defer items.Close()
	if err := items.seed(ctx, c.keys); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d clients, %d items, Zipf s=%.2f, %v per run; group TTL %v on %d in-process nodes\n",
		c.clients, c.keys, c.zipfS, c.duration, c.ttl, c.nodes)

	direct := measure(ctx, c, "database only", items, func(ctx context.Context, _ int, id string) error {
		_, err := items.get(ctx, id)
		return err
	})

	nodes, groups, err := startBenchCluster(ctx, c, items)
	defer func() {
		for _, nd := range nodes {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = nd.Shutdown(sctx)
			cancel()
		}
	}()
	if err != nil {
		return err
	}
	through := measure(ctx, c, "through the group", items, func(ctx context.Context, client int, id string) error {
		_, err := groups[client%len(groups)].Get(ctx, id)
		return err
	})

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\trequests/s\tDB queries/s\tqueries/request\terrors\t")
	for _, r := range []benchResult{direct, through} {
		s := r.elapsed.Seconds()
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.4f\t%d\t\n", r.name, float64(r.requests)/s, float64(r.queries)/s,
			float64(r.queries)/float64(max(r.requests, 1)), r.errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var st node.GroupStats
	for _, g := range groups {
		s := g.Stats()
		st.Hits += s.Hits
		st.Misses += s.Misses
		st.Coalesced += s.Coalesced
		st.Loads += s.Loads
		st.LoadTime += s.LoadTime
	}
	fmt.Fprintf(out, "group: %d hits, %d misses (%d coalesced onto another's load), %d loads, mean load %v\n",
		st.Hits, st.Misses, st.Coalesced, st.Loads, (st.LoadTime / time.Duration(max(st.Loads, 1))).Round(time.Microsecond))
	return nil
}

// measure runs c.clients clients doing op on Zipf-chosen items for
// c.duration and counts requests and the database queries they caused.
func measure(ctx context.Context, c benchConfig, name string, items *itemsDB, op func(ctx context.Context, client int, id string) error) benchResult {
	ctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	var requests, errs atomic.Int64
	q0 := items.queries.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range c.clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
			z := rand.NewZipf(r, c.zipfS, 1, uint64(c.keys-1))
			for ctx.Err() == nil {
				err := op(ctx, i, strconv.FormatUint(z.Uint64()+1, 10))
				if ctx.Err() != nil {
					return // cut short by the end of the run: not counted
				}
				requests.Add(1)
				if err != nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return benchResult{name: name, requests: requests.Load(), errors: errs.Load(),
		queries: items.queries.Load() - q0, elapsed: time.Since(start)}
}

// benchGrace is the bench cluster's HandoffGrace.
const benchGrace = 500 * time.Millisecond

// startBenchCluster starts c.nodes embedded nodes on loopback, each
// hosting the items group, and waits until they agree on the ring.
func startBenchCluster(ctx context.Context, c benchConfig, items *itemsDB) ([]*node.Node, []*node.Group, error) {
	var (
		nodes  []*node.Node
		groups []*node.Group
	)
	for i := range c.nodes {
		cfg := node.DefaultLocalConfig()
		cfg.Name = "bench-" + strconv.Itoa(i+1)
		cfg.Addr, cfg.Gossip.BindAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Store.MaxMemory = 256 << 20
		// A long-running cluster is not rebalancing: let the hand-off
		// window of the cluster's formation pass before measuring, so
		// misses are not first looked up on the previous owners.
		cfg.HandoffGrace = benchGrace
		if i > 0 {
			cfg.Gossip.Seeds = []string{nodes[0].GossipAddr()}
		}
		nd, err := node.New(cfg)
		if err != nil {
			return nodes, nil, err
		}
		g, err := nd.NewGroup(node.GroupConfig{Name: "items", Loader: items.load, TTL: c.ttl, NegativeTTL: c.ttl})
		if err != nil {
			return nodes, nil, err
		}
		if err := nd.Start(ctx); err != nil {
			return nodes, nil, err
		}
		nodes, groups = append(nodes, nd), append(groups, g)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		converged := true
		for _, nd := range nodes {
			converged = converged && nd.Ring().Len() == len(nodes)
		}
		if converged {
			select {
			case <-ctx.Done():
				return nodes, nil, ctx.Err()
			case <-time.After(benchGrace):
			}
			return nodes, groups, nil
		}
		if time.Now().After(deadline) {
			return nodes, nil, errors.New("bench: the in-process cluster did not converge in 30s")
		}
		select {
		case <-ctx.Done():
			return nodes, nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
