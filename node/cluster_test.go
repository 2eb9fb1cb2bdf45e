package node_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

func newClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Addrs = []string{addr}
	cfg.Timeout = 15 * time.Second
	cfg.Smart = false // these tests are about the node that receives the request
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// ownedBy returns a key whose owner, in nd's ring, is the named member.
func ownedBy(t *testing.T, nd *node.Node, member, prefix string) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if nd.Ring().Owner(k) == member {
			return k
		}
	}
	t.Fatalf("no key owned by %s", member)
	return ""
}

func TestClusterSetOnOneNodeGetOnEveryNode(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := context.Background()
	clients := make([]*client.Client, len(nodes))
	for i, nd := range nodes {
		clients[i] = newClient(t, nd.Addr())
	}

	// Keys owned by each member, written through a node that does not own
	// them, so both the forwarding and local paths are exercised.
	for _, owner := range nodes {
		for w, writer := range nodes {
			key := ownedBy(t, nodes[0], owner.Name(), "k-"+owner.Name()+"-via-"+writer.Name())
			val := []byte("v-" + key)
			if err := clients[w].Set(ctx, key, val, time.Minute); err != nil {
				t.Fatalf("set %s via %s: %v", key, writer.Name(), err)
			}
			for r, reader := range nodes {
				got, err := clients[r].Get(ctx, key)
				if err != nil || string(got) != string(val) {
					t.Fatalf("get %s via %s = %q, %v; want %q", key, reader.Name(), got, err, val)
				}
			}
			// Only its owner and replica store it: nothing is copied to the
			// forwarder.
			owners := nodes[0].Ring().Owners(key, 2)
			for _, nd := range nodes {
				_, _, ok := nd.Store().Get(key)
				if want := slices.Contains(owners, nd.Name()); ok != want {
					t.Fatalf("key %s present on %s = %v, want %v (owners %v)", key, nd.Name(), ok, want, owners)
				}
			}
		}
	}

	// Delete through a non-owner; a second delete and a get report not found.
	key := ownedBy(t, nodes[0], "node2", "del")
	if err := clients[0].Set(ctx, key, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if err := clients[2].Delete(ctx, key); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := clients[0].Delete(ctx, key); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("second delete = %v, want ErrNotFound", err)
	}
	if _, err := clients[1].Get(ctx, key); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get after delete = %v, want ErrNotFound", err)
	}
}

