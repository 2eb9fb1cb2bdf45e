package node_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starlingcache/starling/node"
)

// BenchmarkGroupGetHit measures Group.Get of cached keys on a 3-node
// cluster: a third are owned by the calling node, the rest cost one hop.
//
//	go test -run '^$' -bench GroupGetHit -benchtime 3s ./node/
func BenchmarkGroupGetHit(b *testing.B) {
	var loads atomic.Int64
	load := func(_ context.Context, key string) ([]byte, time.Duration, error) {
		loads.Add(1)
		return []byte("value-" + key), 0, nil
	}
	nodes, groups := startGroupCluster(b, 3, func(int) *node.GroupConfig {
		return &node.GroupConfig{Name: "bench", Loader: load, TTL: time.Hour}
	})
	_ = nodes
	const keys = 1000
	ctx := context.Background()
	for k := range keys {
		if _, err := groups[0].Get(ctx, strconv.Itoa(k)); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		g := groups[i%len(groups)]
		for pb.Next() {
			i++
			if _, err := g.Get(ctx, strconv.Itoa(i%keys)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if n := loads.Load(); n != keys {
		b.Errorf("%d loads, want %d", n, keys)
	}
}
