package gossip

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkConvergence measures, with DefaultFastConfig on 127.0.0.1, how
// long the other members of an n-node cluster take to see a node join, leave
// gracefully, and crash: from the call (Start, Leave, Shutdown) until each
// other member has the event on its Events() channel. It reports the maximum
// and the median over the members, averaged over b.N clusters:
//
//	go test -run XXX -bench Convergence -benchtime 5x ./gossip
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{3, 10} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var sum [6]float64 // join max/median, leave ..., crash ...
			for range b.N {
				r := measureConvergence(b, n)
				for i := range sum {
					sum[i] += r[i]
				}
			}
			for i, name := range []string{"join-max", "join-median", "leave-max", "leave-median", "crash-max", "crash-median"} {
				b.ReportMetric(sum[i]/float64(b.N), name+"-ms")
			}
		})
	}
}

// measureConvergence runs one join, leave and crash on a fresh n-node
// cluster and returns max and median latencies in milliseconds.
func measureConvergence(b *testing.B, n int) [6]float64 {
	b.Helper()
	nodes := startCluster(b, n-1, fastConfig, nil)
	defer func() {
		for _, nd := range nodes {
			_ = nd.Shutdown()
		}
	}()
	seed := nodes[0].Addr()
	var r [6]float64

	start := time.Now()
	joiner := startNode(b, fastConfig(b, "joiner", seed))
	r[0], r[1] = latencies(b, nodes, EventJoin, "joiner", start)
	waitConverged(b, append(slices.Clone(nodes), joiner))

	start = time.Now()
	if err := joiner.Leave(ctxTimeout(b, waitTimeout)); err != nil {
		b.Fatalf("Leave: %v", err)
	}
	r[2], r[3] = latencies(b, nodes, EventLeave, "joiner", start)
	_ = joiner.Shutdown()

	victim := startNode(b, fastConfig(b, "victim", seed))
	waitConverged(b, append(slices.Clone(nodes), victim))
	start = time.Now()
	if err := victim.Shutdown(); err != nil {
		b.Fatal(err)
	}
	r[4], r[5] = latencies(b, nodes, EventLeave, "victim", start)
	return r
}

// latencies waits until every node got the event and returns the maximum
// and median delay since start, in milliseconds.
func latencies(b testing.TB, nodes []*testNode, kind EventKind, name string, start time.Time) (maxMS, medianMS float64) {
	b.Helper()
	ds := make([]time.Duration, 0, len(nodes))
	for _, nd := range nodes {
		waitUntil(b, fmt.Sprintf("%s to get %v(%s)", nd.name, kind, name), func() bool {
			_, ok := nd.col.find(kind, name, start)
			return ok
		})
		ev, _ := nd.col.find(kind, name, start)
		ds = append(ds, ev.at.Sub(start))
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return ms(ds[len(ds)-1]), ms(ds[len(ds)/2])
}
