package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/node/store"
	"github.com/starlingcache/starling/transport"
)

// TestPausedNodeServesNothingStale: a node whose process was stopped
// wakes holding copies its peers have since overwritten. For its resync
// window it must answer reads with the newest copy among the key's owners,
// not its own; before the pause, and for a node that was never paused, its
// own store answers.
func TestPausedNodeServesNothingStale(t *testing.T) {
	nodes := nodetest.StartCluster(t, 2, func(c *node.Config) { c.Replicas = 2 })
	sleeper := nodes[0]
	get, newVer := missedWrite(t, sleeper, nodes[1], "frozen-key")
	node.Pause(sleeper, time.Minute)
	if got := get(); got != "new" {
		t.Fatalf("after a pause the node served %q, want the newer %q from its peer", got, "new")
	}
	if v, _ := sleeper.Store().Version("frozen-key"); v != newVer {
		t.Errorf("read repair left version %d, want %d", v, newVer)
	}
	if s := sleeper.Stats(); s.FallbackHits == 0 {
		t.Errorf("Stats().FallbackHits = 0, want the repaired read counted")
	}
}

// A paused node asks the key's other owners even if it marked them down:
// every call it had in flight timed out while it was stopped, which says
// nothing about them, and skipping them would serve its own stale copy.
func TestPausedNodeAsksPeersItMarkedDown(t *testing.T) {
	nodes := nodetest.StartCluster(t, 2, func(c *node.Config) {
		c.Replicas = 2
		c.PeerBackoff = time.Minute // the mark outlasts the test
	})
	sleeper, other := nodes[0], nodes[1]
	get, _ := missedWrite(t, sleeper, other, "marked-key")
	node.MarkDown(sleeper, other)
	node.Pause(sleeper, time.Minute)
	if got := get(); got != "new" {
		t.Fatalf("after a pause, with its peer marked down, the node served %q, want the newer %q", got, "new")
	}
}

// A paused node that takes a read for a key whose primary it marked down
// serves it as the next owner: it too must read through the key's other
// owners first, or the marks the pause left behind route reads straight to
// its own stale copy.
func TestPausedNodeStandingInForAMarkedPrimaryReadsThrough(t *testing.T) {
	sleeper, other, key := standIn(t)
	node.MarkDown(sleeper, other)
	// Not marked forwarded: the sleeper routes it, finds the primary
	// marked down and stands in for it.
	get := func() string { return readAt(t, sleeper, key, 0) }
	if got := get(); got != "old" {
		t.Fatalf("before any pause, standing in for its marked primary, the node serves its own copy: got %q, want %q", got, "old")
	}
	node.Pause(sleeper, time.Minute)
	if got := get(); got != "new" {
		t.Fatalf("after a pause, standing in for its marked primary, the node served %q, want the newer %q", got, "new")
	}
}

// The same for a write that depends on the old value. Such a write passes
// over its primary only if the primary could not be reached at all (see
// pickOwner), so here the mark is of a refused connection.
func TestPausedNodeStandingInForAnUnreachablePrimaryWritesOnTheNewest(t *testing.T) {
	sleeper, other, key := standIn(t)
	node.MarkUnreachable(sleeper, other)
	node.Pause(sleeper, time.Minute)
	resp := sleeper.Handle(context.Background(), &transport.Request{Op: transport.OpAppend, Key: key, Value: []byte("+")})
	if resp.Code != transport.CodeOK {
		t.Fatalf("append: %+v", resp)
	}
	if v, _, _ := sleeper.Store().Get(key); string(v) != "new+" {
		t.Fatalf("an APPEND after the pause, standing in for its unreachable primary, made %q, want %q", v, "new+")
	}
}

// standIn starts two nodes that both own every key, with marks that
// outlast the test, and returns a key whose primary is other, written
// through other and left older on sleeper (missedWrite).
func standIn(t *testing.T) (sleeper, other *node.Node, key string) {
	t.Helper()
	nodes := nodetest.StartCluster(t, 2, func(c *node.Config) {
		c.Replicas = 2
		c.PeerBackoff = time.Minute
	})
	sleeper, other = nodes[0], nodes[1]
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("stand-in-%d", i); sleeper.Ring().Owner(k) == other.Name() {
			key = k
		}
	}
	missedWrite(t, sleeper, other, key)
	return sleeper, other, key
}

