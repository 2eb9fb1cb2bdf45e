package node_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

// A pipeline served through DoArena gets the replies of the keys it
// forwards in the arena too, as those of the keys it serves itself: the
// owners' replies are decoded into it, not allocated (BenchmarkDoForwarded
// .../arena: 0 allocations per pipeline, from 8; not asserted here, since
// -race makes sync.Pool drop objects at random and every node of the
// process allocates alongside). The replies must be right pipeline after
// pipeline on the same arena, with both other nodes answering.
func TestForwardedRepliesLandInTheArena(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) { c.Replicas = 1 })
	nd := nodes[0]
	ctx := context.Background()
	value := func(k string) []byte { return bytes.Repeat([]byte(k+"|"), 100/(len(k)+1)+1) }
	const keys = 64
	forwarded := map[string]bool{}
	for i := range keys {
		k := fmt.Sprintf("arena:%d", i)
		if resp := nd.Handle(ctx, &transport.Request{Op: transport.OpSet, Key: k, Value: value(k)}); resp.Code != transport.CodeOK {
			t.Fatalf("set %s: %+v", k, resp)
		}
		if owner := nd.Ring().Owner(k); owner != nodes[0].Name() {
			forwarded[owner] = true
		}
	}
	if len(forwarded) != 2 {
		t.Fatalf("the keys' owners other than the entry: %v, want both other nodes", forwarded)
	}
	pipeline := func(round int) ([]*transport.Request, []*transport.Response) {
		reqs := make([]*transport.Request, 16)
		for i := range reqs {
			reqs[i] = &transport.Request{Op: transport.OpGet, Key: fmt.Sprintf("arena:%d", (round*16+i)%keys)}
		}
		return reqs, make([]*transport.Response, len(reqs))
	}

	var a node.Arena
	for round := range 8 {
		reqs, resps := pipeline(round)
		nd.DoArena(ctx, reqs, resps, &a)
		for i, r := range resps {
			if r == nil || r.Code != transport.CodeOK || !bytes.Equal(r.Value, value(reqs[i].Key)) {
				t.Fatalf("round %d: GET %s = %+v, want its value", round, reqs[i].Key, r)
			}
		}
		if n := node.ArenaFlights(&a); n != 2 {
			t.Fatalf("round %d: %d forwarded flights' replies in the arena, want 2 (one per other node)", round, n)
		}
		local := 0
		for _, r := range reqs {
			if nd.Ring().Owner(r.Key) == nd.Name() {
				local++
			}
		}
		if n := node.ArenaReplies(&a); n != len(reqs)-local {
			t.Fatalf("round %d: the arena holds %d forwarded replies, want %d", round, n, len(reqs)-local)
		}
		a.Reset()
		if n, r := node.ArenaFlights(&a), node.ArenaReplies(&a); n != 0 || r != 0 {
			t.Fatalf("after Reset: %d flights and %d replies still in the arena, want none (an idle connection must pin nothing)", n, r)
		}
	}

}

// A forward that fails is retried on the key's next owner in a further
// round, whose flights must get storage of their own: the first round's
// replies, already answers, stay as they were. Here one owner has just
// crashed (its peers do not know yet), so its share of the pipeline goes
// to the replicas in a second round.
func TestArenaRetryRoundKeepsTheFirstRoundsReplies(t *testing.T) {
	nodes := nodetest.StartCluster(t, 4, func(c *node.Config) { c.Replicas = 2 })
	nd := nodes[0]
	ctx := context.Background()
	value := func(k string) []byte { return bytes.Repeat([]byte(k+"|"), 8) }
	const keys = 96
	reqs := make([]*transport.Request, keys)
	dead := 0
	for i := range reqs {
		k := fmt.Sprintf("retry:%d", i)
		if resp := nd.Handle(ctx, &transport.Request{Op: transport.OpSet, Key: k, Value: value(k)}); resp.Code != transport.CodeOK {
			t.Fatalf("set %s: %+v", k, resp)
		}
		if nd.Ring().Owner(k) == nodes[3].Name() {
			dead++
		}
		reqs[i] = &transport.Request{Op: transport.OpGet, Key: k}
	}
	if dead == 0 {
		t.Fatal("no key owned by the node to crash")
	}
	node.Crash(nodes[3])
	resps := make([]*transport.Response, keys)
	var a node.Arena
	nd.DoArena(ctx, reqs, resps, &a)
	for i, r := range resps {
		if r == nil || r.Code != transport.CodeOK || !bytes.Equal(r.Value, value(reqs[i].Key)) {
			t.Fatalf("GET %s = %+v, want its value (%d keys were the crashed node's)", reqs[i].Key, r, dead)
		}
	}
	if n := node.ArenaFlights(&a); n < 3 {
		t.Fatalf("%d flights in the arena; want the first round's and at least one retry", n)
	}
	a.Reset()
}
