package client_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// fakeCluster is a set of transport servers that answer like nodes, with
// faults as data: the member list they hand out, the ring version they
// stamp on replies, a node that refuses connections (closed) or never
// answers GETs and INCRs (hung). They share one store, so where a request lands
// changes counters, not answers.
type fakeCluster struct {
	t     *testing.T
	nodes []*fakeNode

	mu      sync.Mutex
	members []transport.Member
	version uint64 // stamped on every reply
	data    map[string][]byte
}

type fakeNode struct {
	c    *fakeCluster
	name string
	addr string
	srv  *transport.Server

	direct     atomic.Int64 // keyed requests that arrived marked forwarded
	routed     atomic.Int64 // keyed requests that arrived unmarked
	membersOps atomic.Int64
	hung       atomic.Bool   // GETs and INCRs are never answered
	release    chan struct{} // closed at cleanup: hung requests answer
}

func newFakeCluster(t *testing.T, n int) *fakeCluster {
	t.Helper()
	c := &fakeCluster{t: t, data: map[string][]byte{}}
	for i := range n {
		c.addNode(t, "fake"+string(rune('a'+i)))
	}
	c.setMembers(len(c.nodes))
	return c
}

func (c *fakeCluster) addNode(t *testing.T, name string) *fakeNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nd := &fakeNode{c: c, name: name, addr: ln.Addr().String(), release: make(chan struct{})}
	srv, err := transport.NewServer(transport.DefaultConfig(), transport.HandlerFunc(nd.serve))
	if err != nil {
		t.Fatal(err)
	}
	nd.srv = srv
	go srv.Serve(ln)
	t.Cleanup(func() {
		close(nd.release)
		srv.Close()
	})
	c.nodes = append(c.nodes, nd)
	return nd
}

// setMembers makes the first n nodes the membership every node reports,
// with the matching ring version.
func (c *fakeCluster) setMembers(n int) {
	names := make([]string, 0, n)
	ms := make([]transport.Member, 0, n)
	for _, nd := range c.nodes[:n] {
		names = append(names, nd.name)
		ms = append(ms, transport.Member{Name: nd.name, DataAddr: nd.addr, State: "alive"})
	}
	r, err := ring.New(ring.DefaultConfig(), names)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.members, c.version = ms, r.Version()
	c.mu.Unlock()
}

func (c *fakeCluster) setVersion(v uint64) {
	c.mu.Lock()
	c.version = v
	c.mu.Unlock()
}

func (c *fakeCluster) ring() *ring.Ring {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.members))
	for _, m := range c.members {
		names = append(names, m.Name)
	}
	r, err := ring.New(ring.DefaultConfig(), names)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func (c *fakeCluster) node(name string) *fakeNode {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	c.t.Fatalf("no fake node %s", name)
	return nil
}

func (nd *fakeNode) serve(_ context.Context, req *transport.Request, w transport.ResponseWriter) {
	c := nd.c
	c.mu.Lock()
	resp := &transport.Response{ID: req.ID, RingVersion: c.version}
	switch req.Op {
	case transport.OpMembers:
		nd.membersOps.Add(1)
		resp.Members = append([]transport.Member(nil), c.members...)
	case transport.OpPing:
	case transport.OpGet:
		v, ok := c.data[req.Key]
		if ok {
			resp.Value = v
		} else {
			resp.Code = transport.CodeNotFound
		}
	case transport.OpSet:
		c.data[req.Key] = append([]byte(nil), req.Value...)
	case transport.OpDelete:
		if _, ok := c.data[req.Key]; !ok {
			resp.Code = transport.CodeNotFound
		}
		delete(c.data, req.Key)
	case transport.OpIncr:
		var v int64
		if cur, ok := c.data[req.Key]; ok {
			if _, err := fmt.Sscan(string(cur), &v); err != nil {
				resp.Code = transport.CodeNotInteger
				break
			}
		}
		v += req.Delta
		resp.Int = v
		c.data[req.Key] = []byte(fmt.Sprint(v))
	default:
		resp.Code = transport.CodeUnknownOp
	}
	c.mu.Unlock()
	if req.Op == transport.OpGet || req.Op == transport.OpSet || req.Op == transport.OpDelete || req.Op == transport.OpIncr {
		if req.Flags&transport.FlagForwarded != 0 {
			nd.direct.Add(1)
		} else {
			nd.routed.Add(1)
		}
	}
	if nd.hung.Load() && (req.Op == transport.OpGet || req.Op == transport.OpIncr) {
		go func() {
			<-nd.release
			w.Reply(resp)
		}()
		return
	}
	w.Reply(resp)
}

// keysOwnedBy returns the first n keys key-0, key-1, ... whose owner in
// the cluster's ring is the node named name.
func (c *fakeCluster) keysOwnedBy(name string, n int) []string {
	r := c.ring()
	var keys []string
	for i := 0; len(keys) < n; i++ {
		if k := fmt.Sprintf("key-%d", i); r.Owner(k) == name {
			keys = append(keys, k)
		}
	}
	return keys
}

// crash closes the node's listener and connections: dials are refused.
func (nd *fakeNode) crash() { nd.srv.Close() }

// startStub serves the handler mk builds, given the address it listens on,
// on an ephemeral loopback port for the test's life.
func startStub(t testing.TB, mk func(addr string) transport.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv, err := transport.NewServer(transport.DefaultConfig(), mk(addr))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return addr
}