// INCRBYFLOAT through a node that does not own the key: the owner adds at
// a long double's precision, as Redis does, keeps the TTL, and replicates
// the stored text; a value that is not a number is refused unchanged.
func TestIncrByFloat(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil) // two copies of each key
	ctx := context.Background()
	key := ownedBy(t, nodes[0], "node2", "float")
	cl := newClient(t, nodes[0].Addr())
	if err := cl.Set(ctx, key, []byte("0.1"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := cl.IncrByFloat(ctx, key, 0.2); err != nil || got != 0.3 {
		t.Fatalf("0.1 + 0.2 = %v, %v; want 0.3", got, err)
	}
	for _, nd := range nodes {
		v, exp, ok := nd.Store().Get(key)
		if want := slices.Contains(nodes[0].Ring().Owners(key, 2), nd.Name()); ok != want {
			t.Fatalf("%s holds the key: %v, want %v", nd.Name(), ok, want)
		}
		if ok && (string(v) != "0.3" || exp == 0) {
			t.Fatalf("%s holds %q with expiry %d, want \"0.3\" with the TTL kept", nd.Name(), v, exp)
		}
	}
	fresh := ownedBy(t, nodes[0], "node3", "float-new")
	if got, err := cl.IncrByFloat(ctx, fresh, -1.5); err != nil || got != -1.5 {
		t.Fatalf("an absent key + -1.5 = %v, %v", got, err)
	}
	if err := cl.Set(ctx, key, []byte("not a number"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.IncrByFloat(ctx, key, 1); !errors.Is(err, client.ErrNotFloat) {
		t.Fatalf("IncrByFloat on a word: %v, want ErrNotFloat", err)
	}
	if v, err := cl.Get(ctx, key); err != nil || string(v) != "not a number" {
		t.Fatalf("after a refused increment the value is %q, %v", v, err)
	}
	if err := cl.Set(ctx, key, []byte("inf"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.IncrByFloat(ctx, key, 1); !errors.Is(err, client.ErrNotFinite) {
		t.Fatalf("IncrByFloat of inf: %v, want ErrNotFinite", err)
	}
	if _, err := cl.IncrByFloat(ctx, key, math.NaN()); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("IncrByFloat by NaN: %v, want ErrInvalidArgument", err)
	}
}

func TestClusterTTLExpires(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := context.Background()
	key := ownedBy(t, nodes[0], "node3", "ttl")
	cl := newClient(t, nodes[0].Addr())
	if err := cl.Set(ctx, key, []byte("soon gone"), 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Get(ctx, key); err != nil {
		t.Fatalf("get before expiry: %v", err)
	}
	nodetest.WaitFor(t, 5*time.Second, func() bool {
		_, err := cl.Get(ctx, key)
		return errors.Is(err, client.ErrNotFound)
	}, "key to expire")
}

func TestClusterMembers(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ms, err := newClient(t, nodes[2].Addr()).Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("members = %+v, want 3", ms)
	}
	for i, m := range ms {
		nd := nodes[i]
		want := transport.Member{Name: nd.Name(), GossipAddr: nd.GossipAddr(), DataAddr: nd.Addr(), State: "alive"}
		if m != want {
			t.Errorf("member %d = %+v, want %+v", i, m, want)
		}
	}
}

func TestClusterSurvivesCrash(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := context.Background()
	cl := newClient(t, nodes[0].Addr())
	survivorKey := ownedBy(t, nodes[0], "node2", "survivor")
	if err := cl.Set(ctx, survivorKey, []byte("still here"), 0); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	node.Crash(nodes[2])
	survivors := nodes[:2]
	nodetest.WaitConverged(t, survivors, 2)
	t.Logf("crash of node3 excluded from both survivors' rings after %v", time.Since(start).Round(time.Millisecond))

	for _, nd := range survivors {
		if nd.Ring().Contains("node3") {
			t.Fatalf("%s still routes to node3", nd.Name())
		}
		got, err := newClient(t, nd.Addr()).Get(ctx, survivorKey)
		if err != nil || string(got) != "still here" {
			t.Fatalf("get via %s = %q, %v", nd.Name(), got, err)
		}
	}
	// Every key is served again: whatever node3 owned now maps to a survivor.
	for i := 0; i < 200; i++ {
		key := fmt.Sprintf("after-crash-%d", i)
		if err := cl.Set(ctx, key, []byte("v"), 0); err != nil {
			t.Fatalf("set %s after crash: %v", key, err)
		}
	}
}

func TestClusterNodeRejoinsWithSameName(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, nil)
	node.Crash(nodes[1])
	nodetest.WaitConverged(t, []*node.Node{nodes[0], nodes[2]}, 2)

	cfg := nodetest.Config(t, "node2")
	cfg.Gossip.Seeds = []string{nodes[0].GossipAddr()}
	restarted := nodetest.Start(t, cfg)
	nodetest.WaitConverged(t, []*node.Node{nodes[0], restarted, nodes[2]}, 3)

	key := ownedBy(t, nodes[0], "node2", "rejoined")
	cl := newClient(t, nodes[2].Addr())
	if err := cl.Set(context.Background(), key, []byte("back"), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := restarted.Store().Get(key); !ok {
		t.Fatalf("restarted node2 does not hold the key it owns")
	}
}

func TestForwardToUnreachableOwnerFailsFast(t *testing.T) {
	nodes := nodetest.StartCluster(t, 2, func(c *node.Config) {
		// No failure detection, so the dead owner stays in the ring, and no
		// replica to fail over to.
		c.Gossip.ProbeInterval = time.Hour
		c.Replicas = 1
	})
	key := ownedBy(t, nodes[0], "node2", "dead-owner")
	node.Crash(nodes[1])
	cl := newClient(t, nodes[0].Addr())
	start := time.Now()
	_, err := cl.Get(context.Background(), key)
	if !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("get with a dead owner = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("get with a dead owner took %v", d)
	}
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	nodes := nodetest.StartCluster(t, 1, nil)
	cl := newClient(t, nodes[0].Addr())
	ctx := context.Background()
	if err := cl.Set(ctx, "", []byte("empty keys are valid, as in Redis"), 0); err != nil {
		t.Errorf("empty key: %v", err)
	}
	big := make([]byte, nodetest.Config(t, "x").Store.MaxValueSize+1)
	if err := cl.Set(ctx, "big", big, 0); !errors.Is(err, client.ErrTooLarge) {
		t.Errorf("oversized value: %v", err)
	}
	longKey := string(make([]byte, nodetest.Config(t, "x").Store.MaxKeySize+1))
	if _, err := cl.Get(ctx, longKey); !errors.Is(err, client.ErrTooLarge) {
		t.Errorf("oversized key: %v", err)
	}
	// The node is still fine.
	if err := cl.Set(ctx, "ok", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
}

// stallNetwork is TCP, except that once stalled is set, what is written
// on connections dialled to target vanishes: the peer stays up and never
// answers, as a stopped process or a partition looks to the sender.
// stallNetwork dials over TCP. Writes to target vanish while stalled is
// set (a peer that hangs); a write to lose is taken, so the caller counts
// it sent, and then the connection breaks (a peer that crashed after
// reading the request).
type stallNetwork struct {
	transport.TCPNetwork
	target  atomic.Pointer[string]
	stalled atomic.Bool
	lose    atomic.Pointer[string]
}

func (s *stallNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := s.TCPNetwork.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: c, net: s, addr: addr}, nil
}

type stallConn struct {
	net.Conn
	net  *stallNetwork
	addr string
}

func (c *stallConn) Write(p []byte) (int, error) {
	if t := c.net.target.Load(); t != nil && *t == c.addr && c.net.stalled.Load() {
		return len(p), nil
	}
	if t := c.net.lose.Load(); t != nil && *t == c.addr {
		c.Conn.Close()
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// A forwarded request whose owner does not answer in time may or may not
// have been applied there: the owner applies it if it reads it within its
// deadline and the allowed clock skew. A repeatable write is retried on
// the key's next owner; an INCR is not — it would count twice — and gets
// the error instead.
func TestTimedOutIncrIsNotRetriedOnAnotherOwner(t *testing.T) {
	stall := &stallNetwork{}
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) {
		c.Replicas = 2
		c.ForwardTimeout = time.Second
		if c.Name == "node1" {
			c.Transport.Network = stall
		}
	})
	entry := nodes[0]
	var counter, plain string
	for i := 0; counter == "" || plain == ""; i++ {
		k := fmt.Sprintf("stalled-%d", i)
		if owners := entry.Ring().Owners(k, 2); owners[0] == "node2" && owners[1] == "node3" {
			if counter == "" {
				counter = k
			} else {
				plain = k
			}
		}
	}
	addr := nodes[1].Addr()
	stall.target.Store(&addr)
	stall.stalled.Store(true)

	reqs := []*transport.Request{
		{Op: transport.OpIncr, Key: counter, Delta: 1},
		{Op: transport.OpSet, Key: plain, Value: []byte("v")},
	}
	resps := make([]*transport.Response, len(reqs))
	entry.Do(context.Background(), reqs, resps)
	if resps[0].Code != transport.CodeUnavailable {
		t.Errorf("INCR whose owner timed out: %+v, want CodeUnavailable", resps[0])
	}
	if resps[1].Code != transport.CodeOK {
		t.Errorf("SET whose owner timed out: %+v, want it served by the next owner", resps[1])
	}
	if _, _, ok := nodes[2].Store().Get(counter); ok {
		t.Error("the timed-out INCR was applied by the key's next owner")
	}
	if v, _, ok := nodes[2].Store().Get(plain); !ok || string(v) != "v" {
		t.Errorf("next owner holds %q, %v for the SET; want v", v, ok)
	}
}

// A forward or replica push that runs out of its caller's time says
// nothing about the peer: a caller with a short deadline (a program
// embedding the node) must not get a slow owner skipped by every request
// after it. Only a wait that the node's own bound (ForwardTimeout,
// ReplicaTimeout) ended marks the peer.
func TestCallerDeadlineDoesNotMarkThePeer(t *testing.T) {
	stall := &stallNetwork{}
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) {
		c.Replicas = 2
		c.ForwardTimeout = 400 * time.Millisecond
		c.ReplicaTimeout = 400 * time.Millisecond
		c.PeerBackoff = time.Minute
		if c.Name == "node1" {
			c.Transport.Network = stall
		}
	})
	entry, slow := nodes[0], nodes[1]
	slowKey := keyWithOwners(t, entry, "node2", "node3")  // forwarded to the slow node
	otherKey := keyWithOwners(t, entry, "node3", "node2") // forwarded elsewhere
	localKey := keyWithOwners(t, entry, "node1", "node2") // served here, pushed to the slow node
	addr := slow.Addr()
	stall.target.Store(&addr)
	stall.stalled.Store(true)

	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	do := func(ctx context.Context, reqs ...*transport.Request) []*transport.Response {
		resps := make([]*transport.Response, len(reqs))
		entry.Do(ctx, reqs, resps)
		return resps
	}
	unmarked := func(what string) {
		t.Helper()
		if node.Marked(entry, slow) {
			t.Fatalf("%s, out of its caller's time, marked the slow node down", what)
		}
	}
	// Two owners: the forwards leave as one wave.
	resps := do(short(), &transport.Request{Op: transport.OpGet, Key: slowKey}, &transport.Request{Op: transport.OpGet, Key: otherKey})
	if resps[0].Code != transport.CodeUnavailable {
		t.Errorf("GET forwarded to the stalled owner: %+v, want CodeUnavailable", resps[0])
	}
	if resps[1].Code != transport.CodeNotFound {
		t.Errorf("GET forwarded to the other owner: %+v, want CodeNotFound", resps[1])
	}
	unmarked("a wave of forwards")
	// A lone forward.
	if r := do(short(), &transport.Request{Op: transport.OpGet, Key: slowKey})[0]; r.Code != transport.CodeUnavailable {
		t.Errorf("lone GET forwarded to the stalled owner: %+v, want CodeUnavailable", r)
	}
	unmarked("a lone forward")
	// A write served here whose copy for the slow replica runs out of time.
	do(short(), &transport.Request{Op: transport.OpSet, Key: localKey, Value: []byte("v")})
	unmarked("a replica push")

	// The node's own bound ends the wait: the owner is marked.
	if r := do(context.Background(), &transport.Request{Op: transport.OpGet, Key: slowKey})[0]; r.Code != transport.CodeOK && r.Code != transport.CodeNotFound {
		t.Errorf("GET with time to fail over: %+v, want an answer from the next owner", r)
	}
	if !node.Marked(entry, slow) {
		t.Fatal("a forward that ForwardTimeout ended left the owner unmarked")
	}
}

// An owner whose connection is lost after the request went out is marked
// even when another owner in the same wave used up the caller's time: a
// wave judges its flights only once all are done, and the loss is the
// peer's, not the caller's deadline.
func TestConnectionLostInAWaveMarksItsOwner(t *testing.T) {
	stall := &stallNetwork{}
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) {
		c.Replicas = 2
		c.ForwardTimeout = 400 * time.Millisecond
		c.PeerBackoff = time.Minute
		if c.Name == "node1" {
			c.Transport.Network = stall
		}
	})
	entry, slow, lost := nodes[0], nodes[1], nodes[2]
	stalled, gone := slow.Addr(), lost.Addr()
	stall.target.Store(&stalled)
	stall.stalled.Store(true)
	stall.lose.Store(&gone)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	reqs := []*transport.Request{
		{Op: transport.OpGet, Key: keyWithOwners(t, entry, "node2", "node3")},
		{Op: transport.OpGet, Key: keyWithOwners(t, entry, "node3", "node2")},
	}
	resps := make([]*transport.Response, len(reqs))
	entry.Do(ctx, reqs, resps)
	for i, r := range resps {
		if r.Code != transport.CodeUnavailable {
			t.Errorf("GET %d: %+v, want CodeUnavailable", i, r)
		}
	}
	if node.Marked(entry, slow) {
		t.Error("the owner that only outlasted the caller's time was marked down")
	}
	if !node.Marked(entry, lost) {
		t.Error("the owner whose connection was lost was not marked down")
	}
}

