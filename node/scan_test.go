package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

// walk runs a whole Scan walk through nd and counts each key's listings.
func walk(t *testing.T, nd *node.Node, match string, count int) (seen map[string]int, steps int) {
	t.Helper()
	seen = map[string]int{}
	var cursor uint64
	for steps = 1; ; steps++ {
		keys, next, err := nd.Scan(context.Background(), cursor, match, count)
		if err != nil {
			t.Fatalf("scan step %d at %#x through %s: %v", steps, cursor, nd.Name(), err)
		}
		for _, k := range keys {
			seen[k]++
		}
		if next == 0 {
			return seen, steps
		}
		cursor = next
		if steps > 100_000 {
			t.Fatal("the walk does not end")
		}
	}
}

// A walk through any node lists every key of the cluster once, from the
// member that is its primary (every copy with one copy per key), and a
// pattern keeps only the keys that match it.
func TestScanListsEveryKeyOnce(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			nodes := nodetest.StartCluster(t, 3, func(c *node.Config) { c.Replicas = replicas })
			ctx := context.Background()
			const n = 1500
			reqs := make([]*transport.Request, 0, 100)
			for i := range n {
				reqs = append(reqs, &transport.Request{Op: transport.OpSet, Key: fmt.Sprintf("user:%d", i), Value: []byte("v")})
				if len(reqs) == cap(reqs) || i == n-1 {
					resps := make([]*transport.Response, len(reqs))
					nodes[0].Do(ctx, reqs, resps)
					for j, r := range resps {
						if r.Code != transport.CodeOK {
							t.Fatalf("set %s: %+v", reqs[j].Key, r)
						}
					}
					reqs = reqs[:0]
				}
			}
			for _, nd := range nodes {
				seen, steps := walk(t, nd, "*", 50)
				if len(seen) != n || steps < 3 {
					t.Fatalf("through %s: %d keys in %d steps, want %d in several", nd.Name(), len(seen), steps, n)
				}
				for k, c := range seen {
					if c != 1 {
						t.Fatalf("through %s: %s listed %d times", nd.Name(), k, c)
					}
				}
			}
			// The Go client walks the same way, and the cursors are one:
			// a walk begun by a node goes on through the client.
			cl := newClient(t, nodes[2].Addr())
			got := map[string]int{}
			keys, cursor, err := nodes[0].Scan(ctx, 0, "*", 50)
			for _, k := range keys {
				got[k]++
			}
			for err == nil && cursor != 0 {
				keys, cursor, err = cl.Scan(ctx, cursor, "*", 50)
				for _, k := range keys {
					got[k]++
				}
			}
			if err != nil || len(got) != n {
				t.Fatalf("a walk begun by node1 and continued by the client: %d keys, %v; want %d", len(got), err, n)
			}
			all := 0
			if err := cl.ScanAll(ctx, "user:2*", 100, func(string) error { all++; return nil }); err != nil || all != 111 {
				t.Fatalf("ScanAll user:2* = %d keys, %v; want 111", all, err)
			}

			seen, _ := walk(t, nodes[1], "user:1?", 1000)
			if len(seen) != 10 {
				t.Fatalf("MATCH user:1? listed %d keys, want user:10 to user:19", len(seen))
			}
			for k := range seen {
				if !strings.HasPrefix(k, "user:1") || len(k) != len("user:10") {
					t.Fatalf("MATCH user:1? listed %s", k)
				}
			}
			if seen, _ := walk(t, nodes[2], "", 1000); len(seen) != 0 {
				t.Fatalf("the empty pattern, which matches only the empty key as in Redis, listed %d keys", len(seen))
			}
			if _, _, err := nodes[2].Scan(ctx, 0, strings.Repeat("*", 300), 10); !errors.Is(err, transport.ErrBadRequest) {
				t.Fatalf("a 300-byte pattern: %v, want ErrBadRequest", err)
			}
		})
	}
}

// A step at a member that cannot be reached fails with the cursor left as
// it was; once the ring drops the member, a walk lists every key again,
// the member's own now listed by the owners that held its copies.
func TestScanPastACrashedMember(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil) // two copies of each key
	ctx := context.Background()
	const n = 300
	reqs := make([]*transport.Request, n)
	for i := range reqs {
		reqs[i] = &transport.Request{Op: transport.OpSet, Key: fmt.Sprintf("k%d", i), Value: []byte("v")}
	}
	resps := make([]*transport.Response, n)
	nodes[0].Do(ctx, reqs, resps)
	for i, r := range resps {
		if r.Code != transport.CodeOK {
			t.Fatalf("set %s: %+v", reqs[i].Key, r)
		}
	}
	node.Crash(nodes[2])
	// node3 is the third member in ring order: its part of a walk.
	cursor := uint64(2) << transport.ScanCursorBits
	keys, next, err := nodes[0].Scan(ctx, cursor, "*", 10)
	if nodes[0].Ring().Contains("node3") {
		if !errors.Is(err, transport.ErrUnavailable) || next != cursor || keys != nil {
			t.Fatalf("a step at a crashed member: %q, %#x, %v; want ErrUnavailable and the cursor unchanged", keys, next, err)
		}
	} else {
		t.Log("gossip dropped node3 before the step could reach it")
	}
	nodetest.WaitConverged(t, nodes[:2], 2)
	for _, nd := range nodes[:2] {
		if seen, _ := walk(t, nd, "*", 100); len(seen) != n {
			t.Fatalf("after the crash, a walk through %s listed %d keys, want %d", nd.Name(), len(seen), n)
		}
	}
}

// COUNT is about keys, not index slots: a node whose shards hold a few keys
// in their smallest tables is walked in one step, not hundreds.
func TestScanStepsOverASparseIndex(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := context.Background()
	reqs := make([]*transport.Request, 5)
	for i := range reqs {
		reqs[i] = &transport.Request{Op: transport.OpSet, Key: fmt.Sprintf("few-%d", i), Value: []byte("v")}
	}
	resps := make([]*transport.Response, len(reqs))
	nodes[0].Do(ctx, reqs, resps)
	for i, r := range resps {
		if r.Code != transport.CodeOK {
			t.Fatalf("set %s: %+v", reqs[i].Key, r)
		}
	}
	seen, steps := walk(t, nodes[1], "*", 10)
	if len(seen) != len(reqs) || steps > len(nodes) {
		t.Fatalf("%d keys in %d steps; want %d keys in at most one step per member", len(seen), steps, len(reqs))
	}
}
