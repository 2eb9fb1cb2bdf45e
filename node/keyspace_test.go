package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

// With one copy per key a node counts its expiring keys exactly but
// estimates their average time to live from the first of them its walk
// meets, within a bounded walk. If the walk meets none, the node says it
// cannot tell (-1) rather than report an average of 0, which INFO would
// weigh by the count and so drag the cluster's average down.
func TestKeyspaceSampleMissingEveryExpiringKey(t *testing.T) {
	nodes := nodetest.StartCluster(t, 1, func(c *node.Config) {
		c.Replicas = 1
		c.Store.MaxMemory = 256 << 20
	})
	st := nodes[0].Store()
	for i := range 70_000 { // more than the walk's bound
		if err := st.Set(fmt.Sprintf("plain-%d", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	st.RangeKeys(func(k string, _ bool, _ int64) bool { order = append(order, k); return true })
	keyspace := func() *transport.Response {
		return nodes[0].Handle(context.Background(), &transport.Request{Op: transport.OpDBSize, Delta: 1})
	}
	later := time.Now().Add(1000 * time.Second).UnixNano()
	for _, k := range order[len(order)-5:] { // the last keys the walk reaches
		st.Expire(k, later)
	}
	if r := keyspace(); r.Int != 70_000 || r.Version != 5 || r.TTL != -1 {
		t.Fatalf("keys=%d expires=%d avg_ttl=%d; want 70000, 5 and -1 (unknown)", r.Int, r.Version, r.TTL)
	}
	st.Expire(order[0], later) // the first key the walk reaches
	if r := keyspace(); r.Version != 6 || r.TTL < 990_000 || r.TTL > 1_000_000 {
		t.Fatalf("expires=%d avg_ttl=%d; want 6 and a little under 1,000,000", r.Version, r.TTL)
	}
}
