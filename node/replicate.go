package node

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starlingcache/starling/transport"
)

// sendReplicas delivers copies of writes to their replicas, one batch per
// replica, all sent before any is waited for and bounded together by
// ReplicaTimeout. A replica that is known to be down is not waited for at
// all. Every copy that does not arrive becomes a hint, retried until it
// lands or the ring changes.
func (n *Node) sendReplicas(ctx context.Context, v *view, items []replItem) {
	type push struct {
		target string
		reqs   []*transport.Request
		addr   string
		flight *transport.Flight
	}
	// Targets are few (Replicas-1 per key): a linear scan beats a map.
	var buf [maxReplicas]push
	pushes := buf[:0]
outer:
	for i := range items {
		for k := range pushes {
			if pushes[k].target == items[i].target {
				pushes[k].reqs = append(pushes[k].reqs, &items[i].req)
				continue outer
			}
		}
		pushes = append(pushes, push{target: items[i].target, reqs: []*transport.Request{&items[i].req}})
	}
	for k := range pushes {
		p := &pushes[k]
		addr, ok := v.addrs[p.target]
		if !ok || n.peers.down(addr) {
			n.hints.add(p.target, p.reqs)
			continue
		}
		p.addr, p.flight = addr, n.client.StartWithin(ctx, addr, p.reqs, n.cfg.ReplicaTimeout)
	}
	for _, p := range pushes {
		if p.flight == nil {
			continue // hinted above
		}
		if ok, _ := n.pushed(ctx, p.addr, p.reqs, p.flight); !ok {
			n.hints.add(p.target, p.reqs)
		}
	}
}

// pushBatch sends OpReplicate requests to addr in one round trip and
// reports whether the peer took all of them (applied, or already had
// something newer), and whether it refused them because it is leaving.
func (n *Node) pushBatch(ctx context.Context, addr string, reqs []*transport.Request, timeout time.Duration) (ok, leaving bool) {
	return n.pushed(ctx, addr, reqs, n.client.StartWithin(ctx, addr, reqs, timeout))
}

// pushed waits for a push of OpReplicate requests, started for a caller
// whose context is ctx, and reports whether the peer took all of them, and
// whether it refused them because it is leaving.
func (n *Node) pushed(ctx context.Context, addr string, reqs []*transport.Request, f *transport.Flight) (ok, leaving bool) {
	out, err := f.Wait()
	defer f.Release() // once out is read
	if err != nil {
		n.callFailed(ctx, addr, err)
		return false, false
	}
	for _, r := range out {
		if r == nil || r.Code != transport.CodeOK {
			return false, isLeavingRefusal(r)
		}
	}
	n.stats.replicated.Add(int64(len(reqs)))
	return true, false
}

// peerHealth remembers peers that just failed a call, so requests skip
// them for a short backoff instead of each paying a timeout while gossip
// is still deciding whether the peer is dead.
type peerHealth struct {
	backoff time.Duration
	// marked mirrors len(downUntil), so that down, asked for every
	// forwarded request, costs one atomic load while no peer is marked:
	// no lock, map lookup or clock reading.
	marked atomic.Int32
	now    func() time.Time // time.Now; tests set their own

	mu        sync.Mutex
	downUntil map[string]peerMark
}

// peerMark is why and until when a peer is skipped.
type peerMark struct {
	until time.Time
	// unreached says the failure was that the peer could not be reached
	// at all (transport.Unreached): a refused connection, say, not a
	// timeout. Only such a mark moves a write that must not be applied
	// twice past the peer (see skip).
	unreached bool
}

func newPeerHealth(backoff time.Duration) *peerHealth {
	return &peerHealth{backoff: backoff, now: time.Now, downUntil: map[string]peerMark{}}
}

// failed records a failed call to addr if the failure says the peer is
// unreachable or unresponsive (not, say, that our own context ended).
func (p *peerHealth) failed(addr string, err error) { p.failedAfter(addr, err, 1) }

