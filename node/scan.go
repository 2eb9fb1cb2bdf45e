package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/starlingcache/starling/node/store"
	"github.com/starlingcache/starling/transport"
)

// A cluster-wide key walk (SCAN) visits the members one after another, in
// the ring's (sorted) order, each walking its own store. Its cursor keeps
// the member's position in the bits above the store's cursor
// (transport.ScanCursorBits, which is the store's: the blank constant
// below does not compile otherwise).
const (
	_ = uint(store.ScanCursorBits-transport.ScanCursorBits) + uint(transport.ScanCursorBits-store.ScanCursorBits)
	// maxScanSlots bounds the index slots one step visits, whatever COUNT
	// a client asks for, so that a step answers within a forward timeout
	// (the store takes a shard's lock for a few slots at a time).
	maxScanSlots = 1 << 16
	// scanStepBytes is about the most key bytes one step returns: a step
	// passes it only by the keys up to the next place the store's walk
	// may stop (see store.ScanKeys), tens of keys. Only keys near the
	// 64 KiB limit could make that more than a frame holds, and that
	// step then fails with a "too large" error.
	scanStepBytes = 256 << 10
	// maxScanPattern bounds a MATCH pattern: matching costs up to its
	// length times a key's, for every key a step visits.
	maxScanPattern = 256
)

// Scan runs one step of a walk over every key in the cluster, each listed
// by the member that is its primary owner (by every member that holds it
// when keys have one copy, as DBSIZE counts), from cursor (0 starts a
// walk): it returns some keys matching match (a Redis glob: "*" for every
// key) and the cursor to go on from, 0 when the walk is done. count is
// about how many keys to look at. A member that cannot be reached fails
// the step; the same cursor may be tried again.
//
// A key stored throughout the walk on its primary owner, with members
// that stay in the ring, is listed at least once; it may be listed twice.
// (A write its primary missed, held as a hint by another owner until the
// primary is back, is not listed meanwhile, nor counted by DBSIZE.) A
// member joining or leaving during the walk shifts the others' positions,
// and its keys move: the walk may then miss or repeat keys, as a Redis
// Cluster client's scan may while slots migrate.
func (n *Node) Scan(ctx context.Context, cursor uint64, match string, count int) (keys []string, next uint64, err error) {
	v := n.view.Load()
	names := v.ring.Members()
	if len(names) == 0 { // not started yet: a walk of this node alone
		names = []string{n.cfg.Name}
	}
	if len(names) > transport.MaxScanMembers {
		return nil, 0, fmt.Errorf("%w: a walk covers at most %d members, the ring has %d", transport.ErrBadRequest, transport.MaxScanMembers, len(names))
	}
	i, own := transport.SplitScanCursor(cursor)
	if i >= uint64(len(names)) {
		return nil, 0, nil // the ring shrank under a finished member: done
	}
	// About count keys' worth of slots: the member scales it by how full
	// its index is (scanStep).
	slots := min(max(count, 1), maxScanSlots/2) * 2
	req := &transport.Request{Op: transport.OpScan, Key: match, Delta: int64(slots), Version: own}
	var resp *transport.Response
	if names[i] == n.cfg.Name {
		resp = n.serveLocal(req)
	} else {
		resp = n.call(ctx, v.addrs[names[i]], req)
	}
	if err := resp.Error(); err != nil {
		return nil, cursor, err
	}
	return resp.Keys, transport.NextScanCursor(i, len(names), resp.Version), nil
}

// scanStep answers OpScan: one step of a walk of this node's store,
// listing the keys it is the primary owner of (all it holds, with one copy
// per key) that match the request's pattern.
func (n *Node) scanStep(req *transport.Request) *transport.Response {
	if len(req.Key) > maxScanPattern {
		return errResponse(fmt.Errorf("%w: a pattern of %d bytes, limit %d", transport.ErrBadRequest, len(req.Key), maxScanPattern))
	}
	r, self := n.view.Load().ring, n.cfg.Name
	all := n.cfg.Replicas == 1 || r.Len() == 0
	match := req.Key
	every := match == "*"
	// Delta asks for about Delta/2 keys' worth of slots (see Scan). In an
	// index mostly empty, as a few keys in every shard's smallest table
	// are, that takes proportionally more slots: a walk of a near-empty
	// node should not take a thousand steps.
	slots := min(max(req.Delta, 1), maxScanSlots)
	if st := n.store.Stats(); st.Entries+st.Tombstones == 0 {
		slots = maxScanSlots
	} else {
		slots = max(slots, slots/2*st.IndexSlots/(st.Entries+st.Tombstones))
	}
	var keys []string
	next := n.store.ScanKeys(req.Version, int(min(slots, maxScanSlots)), scanStepBytes, func(key string) {
		if !all && r.Owner(key) != self || !every && !globMatch(match, key) {
			return
		}
		if !every {
			// A key shares its batch's memory: a few kept from a batch
			// would keep all of it.
			key = strings.Clone(key)
		}
		keys = append(keys, key)
	})
	return &transport.Response{Keys: keys, Version: next}
}
