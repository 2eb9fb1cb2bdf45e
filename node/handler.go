package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/starlingcache/starling/node/store"
	"github.com/starlingcache/starling/transport"
)

var _ transport.Handler = (*Node)(nil)

// ServeRequest implements transport.Handler. Requests this node can answer
// from its own store are answered inline on the connection's read loop;
// requests for another owner are forwarded from a goroutine so that a slow
// or dead owner never stalls the other requests pipelined on the connection.
func (n *Node) ServeRequest(ctx context.Context, req *transport.Request, w transport.ResponseWriter) {
	addr, resp := n.route(n.view.Load(), req)
	if resp != nil {
		resp.ID = req.ID
		w.Reply(resp)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		resp := n.forward(n.ctx, addr, req)
		resp.ID = req.ID
		w.Reply(resp)
	}()
}

// Handle routes one request exactly as if it had arrived on the wire: it is
// answered locally or forwarded to the key's owner. Embedding programs call
// it.
func (n *Node) Handle(ctx context.Context, req *transport.Request) *transport.Response {
	addr, resp := n.route(n.view.Load(), req)
	if resp != nil {
		return resp
	}
	return n.forward(ctx, addr, req)
}

// Do executes a pipeline's worth of requests: resps[i] answers reqs[i].
// Requests this node owns are served inline; the rest are grouped by owner
// and each group travels in one round trip, owners in parallel, because one
// round trip per command is what makes forwarding slow.
func (n *Node) Do(ctx context.Context, reqs []*transport.Request, resps []*transport.Response) {
	v := n.view.Load()
	var groups []forwardGroup
	for i, req := range reqs {
		addr, resp := n.route(v, req)
		if resp != nil {
			resps[i] = resp
			continue
		}
		g := findGroup(groups, addr)
		if g < 0 {
			groups = append(groups, forwardGroup{addr: addr})
			g = len(groups) - 1
		}
		groups[g].idx = append(groups[g].idx, i)
	}
	if len(groups) == 0 {
		return
	}
	var wg sync.WaitGroup
	for i := range groups[1:] {
		g := &groups[i+1]
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.forwardBatch(ctx, g, reqs, resps)
		}()
	}
	n.forwardBatch(ctx, &groups[0], reqs, resps)
	wg.Wait()
}

// forwardGroup is the requests of one batch that go to one owner.
type forwardGroup struct {
	addr string
	idx  []int
}

func findGroup(groups []forwardGroup, addr string) int {
	for i := range groups {
		if groups[i].addr == addr {
			return i
		}
	}
	return -1
}

// forwardBatch sends one owner's share of a batch in a single round trip.
func (n *Node) forwardBatch(ctx context.Context, g *forwardGroup, reqs []*transport.Request, resps []*transport.Response) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
	defer cancel()
	batch := make([]*transport.Request, len(g.idx))
	fwd := make([]transport.Request, len(g.idx))
	for j, i := range g.idx {
		fwd[j] = *reqs[i]
		fwd[j].ID = 0
		fwd[j].Flags |= transport.FlagForwarded
		batch[j] = &fwd[j]
	}
	n.stats.forwarded.Add(int64(len(batch)))
	out, err := n.client.CallBatch(ctx, g.addr, batch)
	for j, i := range g.idx {
		if err != nil {
			resps[i] = unavailable(g.addr, err)
		} else {
			resps[i] = out[j]
		}
	}
}

// Broadcast sends req to every member this node sees, itself included, and
// returns their replies in member order. Cluster-wide commands (DBSIZE,
// FLUSHALL) sum or check them.
func (n *Node) Broadcast(ctx context.Context, req *transport.Request) []*transport.Response {
	v := n.view.Load()
	names := v.ring.Members()
	out := make([]*transport.Response, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		if name == n.cfg.Name {
			out[i] = n.serveLocal(req)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = n.forward(ctx, v.addrs[name], req)
		}()
	}
	if len(names) == 0 { // not started yet: answer for ourselves
		out = append(out, n.serveLocal(req))
	}
	wg.Wait()
	return out
}