// keyWithOwners returns a key whose first two owners on n's ring are
// first and second, in that order.
func keyWithOwners(t *testing.T, n *node.Node, first, second string) string {
	t.Helper()
	for i := range 100000 {
		k := fmt.Sprintf("k-%d", i)
		if o := n.Ring().Owners(k, 2); o[0] == first && o[1] == second {
			return k
		}
	}
	t.Fatalf("no key owned by %s then %s", first, second)
	return ""
}

// An INCR that could not reach its owner at all (every dial refused) was
// never applied there: it goes to the key's next owner.
func TestUnsentIncrFailsOverToTheNextOwner(t *testing.T) {
	// node2's data address, chosen up front so that node1 refuses to
	// connect to it from the start and never holds a connection that
	// might have carried the INCR.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	node2Addr := ln.Addr().String()
	ln.Close()
	refuse := &refuseNetwork{target: node2Addr}
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) {
		c.Replicas = 2
		// Whatever node1 failed to send node2 while the cluster formed
		// must not make it skip node2 now: the INCR is to try it first.
		c.PeerBackoff = time.Millisecond
		switch c.Name {
		case "node1":
			c.Transport.Network = refuse
		case "node2":
			c.Addr = node2Addr
		}
	})
	entry := nodes[0]
	var counter string
	for i := 0; counter == ""; i++ {
		k := fmt.Sprintf("refused-%d", i)
		if owners := entry.Ring().Owners(k, 2); owners[0] == "node2" && owners[1] == "node3" {
			counter = k
		}
	}
	before := refuse.refused.Load()
	resp := entry.Handle(context.Background(), &transport.Request{Op: transport.OpIncr, Key: counter, Delta: 1})
	if resp.Code != transport.CodeOK || resp.Int != 1 {
		t.Fatalf("INCR whose owner refused the connection: %+v, want 1 from the next owner", resp)
	}
	if refuse.refused.Load() == before {
		t.Fatal("the INCR never tried node2: the test proves nothing")
	}
	if v, _, ok := nodes[2].Store().Get(counter); !ok || string(v) != "1" {
		t.Errorf("next owner holds %q, %v; want 1", v, ok)
	}
}

