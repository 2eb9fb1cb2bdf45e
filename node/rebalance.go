package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// rebalanceLoop keeps every key on its owners. When the ring changes it
// runs a pass that streams keys to the nodes that newly own or replicate
// them; every RebalanceInterval it retries hints (copies a replica missed)
// and, if an earlier pass left keys behind, runs another pass.
func (n *Node) rebalanceLoop(initial *ring.Ring) {
	defer n.wg.Done()
	last := initial
	tick := time.NewTicker(n.cfg.RebalanceInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.ringChanged:
		case <-tick.C:
			n.passMu.Lock()
			if !n.leaving.Load() {
				n.retryHints(n.ctx)
			}
			n.passMu.Unlock()
		}
		n.passMu.Lock()
		if !n.leaving.Load() {
			last = n.rebalanceOnce(last)
		}
		n.passMu.Unlock()
	}
}

// rebalanceOnce runs the pass that is due: a full one when what other
// members hold is in doubt, one for a ring change since last, or one for
// stray copies. It returns the ring it brought the store up to date
// with.
func (n *Node) rebalanceOnce(last *ring.Ring) *ring.Ring {
	v := n.view.Load()
	n.rejoinMu.Lock()
	restarted := n.rejoined
	n.rejoined = nil
	n.rejoinMu.Unlock()
	switch {
	case n.fullPass.Swap(false) || len(restarted) > 0:
		// What the other owners hold is unknown: a member restarted empty
		// or came back from the dead (a healed partition, a frozen process)
		// with copies that diverged from ours. A pass from the last ring
		// would trust that co-owners under both rings have the key, and
		// might drop our copy after sending it to the new owners only.
		// Send every key to all its owners instead, as if every other
		// member had just joined; last writer wins sorts out the
		// duplicates. (A pass that merely failed needs none of this: the
		// targets it missed get hints, and copies it could not drop are
		// sent on by the next pass for strays.)
		alone, err := ring.New(n.cfg.Ring, []string{n.cfg.Name})
		if err != nil {
			n.log.Error("rebalance: cannot build a ring of this node alone", "err", err)
			break
		}
		if res := n.pass(n.ctx, v, alone, v.ring); res.failed {
			n.fullPass.Store(true)
		}
		n.misplaced.Store(true)
	case v.ring.Version() != last.Version():
		if res := n.pass(n.ctx, v, last, v.ring); !res.failed {
			n.announceHandoffDone(v, last)
		}
		// Check again on the next tick for copies this pass could not
		// place or drop: keys written under the old ring while it ran, or
		// entries the store moved under the walk.
		n.misplaced.Store(true)
	case n.misplaced.Swap(false):
		if res := n.pass(n.ctx, v, v.ring, v.ring); res.queued > 0 {
			n.misplaced.Store(true) // until a pass finds no stray left
		}
	}
	return v.ring
}

// handoffItem is one key on its way to the nodes that should hold it.
type handoffItem struct {
	key     string
	req     transport.Request
	targets []string
	drop    bool // this node no longer owns it: delete once every target has it
}