// keyed reports whether op acts on Key and so is routed to the key's owner.
func keyed(op transport.Op) bool {
	switch op {
	case transport.OpGet, transport.OpSet, transport.OpDelete, transport.OpGetDel,
		transport.OpExpire, transport.OpTTL, transport.OpIncr, transport.OpAppend,
		transport.OpExists, transport.OpGetEx:
		return true
	}
	return false
}

// route decides where req is served. A non-nil resp is the final answer
// (served here, or an error); otherwise req must be forwarded to addr.
func (n *Node) route(v *view, req *transport.Request) (addr string, resp *transport.Response) {
	if !keyed(req.Op) {
		// Operations about the node itself, or unknown ones, are answered here.
		return "", n.serveLocal(req)
	}
	if err := n.checkKey(req); err != nil {
		return "", errResponse(err)
	}
	if req.Flags&transport.FlagForwarded != 0 {
		// Never route a forwarded request again: if our ring disagrees with
		// the sender's, serving it here is still better than a loop.
		return "", n.serveLocal(req)
	}
	owner := v.ring.Owner(req.Key)
	if owner == "" || owner == n.cfg.Name {
		return "", n.serveLocal(req)
	}
	addr, ok := v.addrs[owner]
	if !ok {
		return "", errResponse(fmt.Errorf("%w: no address known for owner %s", transport.ErrUnavailable, owner))
	}
	return addr, nil
}

// checkKey rejects what no node would store before spending a network hop
// on it.
func (n *Node) checkKey(req *transport.Request) error {
	if req.Key == "" {
		return fmt.Errorf("%w: empty key", transport.ErrBadRequest)
	}
	if len(req.Key) > n.cfg.Store.MaxKeySize {
		return fmt.Errorf("%w: key is %d bytes, limit %d", transport.ErrTooLarge, len(req.Key), n.cfg.Store.MaxKeySize)
	}
	if (req.Op == transport.OpSet || req.Op == transport.OpAppend) && len(req.Value) > n.cfg.Store.MaxValueSize {
		return fmt.Errorf("%w: value is %d bytes, limit %d", transport.ErrTooLarge, len(req.Value), n.cfg.Store.MaxValueSize)
	}
	if req.TTL < 0 && req.Op != transport.OpExpire {
		return fmt.Errorf("%w: negative TTL", transport.ErrBadRequest)
	}
	return nil
}

// forward sends req to the owner at addr, marked so the owner serves it
// itself, and turns transport failures into an error response naming the
// owner.
func (n *Node) forward(ctx context.Context, addr string, req *transport.Request) *transport.Response {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
	defer cancel()
	fwd := *req
	fwd.ID = 0
	fwd.Flags |= transport.FlagForwarded
	n.stats.forwarded.Add(1)
	resp, err := n.client.Call(ctx, addr, &fwd)
	if err != nil {
		return unavailable(addr, err)
	}
	return resp
}

func unavailable(addr string, err error) *transport.Response {
	return errResponse(fmt.Errorf("%w: owner %s: %w", transport.ErrUnavailable, addr, err))
}