// failedAfter is failed for a batch of which the first sent requests may
// have reached addr (Flight.Sent): whether the peer was reached at all is
// told by the first request's fate.
func (p *peerHealth) failedAfter(addr string, err error, sent int) {
	if addr == "" || errors.Is(err, context.Canceled) || errors.Is(err, transport.ErrClosed) || !failoverable(err) {
		return
	}
	m := peerMark{until: p.now().Add(p.backoff), unreached: transport.Unreached(err, 0, sent)}
	p.mu.Lock()
	p.downUntil[addr] = m
	p.marked.Store(int32(len(p.downUntil)))
	p.mu.Unlock()
}

// callFailed records a failed call made for a caller whose context is ctx
// (flightFailed for a lone call).
func (n *Node) callFailed(ctx context.Context, addr string, err error) {
	n.flightFailed(ctx, addr, err, 1)
}

// flightFailed records a failed batch to addr, of which the first sent
// requests may have reached it, made for a caller whose context is ctx.
// A timeout once the caller's own time ran out is not recorded: the
// transport reports a caller's deadline that passed as a timeout, which
// says nothing about the peer, and a mark would have healthy owners
// skipped for PeerBackoff by every request after it (and, in a resync
// window, a read served from this node's own copy). So an embedding
// program's short deadline cannot turn a slow owner into a down one for
// everybody; failure detection and callers with time to wait still mark
// one that hangs. Any other failure (a refused dial, a lost connection)
// is the peer's, whenever it is seen: a wave waits for all its flights
// before any is judged, so one owner's loss may be judged after another
// owner used up the caller's time.
func (n *Node) flightFailed(ctx context.Context, addr string, err error, sent int) {
	// A call whose caller's deadline comes first runs no timer of its own
	// (see transport's call.arm): it ends on ctx, so ctx.Err() is set.
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return
	}
	n.peers.failedAfter(addr, err, sent)
}

// down reports whether addr failed within the backoff.
func (p *peerHealth) down(addr string) bool { return p.skip(addr, true) }

// skip reports whether a request should pass over addr for now: any
// failure within the backoff counts if anyFailure is set, else only one
// where addr could not be reached at all. A request that must not be
// applied twice passes over an owner only in the second case: one that
// timed out may only have been slow, and still coordinates the key for
// every node that reaches it.
func (p *peerHealth) skip(addr string, anyFailure bool) bool {
	if p.marked.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Expired marks go, whoever they are for: a mark for a peer nobody
	// asks about any more (it left) would keep every call on this path.
	now := p.now()
	for a, m := range p.downUntil {
		if now.After(m.until) {
			delete(p.downUntil, a)
		}
	}
	p.marked.Store(int32(len(p.downUntil)))
	m, ok := p.downUntil[addr]
	return ok && (anyFailure || m.unreached)
}

// hintSet holds the keys each replica missed. Only key names are kept: on
// retry the current entry is read from the store, so a hint never carries
// stale data and repeated writes to one key cost one hint.
type hintSet struct {
	max int // per target; past it the target needs a full resync

	mu      sync.Mutex
	keys    map[string]map[string]struct{} // target -> keys
	overrun map[string]bool                // targets whose hints overflowed
}

func newHintSet(max int) *hintSet {
	return &hintSet{max: max, keys: map[string]map[string]struct{}{}, overrun: map[string]bool{}}
}

func (h *hintSet) add(target string, reqs []*transport.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.keys[target]
	if m == nil {
		m = map[string]struct{}{}
		h.keys[target] = m
	}
	for _, r := range reqs {
		if len(m) >= h.max {
			h.overrun[target] = true
			return
		}
		if _, ok := m[r.Key]; !ok {
			// A hint may be kept for long, and a key decoded from the
			// network may share its memory with others' (see
			// transport.Handler): keep a copy of its own.
			m[strings.Clone(r.Key)] = struct{}{}
		}
	}
}

// take removes and returns every hint, and the targets that overflowed.
func (h *hintSet) take() (map[string]map[string]struct{}, map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys, over := h.keys, h.overrun
	h.keys, h.overrun = map[string]map[string]struct{}{}, map[string]bool{}
	return keys, over
}

// pending counts keys waiting for at least one replica.
func (h *hintSet) pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	total := 0
	for _, m := range h.keys {
		total += len(m)
	}
	return total
}