// An INCR goes to its owner even when the entry node marked that owner
// down after a call timed out: the owner may only have been slow, and a
// slow owner still coordinates the key for every node that reaches it, so
// counting on the next owner meanwhile would race it and lose increments.
// A repeatable write skips the marked owner as before, and an INCR skips
// an owner that could not be reached at all.
func TestIncrIgnoresADownMarkOnItsOwner(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) {
		c.Replicas = 2
		c.PeerBackoff = time.Minute // the mark outlasts the test
	})
	entry, owner, next := nodes[0], nodes[1], nodes[2]
	var keys []string // owned by node2, then node3
	for i := 0; len(keys) < 3; i++ {
		k := fmt.Sprintf("marked-%d", i)
		if owners := entry.Ring().Owners(k, 2); owners[0] == "node2" && owners[1] == "node3" {
			keys = append(keys, k)
		}
	}
	counter, plain, other := keys[0], keys[1], keys[2]
	node.MarkDown(entry, owner)
	ownerBefore, nextBefore := owner.Stats().Local, next.Stats().Local

	reqs := []*transport.Request{
		{Op: transport.OpIncr, Key: counter, Delta: 1},
		{Op: transport.OpSet, Key: plain, Value: []byte("v")},
	}
	resps := make([]*transport.Response, len(reqs))
	entry.Do(context.Background(), reqs, resps)
	if resps[0].Code != transport.CodeOK || resps[0].Int != 1 {
		t.Fatalf("INCR: %+v, want 1", resps[0])
	}
	if resps[1].Code != transport.CodeOK {
		t.Fatalf("SET: %+v", resps[1])
	}
	if got := owner.Stats().Local - ownerBefore; got != 1 {
		t.Errorf("the marked owner coordinated %d requests, want 1: the INCR", got)
	}
	if got := next.Stats().Local - nextBefore; got != 1 {
		t.Errorf("the next owner coordinated %d requests, want 1: the SET, which skips the mark", got)
	}
	if resp := entry.Handle(context.Background(), &transport.Request{Op: transport.OpIncr, Key: counter, Delta: 1}); resp.Code != transport.CodeOK || resp.Int != 2 {
		t.Fatalf("a lone INCR: %+v, want 2", resp)
	}
	if got := owner.Stats().Local - ownerBefore; got != 2 {
		t.Errorf("after a lone INCR the marked owner coordinated %d requests, want 2", got)
	}

	// An owner that refused a connection is not serving anyone: an INCR
	// passes it over like any other request.
	node.MarkUnreachable(entry, owner)
	nextBefore = next.Stats().Local
	if resp := entry.Handle(context.Background(), &transport.Request{Op: transport.OpIncr, Key: other, Delta: 1}); resp.Code != transport.CodeOK || resp.Int != 1 {
		t.Fatalf("INCR with its owner unreachable: %+v, want 1", resp)
	}
	if got := next.Stats().Local - nextBefore; got != 1 {
		t.Errorf("with the owner unreachable the next owner coordinated %d requests, want 1", got)
	}
}

// refuseNetwork is TCP, except that dials to target are refused.
type refuseNetwork struct {
	transport.TCPNetwork
	target  string
	refused atomic.Int64
}

func (r *refuseNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if addr == r.target {
		r.refused.Add(1)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return r.TCPNetwork.Dial(ctx, addr)
}
