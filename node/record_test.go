package node_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/metrics"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

// TestPipelineMetricsCountEveryRequest sends one pipeline mixing more
// kinds of request (operation, outcome, served here or forwarded) than the
// batch counts apart at once, and checks that the node's counters moved by
// exactly one per request, under the right operation, outcome and route.
func TestPipelineMetricsCountEveryRequest(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) { c.Replicas = 1 })
	nd := nodes[0]
	ctx := context.Background()
	var reqs []*transport.Request
	for i := range 12 {
		key := fmt.Sprintf("rec-%d", i)
		if i%2 == 0 {
			reqs = append(reqs, &transport.Request{Op: transport.OpSet, Key: key, Value: []byte("v")})
		}
		reqs = append(reqs, &transport.Request{Op: transport.OpGet, Key: key})
		if i%3 == 0 {
			reqs = append(reqs, &transport.Request{Op: transport.OpDelete, Key: key})
		}
	}
	before := node.MetricsOf(nd)
	resps := make([]*transport.Response, len(reqs))
	nd.Do(ctx, reqs, resps)
	after := node.MetricsOf(nd)

	type cell struct {
		op  transport.Op
		fwd bool
		res metrics.Result
	}
	want := map[cell]uint64{}
	ring := nd.Ring()
	for i, req := range reqs {
		fwd := ring.Owners(req.Key, 1)[0] != nd.Name()
		want[cell{req.Op, fwd, metrics.ResultOf(resps[i].Code)}]++
	}
	if len(want) <= 4 {
		t.Fatalf("only %d kinds of request in the pipeline (%v): the test needs more than the batch groups at once", len(want), want)
	}
	counts := func(s metrics.Snapshot, op transport.Op, fwd bool) metrics.Counts {
		for _, o := range s.Ops {
			if o.Op == op {
				if fwd {
					return o.Forwarded
				}
				return o.Local
			}
		}
		return metrics.Counts{}
	}
	var total uint64
	for _, op := range []transport.Op{transport.OpGet, transport.OpSet, transport.OpDelete} {
		for _, fwd := range []bool{false, true} {
			b, a := counts(before, op, fwd), counts(after, op, fwd)
			var n uint64
			for res := range metrics.Result(metrics.NumResults) {
				got := a.Results[res] - b.Results[res]
				if w := want[cell{op, fwd, res}]; got != w {
					t.Errorf("%s forwarded=%v %s: counted %d, want %d", op, fwd, res, got, w)
				}
				n += got
			}
			if obs := a.Observations() - b.Observations(); obs != n {
				t.Errorf("%s forwarded=%v: %d latency observations for %d requests", op, fwd, obs, n)
			}
			total += n
		}
	}
	// (The node's own traffic, such as hand-off messages between members,
	// is counted under other operations.)
	if total != uint64(len(reqs)) {
		t.Errorf("counted %d requests, sent %d", total, len(reqs))
	}
}