// TestSuspendedMachineServesNothingStale: after its machine was suspended
// (the monotonic clock stood still, the boot clock did not) a node reads
// through its peers like after any other pause, once its pause loop has
// compared the two clocks.
func TestSuspendedMachineServesNothingStale(t *testing.T) {
	first := nodetest.Config(t, "node1")
	first.Replicas = 2
	sleeper, err := node.New(first)
	if err != nil {
		t.Fatal(err)
	}
	suspend := node.Suspendable(sleeper)
	nodetest.StartNode(t, sleeper)
	cfg := nodetest.Config(t, "node2")
	cfg.Replicas = 2
	cfg.Gossip.Seeds = []string{sleeper.GossipAddr()}
	other := nodetest.Start(t, cfg)
	nodetest.WaitConverged(t, []*node.Node{sleeper, other}, 2)
	get, _ := missedWrite(t, sleeper, other, "suspended-key")
	suspend(time.Minute)
	nodetest.WaitFor(t, 10*time.Second, func() bool { return get() == "new" },
		"the node to read the newer copy through its peer after the suspend")
}

// missedWrite writes key = "new" through other, then gives sleeper an
// older copy, as if it had missed the write while it slept (both nodes own
// every key: 2 replicas, 2 nodes). It returns a read of sleeper's own
// answer (a direct read would ask the primary), checked to be the old copy
// for now, and the new copy's version.
func missedWrite(t *testing.T, sleeper, other *node.Node, key string) (get func() string, newVer uint64) {
	t.Helper()
	ctx := context.Background()
	if resp := other.Handle(ctx, &transport.Request{Op: transport.OpSet, Key: key, Value: []byte("new")}); resp.Code != transport.CodeOK {
		t.Fatalf("set: %+v", resp)
	}
	newVer, ok := sleeper.Store().Version(key)
	if !ok {
		t.Fatalf("sleeper has no copy of %q", key)
	}
	if _, err := sleeper.Store().SetWith(key, []byte("old"), store.SetOptions{Version: newVer - 1<<8}); err != nil {
		t.Fatal(err)
	}
	get = func() string { return readAt(t, sleeper, key, transport.FlagForwarded) }
	if got := get(); got != "old" {
		t.Fatalf("before any pause the node serves its own copy: got %q, want %q", got, "old")
	}
	return get, newVer
}

// readAt returns n's answer to a GET of key sent to it with flags.
func readAt(t *testing.T, n *node.Node, key string, flags transport.Flags) string {
	t.Helper()
	resp := n.Handle(context.Background(), &transport.Request{Op: transport.OpGet, Key: key, Flags: flags})
	if resp.Code != transport.CodeOK {
		t.Fatalf("get: %+v", resp)
	}
	return string(resp.Value)
}

// A write applied after its sender's deadline (the process stopped between
// reading it and applying it) is refused unexecuted: its sender gave up
// and may have written the key since, and a fresh version would win over
// that acknowledged value. One inside the deadline is applied.
func TestWriteAfterItsDeadlineIsNotApplied(t *testing.T) {
	nd := nodetest.StartCluster(t, 1, nil)[0]
	ctx := context.Background()
	late := time.Now().Add(-10 * time.Second).UnixMilli()
	resp := nd.Handle(ctx, &transport.Request{Op: transport.OpSet, Key: "late", Value: []byte("v"), Deadline: late})
	if resp.Code != transport.CodeUnavailable {
		t.Fatalf("write past its deadline: %+v, want CodeUnavailable", resp)
	}
	if _, _, ok := nd.Store().Get("late"); ok {
		t.Fatal("the write past its deadline was stored")
	}
	resp = nd.Handle(ctx, &transport.Request{Op: transport.OpIncr, Key: "late", Delta: 1, Deadline: late})
	if resp.Code != transport.CodeUnavailable {
		t.Fatalf("INCR past its deadline: %+v, want CodeUnavailable", resp)
	}
	if _, _, ok := nd.Store().Get("late"); ok {
		t.Fatal("the INCR past its deadline was stored")
	}
	// In a pipeline, as forwarded writes arrive: each write is checked
	// when its version is taken, not when the batch began.
	reqs := []*transport.Request{
		{Op: transport.OpSet, Key: "late-a", Value: []byte("v"), Deadline: late},
		{Op: transport.OpIncr, Key: "late-b", Delta: 1, Deadline: late},
	}
	resps := make([]*transport.Response, len(reqs))
	nd.Do(ctx, reqs, resps)
	for i, r := range resps {
		if r.Code != transport.CodeUnavailable {
			t.Errorf("pipelined %s past its deadline: %+v, want CodeUnavailable", reqs[i].Op, r)
		}
		if _, _, ok := nd.Store().Get(reqs[i].Key); ok {
			t.Errorf("pipelined %s past its deadline was stored", reqs[i].Op)
		}
	}
	inTime := time.Now().Add(10 * time.Second).UnixMilli()
	if resp := nd.Handle(ctx, &transport.Request{Op: transport.OpSet, Key: "late", Value: []byte("v"), Deadline: inTime}); resp.Code != transport.CodeOK {
		t.Fatalf("write within its deadline: %+v", resp)
	}
}

