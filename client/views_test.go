package client_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/transport"
)

// RingView rebuilds the node's ring from its member list: same members,
// same version, shares that cover the key space.
func TestRingViewRebuildsTheNodesRing(t *testing.T) {
	fc := newFakeCluster(t, 3)
	want := fc.ring().Version()
	// A member whose data address is unknown is listed but, as on the
	// nodes, left out of the ring.
	fc.mu.Lock()
	fc.members = append(fc.members, transport.Member{Name: "nometa", GossipAddr: "127.0.0.1:1", State: "alive"})
	fc.mu.Unlock()
	cl := newClient(t, nil, fc.nodes[1].addr)

	v, err := cl.RingView(ctxTimeout(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Members) != 4 {
		t.Errorf("RingView lists %d members, want all 4 the node reported", len(v.Members))
	}
	if v.Ring.Len() != 3 || v.Ring.Contains("nometa") {
		t.Errorf("ring members = %v, want the 3 with a data address", v.Ring.Members())
	}
	if v.NodeVersion != want || v.Ring.Version() != want {
		t.Errorf("versions: node %#x, rebuilt %#x; want both %#x", v.NodeVersion, v.Ring.Version(), want)
	}
	var sum float64
	for _, s := range v.Ring.Shares() {
		sum += s
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("shares sum to %v, want 1", sum)
	}

	// A node mid-change reports another version: the view shows both.
	fc.setVersion(42)
	if v, err = cl.RingView(ctxTimeout(t)); err != nil {
		t.Fatal(err)
	}
	if v.NodeVersion != 42 || v.Ring.Version() == 42 {
		t.Errorf("versions: node %d, rebuilt %#x; want the node's 42 and the rebuilt ring's own", v.NodeVersion, v.Ring.Version())
	}
}

func TestRingViewUnreachable(t *testing.T) {
	cl := newClient(t, func(c *client.Config) { c.Timeout = 2 * time.Second }, "127.0.0.1:1")
	if _, err := cl.RingView(ctxTimeout(t)); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("RingView from a dead address = %v, want ErrUnavailable", err)
	}
}