// serveLocal answers req from this node's own store.
func (n *Node) serveLocal(req *transport.Request) *transport.Response {
	if keyed(req.Op) {
		n.stats.local.Add(1)
	}
	st := n.store
	switch req.Op {
	case transport.OpPing:
		return &transport.Response{}
	case transport.OpMembers:
		return &transport.Response{Members: n.Members()}
	case transport.OpGet:
		val, expireAt, ok := st.Get(req.Key)
		if !ok {
			return notFound()
		}
		return &transport.Response{Value: val, TTL: remainingMillis(expireAt)}
	case transport.OpSet:
		res, err := st.SetWith(req.Key, req.Value, store.SetOptions{
			ExpireAt:  expiryFromTTL(req.TTL),
			KeepTTL:   req.Flags&transport.FlagKeepTTL != 0,
			IfAbsent:  req.Flags&transport.FlagIfAbsent != 0,
			IfPresent: req.Flags&transport.FlagIfPresent != 0,
			GetOld:    req.Flags&transport.FlagGetOld != 0,
		})
		if err != nil {
			return errResponse(storeError(err))
		}
		resp := &transport.Response{HasOld: res.HadOld && req.Flags&transport.FlagGetOld != 0, Value: res.Old}
		if res.Stored {
			resp.Int = 1
		}
		return resp
	case transport.OpDelete:
		if !st.Delete(req.Key) {
			return notFound()
		}
		return &transport.Response{Int: 1}
	case transport.OpGetDel:
		val, ok := st.GetDel(req.Key)
		if !ok {
			return notFound()
		}
		return &transport.Response{Value: val}
	case transport.OpExpire:
		var ok bool
		switch {
		case req.Flags&transport.FlagPersist != 0:
			ok = st.Expire(req.Key, 0)
		case req.TTL <= 0: // an expiry in the past deletes, as in Redis
			ok = st.Delete(req.Key)
		default:
			ok = st.Expire(req.Key, expiryFromTTL(req.TTL))
		}
		return boolResponse(ok)
	case transport.OpTTL:
		expireAt, ok := st.TTL(req.Key)
		if !ok {
			return notFound()
		}
		return &transport.Response{TTL: remainingMillis(expireAt)}
	case transport.OpIncr:
		v, err := st.IncrBy(req.Key, req.Delta)
		if err != nil {
			return errResponse(storeError(err))
		}
		return &transport.Response{Int: v}
	case transport.OpAppend:
		l, err := st.Append(req.Key, req.Value)
		if err != nil {
			return errResponse(storeError(err))
		}
		return &transport.Response{Int: int64(l)}
	case transport.OpExists:
		_, ok := st.TTL(req.Key)
		return boolResponse(ok)
	case transport.OpGetEx:
		val, expireAt, ok := st.Get(req.Key)
		if !ok {
			return notFound()
		}
		switch {
		case req.Flags&transport.FlagPersist != 0:
			st.Expire(req.Key, 0)
			expireAt = 0
		case req.TTL > 0:
			expireAt = expiryFromTTL(req.TTL)
			st.Expire(req.Key, expireAt)
		}
		return &transport.Response{Value: val, TTL: remainingMillis(expireAt)}
	case transport.OpDBSize:
		return &transport.Response{Int: int64(st.Len())}
	case transport.OpFlushAll:
		st.Flush()
		return &transport.Response{}
	case transport.OpStats:
		s := n.Stats()
		return &transport.Response{Stats: &s}
	}
	return errResponse(fmt.Errorf("%w: %s", transport.ErrUnknownOp, req.Op))
}

// Stats returns this node's counters.
func (n *Node) Stats() transport.Stats {
	s := n.store.Stats()
	return transport.Stats{
		Entries:     s.Entries,
		Bytes:       s.Bytes,
		MaxMemory:   s.MaxMemory,
		Hits:        s.Hits,
		Misses:      s.Misses,
		Evictions:   s.Evictions,
		Expirations: s.Expirations,
		Forwarded:   n.stats.forwarded.Load(),
		Local:       n.stats.local.Load(),
	}
}

func notFound() *transport.Response { return &transport.Response{Code: transport.CodeNotFound} }

func boolResponse(ok bool) *transport.Response {
	if ok {
		return &transport.Response{Int: 1}
	}
	return &transport.Response{}
}

// expiryFromTTL converts a TTL in milliseconds into the store's absolute
// expiry in Unix nanoseconds; 0 means none.
func expiryFromTTL(ttlMillis int64) int64 {
	if ttlMillis <= 0 {
		return 0
	}
	return time.Now().Add(time.Duration(ttlMillis) * time.Millisecond).UnixNano()
}

// remainingMillis converts an absolute expiry back into the remaining TTL,
// rounded up so a live key never reports 0 (which means "no expiry").
func remainingMillis(expireAt int64) int64 {
	if expireAt == 0 {
		return 0
	}
	left := expireAt - time.Now().UnixNano()
	if left <= 0 {
		return 1
	}
	return (left + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}

// storeError maps the store's errors onto the wire's sentinel errors.
func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrTooLarge):
		return fmt.Errorf("%w: %w", transport.ErrTooLarge, err)
	case errors.Is(err, store.ErrNotInteger):
		return transport.ErrNotInteger
	case errors.Is(err, store.ErrOverflow):
		return transport.ErrOverflow
	}
	return err
}

func errResponse(err error) *transport.Response {
	return &transport.Response{Code: transport.CodeOf(err), Err: err.Error()}
}