// A read-through group's entries get the same care: after a pause, an
// entry the other owners have since invalidated (here: a newer tombstone,
// as a DELETE leaves) is not served from this node's store; the row is
// loaded afresh instead.
func TestPausedNodeReadsGroupEntriesThrough(t *testing.T) {
	_, _, get := pausedGroupOwner(t)
	if got, err := get(testCtx(t)); err != nil || got != "v-new" {
		t.Fatalf("after a pause the owner served %q, %v from its store, want the row loaded again (v-new): the other owner had deleted the entry", got, err)
	}
}

// A read whose caller runs out of time while the woken owner asks the
// other owners fails, rather than fall back on the unchecked copy, and
// does not mark the owner it was asking down: its expiry says nothing
// about that owner, and the mark would have the reads after it skip the
// owner and serve the stale copy.
func TestPausedNodeGroupReadOutOfTime(t *testing.T) {
	sleeper, other, get := pausedGroupOwner(t)
	node.WokeLongAgo(sleeper) // marks count again: nothing asks a marked owner
	ctx, cancel := context.WithDeadline(testCtx(t), time.Now().Add(-time.Second))
	defer cancel()
	if got, err := get(ctx); err == nil {
		t.Fatalf("a get with no time left after a pause = %q, want an error", got)
	}
	if node.Marked(sleeper, other) {
		t.Fatalf("a get that ran out of time marked %s down", other.Name())
	}
	if got, err := get(testCtx(t)); err != nil || got != "v-new" {
		t.Fatalf("the next get = %q, %v; want v-new", got, err)
	}
}

// pausedGroupOwner starts two nodes hosting group "items" and returns a
// key's owner, sleeper, paused just now, whose entry (v-old) the other
// node deleted while it slept and whose row is now v-new; get reads the
// key through the sleeper's group. Before the pause the sleeper serves
// v-old.
func pausedGroupOwner(t *testing.T) (sleeper, other *node.Node, get func(context.Context) (string, error)) {
	t.Helper()
	rows := openRows(t)
	cfg := node.GroupConfig{Name: "items", TTL: time.Hour, LoadTimeout: time.Minute}
	nodes, groups := startGroupCluster(t, 2, everyNode(rows, cfg))
	sleeper, other = nodes[0], nodes[1]
	key := keyOwnedBy(t, sleeper, "items", sleeper.Name(), "paused")
	nk := node.GroupKey("items", key)
	get = func(ctx context.Context) (string, error) {
		v, err := groups[0].Get(ctx, key)
		return string(v), err
	}
	rows.put(t, key, "v-old", 0)
	if got, err := get(testCtx(t)); err != nil || got != "v-old" {
		t.Fatalf("first get = %q, %v; want v-old", got, err)
	}
	rows.put(t, key, "v-new", 0)
	ver, ok := sleeper.Store().Version(nk)
	if !ok {
		t.Fatalf("the sleeper holds no entry for %s", key)
	}
	if _, err := other.Store().SetWith(nk, nil, store.SetOptions{Version: ver + 1<<8, Tombstone: true, ExpireAt: time.Now().Add(time.Hour).UnixNano()}); err != nil {
		t.Fatal(err)
	}
	if got, err := get(testCtx(t)); err != nil || got != "v-old" {
		t.Fatalf("before any pause the owner serves its own entry: got %q, %v; want v-old", got, err)
	}
	node.Pause(sleeper, time.Minute)
	return sleeper, other, get
}
