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

// TestHandoffWindowClosesOnReports: after a join, once every member has
// reported its hand-off pass done, the new owner stops fetching misses
// from previous owners long before HandoffGrace, and every key written
// before the join is still readable through every node.
func TestHandoffWindowClosesOnReports(t *testing.T) {
	grace := time.Minute // far beyond the test: only the reports can end it
	nodes := nodetest.StartCluster(t, 2, func(c *node.Config) { c.HandoffGrace = grace })
	ctx := context.Background()
	const keys = 500
	for i := range keys {
		if resp := nodes[0].Handle(ctx, &transport.Request{Op: transport.OpSet, Key: fmt.Sprintf("settle-%d", i), Value: []byte("v")}); resp.Code != transport.CodeOK {
			t.Fatalf("set: %+v", resp)
		}
	}
	cfg := nodetest.Config(t, "node3")
	cfg.HandoffGrace = grace
	cfg.Gossip.Seeds = []string{nodes[0].GossipAddr()}
	nodes = append(nodes, nodetest.Start(t, cfg))
	nodetest.WaitConverged(t, nodes, 3)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		open := 0
		for _, nd := range nodes {
			if node.InHandoff(nd) {
				open++
			}
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, nd := range nodes {
				t.Log(node.SettleState(nd))
			}
			t.Fatalf("%d nodes still in their hand-off window 20s after the join", open)
		}
	}
	for _, nd := range nodes {
		for i := range keys {
			k := fmt.Sprintf("settle-%d", i)
			if resp := nd.Handle(ctx, &transport.Request{Op: transport.OpGet, Key: k}); resp.Code != transport.CodeOK {
				t.Fatalf("get %s via %s after the window closed: %+v", k, nd.Name(), resp)
			}
		}
	}
}
