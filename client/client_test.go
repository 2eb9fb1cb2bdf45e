package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

const waitTimeout = 20 * time.Second

func newClient(t testing.TB, mutate func(*client.Config), addrs ...string) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Addrs = addrs
	cfg.Timeout = 5 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// forwarded sums the nodes' Forwarded counters: requests a node had to
// send on to another.
func forwarded(nodes []*node.Node) int64 {
	var n int64
	for _, nd := range nodes {
		n += nd.Handle(context.Background(), &transport.Request{Op: transport.OpStats}).Stats.Forwarded
	}
	return n
}

func TestConfigValidate(t *testing.T) {
	for name, mutate := range map[string]func(*client.Config){
		"no addrs":         func(c *client.Config) { c.Addrs = nil },
		"empty addr":       func(c *client.Config) { c.Addrs = []string{""} },
		"zero timeout":     func(c *client.Config) { c.Timeout = 0 },
		"zero replicas":    func(c *client.Config) { c.Replicas = 0 },
		"too many":         func(c *client.Config) { c.Replicas = client.MaxReplicas + 1 },
		"negative refresh": func(c *client.Config) { c.RefreshInterval = -1 },
		"bad ring":         func(c *client.Config) { c.Ring.VNodes = 0 },
	} {
		cfg := client.DefaultConfig()
		mutate(&cfg)
		if _, err := client.New(cfg); !errors.Is(err, client.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
	cfg := client.DefaultConfig()
	cfg.Smart = false
	cfg.Ring.VNodes = 0 // unused without Smart
	if _, err := client.New(cfg); err != nil {
		t.Errorf("plain client with an unused ring config: %v", err)
	}
}

// With Smart, every keyed request goes straight to an owner: no node
// forwards anything. Without, requests through one node are forwarded for
// the keys it does not own.
func TestSmartRoutingSkipsTheForwardingHop(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := ctxTimeout(t)
	const keys = 300
	run := func(cl *client.Client, prefix string) {
		t.Helper()
		for i := range keys {
			k := fmt.Sprintf("%s-%d", prefix, i)
			if err := cl.Set(ctx, k, []byte(k), 0); err != nil {
				t.Fatalf("set %s: %v", k, err)
			}
			if v, err := cl.Get(ctx, k); err != nil || string(v) != k {
				t.Fatalf("get %s = %q, %v", k, v, err)
			}
		}
		if err := cl.Delete(ctx, prefix+"-0"); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Get(ctx, prefix+"-0"); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("get after delete = %v, want ErrNotFound", err)
		}
	}

	before := forwarded(nodes)
	smart := newClient(t, nil, nodes[0].Addr())
	run(smart, "smart")
	if smart.Ring() == nil || smart.Ring().Version() != nodes[0].Ring().Version() {
		t.Fatalf("client ring %v, nodes' %v", smart.Ring(), nodes[0].Ring())
	}
	// Under CPU starvation gossip can briefly suspect a node and a ring
	// can change under the test; allow a sliver, not a third.
	if got := forwarded(nodes) - before; got > 2*keys/100 {
		t.Errorf("smart client: nodes forwarded %d of %d requests, want ~0", got, 2*keys+3)
	}

	before = forwarded(nodes)
	plain := newClient(t, func(c *client.Config) { c.Smart = false }, nodes[0].Addr())
	run(plain, "plain")
	if plain.Ring() != nil {
		t.Errorf("plain client has a ring")
	}
	// node1 owns about a third of the keys; the rest are forwarded.
	if got := forwarded(nodes) - before; got < keys/2 {
		t.Errorf("plain client: nodes forwarded %d of %d requests, want about 2/3", got, 2*keys+3)
	}
}

// A node joins: replies announce a new ring version, the client re-reads
// the members and sends the new node's keys straight to it.
func TestRingRefreshAfterJoin(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := ctxTimeout(t)
	cl := newClient(t, func(c *client.Config) { c.RefreshInterval = 0 }, nodes[0].Addr())
	if err := cl.Set(ctx, "warm", []byte("up"), 0); err != nil {
		t.Fatal(err)
	}
	old := cl.Ring().Version()

	cfg := nodetest.Config(t, "node4")
	cfg.Gossip.Seeds = []string{nodes[0].GossipAddr()}
	nodes = append(nodes, nodetest.Start(t, cfg))
	nodetest.WaitConverged(t, nodes, 4)
	want := nodes[0].Ring().Version()
	if want == old {
		t.Fatal("the join did not change the ring version")
	}
	i := 0
	nodetest.WaitFor(t, waitTimeout, func() bool {
		i++
		_ = cl.Set(ctx, fmt.Sprintf("poke-%d", i), []byte("x"), 0) // replies carry the new version
		return cl.Ring().Version() == want
	}, "the client to pick up the ring with node4")
	if cl.Ring().Len() != 4 {
		t.Fatalf("client ring %v", cl.Ring())
	}

	before := forwarded(nodes)
	local4 := nodes[3].Handle(ctx, &transport.Request{Op: transport.OpStats}).Stats.Local
	const keys = 200
	for i := range keys {
		if err := cl.Set(ctx, fmt.Sprintf("after-%d", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := forwarded(nodes) - before; got > keys/50 {
		t.Errorf("after the refresh nodes forwarded %d of %d requests", got, keys)
	}
	if got := nodes[3].Handle(ctx, &transport.Request{Op: transport.OpStats}).Stats.Local - local4; got < keys/10 {
		t.Errorf("node4 served %d of %d requests, want about a quarter", got, keys)
	}
}

// The owner of a key goes away while the client's ring still names it:
// reads fail over to the next replica.
func TestReadFailoverToReplica(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := ctxTimeout(t)
	// No refreshes during the test: the client keeps routing to node3.
	cl := newClient(t, func(c *client.Config) {
		c.RefreshInterval = 0
		c.MinRefreshInterval = time.Hour
	}, nodes[0].Addr())
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := 0; len(keys) < 20; i++ {
		k := fmt.Sprintf("k-%d", i)
		if err := cl.Set(ctx, k, []byte(k), 0); err != nil {
			t.Fatal(err)
		}
		if cl.Ring().Owner(k) == "node3" {
			keys = append(keys, k)
		}
	}
	if err := nodes[2].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		v, err := cl.Get(ctx, k)
		if err != nil || string(v) != k {
			t.Fatalf("get %s with its owner gone = %q, %v", k, v, err)
		}
	}
	if cl.Ring().Contains("node3") != true {
		t.Fatal("the client refreshed its ring; the test meant to exercise failover")
	}
}

// GetMany and SetMany split a batch by owner and still answer for every
// key, with no forwarding.
func TestGetManySetMany(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := ctxTimeout(t)
	for _, smart := range []bool{true, false} {
		t.Run(fmt.Sprintf("smart=%v", smart), func(t *testing.T) {
			cl := newClient(t, func(c *client.Config) { c.Smart = smart }, nodes[1].Addr())
			items := map[string][]byte{}
			var keys []string
			for i := range 150 {
				k := fmt.Sprintf("many-%v-%d", smart, i)
				items[k] = []byte("value-" + k)
				keys = append(keys, k)
			}
			before := forwarded(nodes)
			if err := cl.SetMany(ctx, items, time.Minute); err != nil {
				t.Fatal(err)
			}
			missing := []string{"absent-1", "absent-2"}
			got, err := cl.GetMany(ctx, append(keys, missing...))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(items) {
				t.Fatalf("GetMany returned %d keys, want %d", len(got), len(items))
			}
			for k, v := range items {
				if string(got[k]) != string(v) {
					t.Fatalf("GetMany[%s] = %q, want %q", k, got[k], v)
				}
			}
			fwd := forwarded(nodes) - before
			if smart && fwd > 6 {
				t.Errorf("smart batch: nodes forwarded %d requests", fwd)
			}
			if !smart && fwd < 100 {
				t.Errorf("plain batch: nodes forwarded only %d of %d requests", fwd, 2*len(items))
			}
			for _, nd := range nodes {
				if v, _, ok := nd.Store().Get(keys[0]); ok && string(v) != string(items[keys[0]]) {
					t.Fatalf("%s holds %q", nd.Name(), v)
				}
			}
		})
	}
}

// Do answers a mixed pipeline in order: keyed requests of every owner and
// requests for no key.
func TestDoMixedPipeline(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := ctxTimeout(t)
	cl := newClient(t, nil, nodes[2].Addr())
	var reqs []*transport.Request
	for i := range 30 {
		reqs = append(reqs, &transport.Request{Op: transport.OpSet, Key: fmt.Sprintf("do-%d", i), Value: []byte{byte(i)}})
	}
	reqs = append(reqs, &transport.Request{Op: transport.OpPing}, &transport.Request{Op: transport.OpMembers})
	resps := make([]*transport.Response, len(reqs))
	if err := cl.Do(ctx, reqs, resps); err != nil {
		t.Fatal(err)
	}
	for i, r := range resps {
		if r.Error() != nil {
			t.Fatalf("resps[%d]: %v", i, r.Error())
		}
	}
	if len(resps[31].Members) != 3 {
		t.Fatalf("members reply: %+v", resps[31])
	}
	gets := make([]*transport.Request, 30)
	for i := range gets {
		gets[i] = &transport.Request{Op: transport.OpGet, Key: fmt.Sprintf("do-%d", i)}
	}
	if err := cl.Do(ctx, gets, resps); err != nil {
		t.Fatal(err)
	}
	for i := range gets {
		if resps[i].Error() != nil || len(resps[i].Value) != 1 || resps[i].Value[0] != byte(i) {
			t.Fatalf("get do-%d = %+v", i, resps[i])
		}
	}
	if err := cl.Do(ctx, gets, resps[:1]); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("short resps: %v", err)
	}
}

// The owner refuses connections (it crashed; failure detection has not
// removed it yet): reads go to the replica, writes that never left too.
func TestFailoverWhenOwnerRefusesConnections(t *testing.T) {
	fc := newFakeCluster(t, 3)
	cl := newClient(t, func(c *client.Config) { c.MinRefreshInterval = time.Hour }, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	victim := fc.nodes[2]
	keys := fc.keysOwnedBy(victim.name, 20)
	for _, k := range keys {
		if err := cl.Set(ctx, k, []byte(k), 0); err != nil {
			t.Fatal(err)
		}
	}
	if victim.direct.Load() != int64(len(keys)) || victim.routed.Load() != 0 {
		t.Fatalf("owner got %d direct and %d unmarked requests, want %d and 0", victim.direct.Load(), victim.routed.Load(), len(keys))
	}
	victim.crash()
	for _, k := range keys {
		v, err := cl.Get(ctx, k)
		if err != nil || string(v) != k {
			t.Fatalf("get %s with the owner down = %q, %v", k, v, err)
		}
		if err := cl.Set(ctx, k, []byte(k+"'"), 0); err != nil {
			t.Fatalf("set %s with the owner down: %v", k, err)
		}
	}
	// The replicas took them, marked forwarded: they are owners too.
	var direct int64
	for _, nd := range fc.nodes[:2] {
		direct += nd.direct.Load()
	}
	if direct != int64(2*len(keys)) {
		t.Errorf("replicas got %d direct requests, want %d", direct, 2*len(keys))
	}
	got, err := cl.GetMany(ctx, keys)
	if err != nil || len(got) != len(keys) {
		t.Fatalf("GetMany with the owner down: %d keys, %v", len(got), err)
	}

	// A batch over every owner, from a client that does not remember the
	// failure: the dead owner's share fails in the first round and goes to
	// the replicas in the next, the rest is answered at once.
	fresh := newClient(t, func(c *client.Config) {
		c.MinRefreshInterval = time.Hour
		c.DownBackoff = 0
	}, fc.nodes[0].addr)
	all := append([]string{"other-1", "other-2", "other-3"}, keys...)
	items := map[string][]byte{}
	for _, k := range all {
		items[k] = []byte("v2-" + k)
	}
	if err := fresh.SetMany(ctx, items, 0); err != nil {
		t.Fatalf("SetMany with the owner down: %v", err)
	}
	got, err = fresh.GetMany(ctx, all)
	if err != nil || len(got) != len(all) {
		t.Fatalf("GetMany with the owner down: %d keys, %v", len(got), err)
	}
	for k, v := range items {
		if string(got[k]) != string(v) {
			t.Fatalf("GetMany[%s] = %q, want %q", k, got[k], v)
		}
	}
}

// Incr counts from an absent key's 0, straight at the key's owner, and
// refuses a value that is not an integer.
func TestIncr(t *testing.T) {
	fc := newFakeCluster(t, 3)
	cl := newClient(t, func(c *client.Config) { c.MinRefreshInterval = time.Hour }, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	for _, step := range []struct{ delta, want int64 }{{1, 1}, {5, 6}, {-8, -2}} {
		if got, err := cl.Incr(ctx, "counter", step.delta); err != nil || got != step.want {
			t.Fatalf("Incr(counter, %d) = %d, %v; want %d", step.delta, got, err, step.want)
		}
	}
	owner := fc.node(fc.ring().Owner("counter"))
	if got := owner.direct.Load(); got != 3 {
		t.Errorf("the owner got %d increments straight from the client, want 3", got)
	}
	if v, err := cl.Get(ctx, "counter"); err != nil || string(v) != "-2" {
		t.Fatalf("get counter = %q, %v; want -2", v, err)
	}
	if err := cl.Set(ctx, "word", []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Incr(ctx, "word", 1); !errors.Is(err, client.ErrNotInteger) {
		t.Fatalf("Incr of a word: %v, want ErrNotInteger", err)
	}
}

// With one copy of each key, a key whose owner is down is sent, unmarked,
// to another node to route, for single calls and pipelines alike.
func TestFallbackNodesWhenEveryOwnerIsDown(t *testing.T) {
	fc := newFakeCluster(t, 3)
	opts := func(c *client.Config) {
		c.Replicas = 1
		c.MinRefreshInterval = time.Hour
		c.DownBackoff = 0 // every call meets the dead owner first
	}
	cl := newClient(t, opts, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	victim := fc.nodes[2]
	keys := fc.keysOwnedBy(victim.name, 10)
	items := map[string][]byte{}
	for _, k := range keys {
		items[k] = []byte("v-" + k)
	}
	routed := func() (n int64) {
		for _, nd := range fc.nodes {
			n += nd.routed.Load()
		}
		return n
	}
	victim.crash()
	for _, k := range keys {
		if err := cl.Set(ctx, k, []byte(k), 0); err != nil {
			t.Fatalf("set %s with its only owner down: %v", k, err)
		}
		if v, err := cl.Get(ctx, k); err != nil || string(v) != k {
			t.Fatalf("get %s with its only owner down = %q, %v", k, v, err)
		}
	}
	if got := routed(); got != int64(2*len(keys)) {
		t.Fatalf("%d requests went to a fallback node, want %d", got, 2*len(keys))
	}
	if err := cl.SetMany(ctx, items, 0); err != nil {
		t.Fatalf("SetMany with the owner down: %v", err)
	}
	got, err := cl.GetMany(ctx, keys)
	if err != nil || len(got) != len(keys) {
		t.Fatalf("GetMany with the owner down: %d keys, %v", len(got), err)
	}
	for k, v := range items {
		if string(got[k]) != string(v) {
			t.Fatalf("GetMany[%s] = %q, want %q", k, got[k], v)
		}
	}
	if got := routed(); got != int64(4*len(keys)) {
		t.Fatalf("%d requests went to a fallback node, want %d", got, 4*len(keys))
	}
}

// A node that accepts requests but never answers costs a read
// AttemptTimeout, then the replica answers.
func TestReadFailoverOnHungOwner(t *testing.T) {
	fc := newFakeCluster(t, 2)
	cl := newClient(t, func(c *client.Config) {
		c.MinRefreshInterval = time.Hour
		c.AttemptTimeout = 50 * time.Millisecond
		c.DownBackoff = 0 // every read tries the hung owner first
	}, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	k := fc.keysOwnedBy("fakeb", 1)[0]
	if err := cl.Set(ctx, k, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	fc.node("fakeb").hung.Store(true)
	for _, withDeadline := range []bool{true, false} {
		c := ctx
		if !withDeadline {
			c = context.Background() // the client's Timeout bounds it
		}
		if v, err := cl.Get(c, k); err != nil || string(v) != "v" {
			t.Fatalf("get from a hung owner (deadline %v) = %q, %v", withDeadline, v, err)
		}
		if v, err := cl.GetMany(c, []string{k, k + "-absent"}); err != nil || string(v[k]) != "v" {
			t.Fatalf("GetMany from a hung owner (deadline %v) = %q, %v", withDeadline, v, err)
		}
	}
}

// With one copy of each key, a read whose owner hangs is still bounded
// by AttemptTimeout when another node could route it, though the client
// lists such fallback nodes only once the owner has failed.
func TestReadFallsBackFromHungSoleOwner(t *testing.T) {
	fc := newFakeCluster(t, 3)
	cl := newClient(t, func(c *client.Config) {
		c.Replicas = 1
		c.MinRefreshInterval = time.Hour
		c.AttemptTimeout = 50 * time.Millisecond
		c.Timeout = 3 * time.Second // what the read would wait unbounded
		c.DownBackoff = 0
	}, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	victim := fc.nodes[2]
	k := fc.keysOwnedBy(victim.name, 1)[0]
	if err := cl.Set(ctx, k, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	victim.hung.Store(true)
	for _, batch := range []bool{false, true} {
		routed := fc.nodes[0].routed.Load() + fc.nodes[1].routed.Load()
		var v []byte
		var err error
		if batch {
			var got map[string][]byte
			got, err = cl.GetMany(context.Background(), []string{k, k + "-absent"})
			v = got[k]
		} else {
			v, err = cl.Get(context.Background(), k)
		}
		if err != nil || string(v) != "v" {
			t.Fatalf("read (batch %v) with its only owner hung = %q, %v; want v from a fallback node", batch, v, err)
		}
		if fc.nodes[0].routed.Load()+fc.nodes[1].routed.Load() == routed {
			t.Fatalf("read (batch %v) answered, but by no fallback node", batch)
		}
	}
}

// A write that must not be applied twice goes to its primary even after
// the client marked that node down: the node may only have been slow, and
// a replica coordinating the key meanwhile would race it. Reads and plain
// writes try the healthy replica first, as before.
func TestNonRepeatableWriteKeepsRingOrder(t *testing.T) {
	fc := newFakeCluster(t, 2)
	cl := newClient(t, func(c *client.Config) {
		c.MinRefreshInterval = time.Hour
		c.AttemptTimeout = 50 * time.Millisecond
		c.DownBackoff = time.Hour // the mark outlasts the test
	}, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	k := fc.keysOwnedBy("fakeb", 1)[0]
	if err := cl.Set(ctx, k, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	owner, replica := fc.node("fakeb"), fc.node("fakea")
	owner.hung.Store(true)
	if v, err := cl.Get(ctx, k); err != nil || string(v) != "v" {
		t.Fatalf("get from a hung owner = %q, %v", v, err)
	}
	owner.hung.Store(false) // slow once, marked down for an hour

	before, replicaBefore := owner.direct.Load(), replica.direct.Load()
	nx := &transport.Request{Op: transport.OpSet, Key: k, Value: []byte("nx"), Flags: transport.FlagIfAbsent}
	plain := &transport.Request{Op: transport.OpSet, Key: k, Value: []byte("plain")}
	for _, reqs := range [][]*transport.Request{{nx}, {nx, plain}} {
		resps := make([]*transport.Response, len(reqs))
		if err := cl.Do(ctx, reqs, resps); err != nil {
			t.Fatal(err)
		}
	}
	if got := owner.direct.Load() - before; got != 2 {
		t.Errorf("the marked primary got %d requests, want the 2 conditional SETs", got)
	}
	if got := replica.direct.Load() - replicaBefore; got != 1 {
		t.Errorf("the healthy replica got %d requests, want the plain SET", got)
	}
}

// INCRs that may have been applied (their owner's connection broke after
// they were written) are not resent, not even to the nodes that would
// route them once their only owner fails: the fallbacks the client lists
// only after the owners stay unlisted for a request that must not repeat.
func TestLostIncrsAreNotResentToFallbacks(t *testing.T) {
	fc := newFakeCluster(t, 3)
	cl := newClient(t, func(c *client.Config) {
		c.Replicas = 1
		c.MinRefreshInterval = time.Hour
		c.DownBackoff = 0
	}, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	victim := fc.nodes[2]
	keys := fc.keysOwnedBy(victim.name, 2)
	victim.hung.Store(true) // applies them, never answers
	routed := func() int64 { return fc.nodes[0].routed.Load() + fc.nodes[1].routed.Load() }
	before, applied := routed(), victim.direct.Load()
	reqs := []*transport.Request{{Op: transport.OpIncr, Key: keys[0], Delta: 1}, {Op: transport.OpIncr, Key: keys[1], Delta: 1}}
	resps := make([]*transport.Response, len(reqs))
	done := make(chan error, 1)
	go func() { done <- cl.Do(ctx, reqs, resps) }()
	for deadline := time.Now().Add(10 * time.Second); victim.direct.Load()-applied < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the owner never got both INCRs")
		}
		time.Sleep(time.Millisecond)
	}
	victim.crash() // their connection breaks: applied, but unanswered
	if err := <-done; !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("Do = %v, want ErrUnavailable", err)
	}
	for i, r := range resps {
		if r == nil || r.Code == transport.CodeOK {
			t.Fatalf("INCR %d answered %+v after its owner crashed", i, r)
		}
	}
	if got := routed() - before; got != 0 {
		t.Fatalf("%d INCRs were resent to a fallback node after their owner may have applied them", got)
	}
}

// An INCR is not resent after a timeout, so a client whose INCRs go to a
// node that hangs and then leaves the cluster sees each one wait out its
// caller's deadline: the member list must be re-read then too, not only
// when a node fails within the caller's time, or every INCR for that
// node's keys would fail until the next periodic refresh.
func TestRefreshAfterCallerDeadlineOnHungNode(t *testing.T) {
	fc := newFakeCluster(t, 2)
	cl := newClient(t, func(c *client.Config) {
		c.RefreshInterval = 0 // no periodic refresh to hide behind
		c.MinRefreshInterval = time.Millisecond
	}, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	k := fc.keysOwnedBy("fakeb", 1)[0]
	if _, err := cl.Incr(ctx, k, 1); err != nil {
		t.Fatal(err)
	}
	fc.node("fakeb").hung.Store(true)
	fc.setMembers(1) // fakeb leaves: fakea now owns every key

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := cl.Incr(short, k, 1)
	cancel()
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("INCR to a hung node: %v, want ErrUnavailable", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for cl.Ring().Owner(k) != "fakea" {
		if time.Now().After(deadline) {
			t.Fatalf("the client still routes %s to %s 10s after an INCR to it timed out", k, cl.Ring().Owner(k))
		}
		time.Sleep(time.Millisecond)
	}
	before := fc.node("fakea").direct.Load()
	if _, err := cl.Incr(ctx, k, 1); err != nil {
		t.Fatalf("INCR after the refresh: %v", err)
	}
	if got := fc.node("fakea").direct.Load() - before; got != 1 {
		t.Errorf("the key's new owner got %d requests, want the INCR", got)
	}
}

// Each attempt carries its own deadline: with two owners hung, the third
// replica is reached after two attempt timeouts, later than the first
// attempt's deadline plus the servers' clock-skew allowance. Were the first
// deadline kept, the healthy node would refuse the read unexecuted.
func TestRetryCarriesItsOwnDeadline(t *testing.T) {
	fc := newFakeCluster(t, 3)
	cl := newClient(t, func(c *client.Config) {
		c.Replicas = 3
		c.MinRefreshInterval = time.Hour
		c.AttemptTimeout = 300 * time.Millisecond // 2 x 300 ms > 250 ms skew allowance
		c.DownBackoff = 0
	}, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	const k = "deadline-key"
	if err := cl.Set(ctx, k, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	owners := fc.ring().Owners(k, 3)
	fc.node(owners[0]).hung.Store(true)
	fc.node(owners[1]).hung.Store(true)
	if v, err := cl.Get(ctx, k); err != nil || string(v) != "v" {
		t.Fatalf("get with the first two owners hung = %q, %v; want the third replica's answer", v, err)
	}
}

// Replies that announce another ring version make the client re-read the
// member list, once per MinRefreshInterval at most, and a version the
// client cannot reproduce (a node leaving computes its ring without
// itself) does not make it re-read forever.
func TestRefreshOnVersionChangeIsDebounced(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.setMembers(2)
	cl := newClient(t, func(c *client.Config) {
		c.RefreshInterval = 0
		c.MinRefreshInterval = 20 * time.Millisecond
	}, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	if err := cl.Set(ctx, "a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if cl.Ring().Len() != 2 {
		t.Fatalf("ring %v", cl.Ring())
	}
	fc.setMembers(3)
	nodetest.WaitFor(t, waitTimeout, func() bool {
		_ = cl.Ping(ctx)
		return cl.Ring().Len() == 3
	}, "the client to learn the third member")
	if v := cl.Ring().Version(); v != fc.ring().Version() {
		t.Fatalf("client version %d, cluster %d", v, fc.ring().Version())
	}

	// A version that matches no member list the client can build: one
	// refresh, then the client knows the node reported it with this list.
	membersOps := func() (n int64) {
		for _, nd := range fc.nodes {
			n += nd.membersOps.Load()
		}
		return n
	}
	before := membersOps()
	fc.setVersion(12345)
	nodetest.WaitFor(t, waitTimeout, func() bool {
		_ = cl.Ping(ctx)
		return membersOps() > before
	}, "a refresh after the version changed")
	settled := membersOps()
	for range 200 {
		if err := cl.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := membersOps() - settled; got > 1 {
		t.Errorf("%d more member-list reads after settling on an unreproducible version", got)
	}
}

// With no reply announcing a change (the nodes keep reporting the version
// the client has), the periodic refresh still picks up new members.
func TestPeriodicRefresh(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.setMembers(2)
	cl := newClient(t, func(c *client.Config) {
		c.RefreshInterval = 20 * time.Millisecond
		c.MinRefreshInterval = time.Hour // replies must not be what triggers it
	}, fc.nodes[0].addr)
	ctx := ctxTimeout(t)
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	old := fc.ring().Version()
	fc.setMembers(3)
	fc.setVersion(old)
	nodetest.WaitFor(t, waitTimeout, func() bool { return cl.Ring().Len() == 3 }, "the periodic refresh")
}

// Members and Stats ask the configured node, then every member.
func TestMembersAndStats(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := ctxTimeout(t)
	cl := newClient(t, nil, nodes[1].Addr())
	ms, err := cl.Members(ctx)
	if err != nil || len(ms) != 3 {
		t.Fatalf("members = %+v, %v", ms, err)
	}
	st, err := cl.Stats(ctx)
	if err != nil || len(st) != 3 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	for _, s := range st {
		if s.Err != "" || s.Stats.MaxMemory == 0 {
			t.Errorf("stats of %s: %+v", s.Name, s)
		}
	}
}

// Nothing answers: calls fail quickly with ErrUnavailable, smart or not.
func TestNoNodeReachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, smart := range []bool{true, false} {
		cl := newClient(t, func(c *client.Config) { c.Smart = smart; c.Timeout = 2 * time.Second }, addr)
		if _, err := cl.Get(context.Background(), "k"); !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("smart=%v: get = %v, want ErrUnavailable", smart, err)
		}
		resps := make([]*transport.Response, 2)
		err := cl.Do(context.Background(), []*transport.Request{{Op: transport.OpGet, Key: "a"}, {Op: transport.OpSet, Key: "b"}}, resps)
		if !errors.Is(err, client.ErrUnavailable) || resps[0].Code != transport.CodeUnavailable || resps[1].Code != transport.CodeUnavailable {
			t.Errorf("smart=%v: Do = %v, %+v", smart, err, resps)
		}
		if _, err := cl.GetMany(context.Background(), []string{"a", "b"}); !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "2 of 2") {
			t.Errorf("smart=%v: GetMany = %v", smart, err)
		}
	}
}

func TestNegativeTTL(t *testing.T) {
	cl := newClient(t, nil, "127.0.0.1:1")
	if err := cl.Set(context.Background(), "k", nil, -time.Second); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("Set = %v", err)
	}
	if err := cl.SetMany(context.Background(), map[string][]byte{"k": nil}, -time.Second); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("SetMany = %v", err)
	}
}

// TestOwnsMatchesWhereKeysLive: Owns(addr) says true for exactly the keys
// whose only copy (one replica) lands on the node at addr, even for a
// client that does not route by the ring itself; an address no member
// serves is an error.
func TestOwnsMatchesWhereKeysLive(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) { c.Replicas = 1 })
	ctx := ctxTimeout(t)
	cl := newClient(t, func(c *client.Config) { c.Smart = false }, nodes[0].Addr())
	owns := make([]func(string) bool, len(nodes))
	for i, nd := range nodes {
		f, err := cl.Owns(ctx, nd.Addr())
		if err != nil {
			t.Fatalf("Owns(%s): %v", nd.Addr(), err)
		}
		owns[i] = f
	}
	for i := range 200 {
		k := fmt.Sprintf("owned-%d", i)
		if err := cl.Set(ctx, k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		for j, nd := range nodes {
			_, _, held := nd.Store().Get(k)
			if owns[j](k) != held {
				t.Fatalf("%s: Owns(%s) = %v, but the node holds it: %v", k, nd.Name(), owns[j](k), held)
			}
		}
	}
	if _, err := cl.Owns(ctx, "127.0.0.1:1"); err == nil {
		t.Error("Owns of an address no member serves: no error")
	}
}
