package client

import (
	"context"

	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// RingView is the cluster's ring as one node sees it. Operators' tools
// (`starling ring`) read it to show how the key space is split; routing
// never uses it.
type RingView struct {
	// Members is the member list the node reported, every state included.
	Members []Member
	// NodeVersion is the ring version the node stamped on its reply.
	NodeVersion uint64
	// Ring is rebuilt from Members with Config.Ring, leaving out members
	// without a name or data address as nodes do. Its Version equals
	// NodeVersion unless the node's ring is changing (its own leave in
	// progress, a rebuild between the two reads) or Config.Ring differs
	// from the nodes' ring configuration.
	Ring *ring.Ring
}

// RingView asks the contacted node (the first reachable one of
// Config.Addrs, as for Members) for its member list and ring version, and
// rebuilds its ring.
func (c *Client) RingView(ctx context.Context) (*RingView, error) {
	resp, err := c.call(ctx, &transport.Request{Op: transport.OpMembers})
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(resp.Members))
	for _, m := range resp.Members {
		if m.Name != "" && m.DataAddr != "" {
			names = append(names, m.Name)
		}
	}
	r, err := ring.New(c.cfg.Ring, names)
	if err != nil {
		return nil, err
	}
	return &RingView{Members: resp.Members, NodeVersion: resp.RingVersion, Ring: r}, nil
}
