package node

import (
	"context"
	"slices"

	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// After a ring change, a read that misses on a key's new owner asks the
// key's previous owners, for up to HandoffGrace, in case the key is still
// on its way. Most of that window is usually wasted: a hand-off pass takes
// well under a second for a million keys, and a freshly formed cluster has
// nothing to hand over at all, yet every miss would pay a round trip. So
// each member, once its pass for a ring change has delivered everything,
// tells the others; a node whose previous owners have all reported stops
// fetching at once.

// maxSettleVersions bounds the ring versions whose reports are kept.
const maxSettleVersions = 8

// announceHandoffDone tells every other member of v's ring that this
// node's pass from prev to v.ring delivered every key it had to send.
func (n *Node) announceHandoffDone(v *view, prev *ring.Ring) {
	req := transport.Request{Op: transport.OpHandoffDone, Key: n.cfg.Name,
		Version: v.ring.Version(), Delta: int64(prev.Version())}
	for _, name := range v.ring.Members() {
		addr, ok := v.addrs[name]
		if name == n.cfg.Name || !ok {
			continue
		}
		if !n.track() {
			return
		}
		go func() {
			defer n.reqWG.Done()
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ReplicaTimeout)
			defer cancel()
			r := req
			if _, err := n.client.Call(ctx, addr, &r); err != nil {
				n.log.Debug("hand-off report not delivered; the grace window applies", "to", name, "err", err)
			}
		}()
	}
}

// noteHandoffDone records a member's report (see announceHandoffDone).
func (n *Node) noteHandoffDone(req *transport.Request) *transport.Response {
	if req.Key == "" || req.Version == 0 {
		return errResponse(transport.ErrBadRequest)
	}
	n.settleMu.Lock()
	if n.settleFrom == nil {
		n.settleFrom = make(map[settleKey]map[string]bool)
	}
	k := settleKey{to: req.Version}
	if n.settleFrom[k] == nil {
		if len(n.settleFrom) >= maxSettleVersions {
			clear(n.settleFrom) // old ring changes: nobody waits on them
		}
		n.settleFrom[k] = make(map[string]bool)
	}
	n.settleFrom[k][req.Key] = true
	n.settleMu.Unlock()
	n.checkSettled(n.view.Load())
	return &transport.Response{}
}

// settleKey names the ring a hand-off brought the store up to. The ring
// the reporter started from is not part of it: members see different
// intermediate rings (a joiner treats the whole cluster as its previous
// ring), and whichever path a member took, its report says it has sent
// every key it holds to that key's owners under the new ring.
type settleKey struct{ to uint64 }

// checkSettled marks v settled when every member of v.prev that is still
// in the ring has reported its hand-off to v's ring. A member that left or died cannot
// report; its keys reach us from their other replicas, who can.
func (n *Node) checkSettled(v *view) {
	if v.prev == nil || v.settled == nil || v.settled.Load() {
		return
	}
	n.settleMu.Lock()
	from := n.settleFrom[settleKey{to: v.ring.Version()}]
	done := true
	for _, m := range v.prev.Members() {
		if m != n.cfg.Name && v.ring.Contains(m) && !from[m] {
			done = false
			break
		}
	}
	n.settleMu.Unlock()
	if done && slices.ContainsFunc(v.prev.Members(), func(m string) bool { return m != n.cfg.Name }) {
		v.settled.Store(true)
	}
}