// pass moves every local key whose owners changed between prev and cur.
// For each key it sends the entry to the owners under cur that did not
// already hold it under prev (or to all owners if this node was not one of
// them: a stand-in copy, or a node leaving), in batches of HandoffBatch
// entries, one round trip per target per batch. A key this node no longer
// owns is deleted only after every target acknowledged it, and only if it
// was not written meanwhile.
func (n *Node) pass(ctx context.Context, v *view, prev, cur *ring.Ring) passResult {
	n.passes.Add(1)
	defer n.passes.Add(-1)
	start := time.Now()
	n.stats.handoffRunning.Add(1)
	defer n.stats.handoffRunning.Add(-1)
	self, r := n.cfg.Name, n.cfg.Replicas
	var (
		chunk  []handoffItem
		bytes  int
		moved  int64
		failed bool
		queued int
		ob, pb [maxReplicas]string
	)
	flush := func() {
		m, b, f := n.flushHandoff(ctx, v, chunk)
		moved += m
		n.stats.bytesMoved.Add(b)
		failed = failed || f
		chunk, bytes = chunk[:0], 0
	}
	leaving := n.leaving.Load()
	n.store.RangeEntries(func(key string, e entry) bool {
		if ctx.Err() != nil || (!leaving && n.leaving.Load()) {
			return false // shut down, or the leave hand-off takes over
		}
		owners := cur.AppendOwners(ob[:0], key, r)
		if len(owners) == 0 {
			return true
		}
		targets, drop := handoffTargets(self, prev.AppendOwners(pb[:0], key, r), owners)
		if len(targets) == 0 {
			return true
		}
		e.Value = append([]byte(nil), e.Value...) // valid only during the callback
		chunk = append(chunk, handoffItem{key: key, req: replicaRequest(key, e), targets: targets, drop: drop})
		queued++
		bytes += len(key) + len(e.Value)
		if len(chunk) >= n.cfg.HandoffBatch || bytes >= handoffBatchBytes {
			flush()
		}
		return true
	})
	if len(chunk) > 0 {
		flush()
	}
	if failed {
		n.misplaced.Store(true) // try again on the next tick
	}
	n.stats.keysMoved.Add(moved)
	if moved > 0 || failed {
		n.stats.lastHandoff.Store(int64(time.Since(start)))
		n.log.Info("rebalance pass", "keys_moved", moved, "failed", failed, "took", time.Since(start).Round(time.Millisecond),
			"ring_members", cur.Len())
	}
	return passResult{queued: queued, moved: int(moved), failed: failed}
}

// passResult says what a pass did: how many keys it found to send, how
// many reached all their targets, and whether anything failed.
type passResult struct {
	queued, moved int
	failed        bool
}

// handoffTargets is the hand-off planner: given a key's owners before and
// after a ring change, it says which members this node (self, holding a
// copy) must send the key to, and whether it may drop its copy once they
// have it. Owners that already owned the key before the change hold it
// and are skipped. If this node owned the key neither before nor after,
// its copy is a stand-in (a write that reached it while rings disagreed),
// and it goes to every owner.
func handoffTargets(self string, prevOwners, owners []string) (targets []string, drop bool) {
	inCur, inPrev := slices.Contains(owners, self), slices.Contains(prevOwners, self)
	for _, o := range owners {
		if o == self || ((inCur || inPrev) && slices.Contains(prevOwners, o)) {
			continue
		}
		targets = append(targets, o)
	}
	return targets, !inCur && len(owners) > 0
}

// handoffBatchBytes bounds the payload of one hand-off batch, so a batch
// of large values does not monopolise a connection that also serves
// traffic.
const handoffBatchBytes = 1 << 20

// flushHandoff sends one chunk, a batch per target in parallel, and drops
// the keys this node no longer owns once every target has them. It returns
// how many keys reached all their targets, the bytes sent, and whether
// anything failed.
func (n *Node) flushHandoff(ctx context.Context, v *view, chunk []handoffItem) (moved, bytes int64, failed bool) {
	byTarget := map[string][]int{}
	for i, it := range chunk {
		for _, t := range it.targets {
			byTarget[t] = append(byTarget[t], i)
		}
	}
	var (
		mu sync.Mutex
		ok = map[string]bool{}
		wg sync.WaitGroup
	)
	for target, idx := range byTarget {
		addr, known := v.addrs[target]
		if !known {
			continue
		}
		// Each target gets its own copies: the transport stamps request IDs.
		reqs := make([]*transport.Request, len(idx))
		for j, i := range idx {
			r := chunk[i].req
			reqs[j] = &r
		}
		wg.Go(func() {
			good, leaving := n.pushBatch(ctx, addr, reqs, n.cfg.ForwardTimeout)
			if leaving && n.leaving.Load() {
				n.noteLeaver(target)
			}
			mu.Lock()
			ok[target] = good
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, it := range chunk {
		all := true
		for _, t := range it.targets {
			if !ok[t] {
				all = false
				if !it.drop {
					n.hints.add(t, []*transport.Request{&it.req})
				}
			}
		}
		if !all {
			failed = true
			continue
		}
		moved++
		bytes += int64(len(it.key) + len(it.req.Value))
		if it.drop && !n.dropIfUnchanged(it.key, it.req.Version) {
			failed = true // written meanwhile: the next pass sends the newer copy
		}
	}
	return moved, bytes, failed
}

// dropIfUnchanged deletes this node's copy of key if it still has the
// version that was handed off: a write that arrived meanwhile must not be
// lost with it.
func (n *Node) dropIfUnchanged(key string, version uint64) bool {
	gone := false
	_, _ = n.store.UpdateNoCopy(key, func(cur entry, found bool) (entry, bool) {
		if !found {
			gone = true
			return entry{}, false
		}
		if cur.Version != version {
			return entry{}, false
		}
		gone = true
		// An expiry in the past removes the key outright.
		return entry{Tombstone: true, Version: version, ExpireAt: 1}, true
	})
	return gone
}

// retryHints re-sends the current state of every key a replica missed.
// Hints for a member that left the ring are dropped: the pass that ran on
// that ring change already sent those keys to their new owners.
func (n *Node) retryHints(ctx context.Context) {
	hints, overrun := n.hints.take()
	if len(hints) == 0 && len(overrun) == 0 {
		return
	}
	v := n.view.Load()
	var ob [maxReplicas]string
	for target, keys := range hints {
		if !v.ring.Contains(target) {
			continue
		}
		addr := v.addrs[target]
		var reqs []*transport.Request
		for key := range keys {
			e, ok := n.store.Lookup(key)
			if !ok || !slices.Contains(v.ring.AppendOwners(ob[:0], key, n.cfg.Replicas), target) {
				continue
			}
			r := replicaRequest(key, e)
			reqs = append(reqs, &r)
		}
		for len(reqs) > 0 {
			batch := reqs[:min(len(reqs), n.cfg.HandoffBatch)]
			reqs = reqs[len(batch):]
			if n.peers.down(addr) || !n.pushedAll(ctx, addr, batch) {
				n.hints.add(target, batch)
				n.hints.add(target, reqs)
				break
			}
		}
	}
	for target := range overrun {
		if !v.ring.Contains(target) {
			continue
		}
		// Too many misses to track one by one: resend everything the
		// target should hold, as if it had just joined.
		members := v.ring.Members()
		without, err := ring.New(n.cfg.Ring, slices.DeleteFunc(members, func(m string) bool { return m == target }))
		if err == nil {
			n.pass(ctx, v, without, v.ring)
		}
	}
}

// pushedAll is pushBatch for callers that only need to know whether the
// peer took everything.
func (n *Node) pushedAll(ctx context.Context, addr string, reqs []*transport.Request) bool {
	ok, _ := n.pushBatch(ctx, addr, reqs, n.cfg.ForwardTimeout)
	return ok
}

// noteLeaver records, on a leaving node, that member refused a hand-off
// because it is leaving too; the node hands its keys to the others
// (handOffRemaining). Only a leaving node keeps this record, and only for
// the one leave it makes (handOffForLeave starts it afresh): a member
// seen leaving earlier may have come back since under the same name.
func (n *Node) noteLeaver(member string) {
	n.leaversMu.Lock()
	if n.leavers == nil {
		n.leavers = map[string]bool{}
	}
	n.leavers[member] = true
	n.leaversMu.Unlock()
}

// leaverCount is how many members noteLeaver has recorded.
func (n *Node) leaverCount() int {
	n.leaversMu.Lock()
	defer n.leaversMu.Unlock()
	return len(n.leavers)
}

// handOffRing is the ring a leaving node hands its keys by: v's ring
// without the members known to be leaving too. It is nil when they are
// all leaving: there is nobody left to hand to (the whole cluster is
// stopping).
func (n *Node) handOffRing(v *view) (*ring.Ring, int, error) {
	n.leaversMu.Lock()
	k := len(n.leavers)
	names := slices.DeleteFunc(v.ring.Members(), func(m string) bool { return n.leavers[m] })
	n.leaversMu.Unlock()
	if k == 0 {
		return v.ring, 0, nil
	}
	if len(names) == 0 {
		return nil, k, nil
	}
	r, err := ring.New(n.cfg.Ring, names)
	return r, k, err
}

// handOffForLeave moves every key this node holds to the nodes that will
// own it once it is gone, before the node leaves gossip. Requests that
// arrive meanwhile are routed by the ring without this node. It keeps part
// of ctx's time for leaving gossip and draining afterwards.
func (n *Node) handOffForLeave(ctx context.Context) {
	n.leaversMu.Lock()
	n.leavers = nil
	n.leaversMu.Unlock()
	n.leaving.Store(true)
	n.passMu.Lock() // wait for a running pass: it stops early now
	defer n.passMu.Unlock()
	if deadline, ok := ctx.Deadline(); ok {
		reserve := max(time.Second, time.Until(deadline)/5)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-reserve))
		defer cancel()
	}
	n.viewMu.Lock()
	v := n.view.Load()
	names := slices.DeleteFunc(v.ring.Members(), func(m string) bool { return m == n.cfg.Name })
	if len(names) == 0 {
		n.viewMu.Unlock()
		return // the last node: nobody to hand to
	}
	without, err := ring.New(n.cfg.Ring, names)
	if err != nil {
		n.viewMu.Unlock()
		n.log.Error("cannot build the ring for hand-off", "err", err)
		return
	}
	next := &view{ring: without, addrs: v.addrs, members: v.members, prev: v.ring, changed: time.Now(), settled: new(atomic.Bool)}
	n.view.Store(next)
	n.viewMu.Unlock()
	start := time.Now()
	n.pass(ctx, next, v.ring, without)
	n.handOffRemaining(ctx)
	n.log.Info("hand-off before leaving done", "took", time.Since(start).Round(time.Millisecond),
		"keys_left", n.store.Len())
}

// handOffRemaining sends whatever this leaving node still holds — keys a
// failed batch kept, or writes routed here by peers that had not yet heard
// it was leaving — until a pass finds nothing left or ctx ends.
//
// Members that refused keys because they are leaving too are routed
// around: when several nodes stop at once, each hands its keys to those
// that stay, and when every other member is leaving (the whole cluster
// stops) there is nobody to hand to and it gives up at once instead of
// retrying until ctx ends.
func (n *Node) handOffRemaining(ctx context.Context) {
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		v := n.view.Load()
		if v.ring.Contains(n.cfg.Name) || v.ring.Len() == 0 {
			return
		}
		r, leavers, err := n.handOffRing(v)
		if err != nil {
			n.log.Error("cannot build the ring for hand-off", "err", err)
			return
		}
		if r == nil {
			n.log.Warn("every other member is leaving too: nobody to hand the remaining keys to",
				"keys_left", n.store.Len())
			n.allLeaving.Store(true)
			return
		}
		res := n.pass(ctx, v, r, r)
		switch {
		case res.queued == 0:
			return
		case res.moved > 0 || n.leaverCount() > leavers:
			// Progress, or more members found leaving: go again at once.
			backoff = 10 * time.Millisecond
			continue
		}
		select { // no progress: a target is unreachable; wait a little
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// handOffStragglers runs after the node has left gossip: peers that routed
// writes here before hearing of the leave get them sent on.
func (n *Node) handOffStragglers(ctx context.Context) {
	n.passMu.Lock()
	defer n.passMu.Unlock()
	n.handOffRemaining(ctx)
}
