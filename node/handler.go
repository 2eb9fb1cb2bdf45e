package node

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/starlingcache/starling/node/resp"
	"github.com/starlingcache/starling/transport"
)

var _ transport.Handler = (*Node)(nil)

// ServeRequest implements transport.Handler. A request that needs nothing
// but this node's store is answered inline on the connection's read loop;
// one that must wait on a peer (forwarding, replication, a fallback read)
// continues in a goroutine, so a slow peer never stalls the requests
// pipelined behind it.
func (n *Node) ServeRequest(ctx context.Context, req *transport.Request, w transport.ResponseWriter) {
	n.awaitReady()
	b := n.newBatch()
	b.ar = &b.own // w.Reply encodes the answer before the batch is freed
	b.one[0] = req
	b.reqs, b.resps = b.one[:], b.oneResp[:]
	b.runLocal()
	if b.remoteIdle() {
		b.reply(w)
		n.freeBatch(b)
		return
	}
	if !n.track() {
		b.resps[0] = errResponse(fmt.Errorf("%w: %w", transport.ErrUnavailable, ErrShutdown))
		b.reply(w)
		n.freeBatch(b)
		return
	}
	go func() {
		defer n.reqWG.Done()
		b.runRemote(n.ctx)
		b.reply(w)
		n.freeBatch(b)
	}()
}

var _ transport.BatchHandler = (*Node)(nil)

// ServeBatch implements transport.BatchHandler: the requests a peer sent
// together (a forwarded pipeline) are executed as one batch, so their
// forwards and replica copies travel in one round trip per peer.
func (n *Node) ServeBatch(ctx context.Context, reqs []*transport.Request, w transport.ResponseWriter) {
	n.awaitReady()
	if len(reqs) == 1 {
		n.ServeRequest(ctx, reqs[0], w)
		return
	}
	b := n.newBatch()
	b.ar = &b.own
	// The transport may reuse reqs once we return; the batch keeps its own.
	b.reqBuf = append(b.reqBuf[:0], reqs...)
	b.respBuf = slices.Grow(b.respBuf[:0], len(reqs))[:len(reqs)]
	b.reqs, b.resps = b.reqBuf, b.respBuf
	b.runLocal()
	if b.remoteIdle() {
		b.replyAll(w)
		n.freeBatch(b)
		return
	}
	if !n.track() {
		for i := range b.resps {
			if b.resps[i] == nil {
				b.resps[i] = errResponse(fmt.Errorf("%w: %w", transport.ErrUnavailable, ErrShutdown))
			}
		}
		b.replyAll(w)
		n.freeBatch(b)
		return
	}
	go func() {
		defer n.reqWG.Done()
		b.runRemote(n.ctx)
		b.replyAll(w)
		n.freeBatch(b)
	}()
}

// replyAll sends every answer of a batch, stamped with the ring version.
func (b *batch) replyAll(w transport.ResponseWriter) {
	b.record()
	rv := b.v.ring.Version()
	for i, resp := range b.resps {
		resp.ID = b.reqs[i].ID
		resp.RingVersion = rv
	}
	w.ReplyAll(b.resps)
}

// reply sends a single-request batch's answer, stamped with this node's
// ring version so smart clients notice when their ring is out of date.
func (b *batch) reply(w transport.ResponseWriter) {
	b.record()
	resp := b.resps[0]
	resp.ID = b.reqs[0].ID
	resp.RingVersion = b.v.ring.Version()
	w.Reply(resp)
}

// Handle routes one request exactly as if it had arrived on the wire.
// Embedding programs call it.
func (n *Node) Handle(ctx context.Context, req *transport.Request) *transport.Response {
	resps := make([]*transport.Response, 1)
	n.Do(ctx, []*transport.Request{req}, resps)
	return resps[0]
}

// Do executes a pipeline's worth of requests: resps[i] answers reqs[i].
// Requests this node owns are served inline; the rest are grouped by owner
// and each group travels in one round trip, owners in parallel, because
// one round trip per command is what makes forwarding slow. Replication of
// the batch's local writes is grouped the same way.
func (n *Node) Do(ctx context.Context, reqs []*transport.Request, resps []*transport.Response) {
	n.DoArena(ctx, reqs, resps, nil)
}

var _ resp.ScratchBackend = (*Node)(nil)

// NewScratch implements resp.ScratchBackend: a RESP connection's answers
// are built in an Arena.
func (n *Node) NewScratch() resp.Scratch { return new(Arena) }

// DoScratch implements resp.ScratchBackend with DoArena.
func (n *Node) DoScratch(ctx context.Context, reqs []*transport.Request, resps []*transport.Response, s resp.Scratch) {
	a, _ := s.(*Arena)
	n.DoArena(ctx, reqs, resps, a)
}

// DoArena is Do with the answers and the values they read built in a, when
// a is not nil, instead of allocated one by one: a front end that keeps an
// Arena per connection and resets it once the replies are written serves
// GETs and SETs without allocating, those it forwards included (their
// owners' replies are decoded into a).
func (n *Node) DoArena(ctx context.Context, reqs []*transport.Request, resps []*transport.Response, a *Arena) {
	n.awaitReady()
	b := n.newBatch()
	b.reqs, b.resps, b.ar = reqs, resps, a
	b.runLocal()
	if !b.remoteIdle() {
		b.runRemote(ctx)
	}
	b.record()
	n.freeBatch(b)
}

// Broadcast sends req to every member this node sees, itself included, and
// returns their replies in member order. Cluster-wide commands (DBSIZE,
// FLUSHALL) sum or check them.
func (n *Node) Broadcast(ctx context.Context, req *transport.Request) []*transport.Response {
	v := n.view.Load()
	names := v.ring.Members()
	if len(names) == 0 { // not started yet: answer for ourselves
		return []*transport.Response{n.serveLocal(req)}
	}
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
			fwd := *req
			fwd.Flags |= transport.FlagForwarded
			out[i] = n.call(ctx, v.addrs[name], &fwd)
		}()
	}
	wg.Wait()
	return out
}

// call sends one request to a peer and converts a transport failure into
// an "unavailable" response naming the peer.
func (n *Node) call(ctx context.Context, addr string, req *transport.Request) *transport.Response {
	r := *req
	r.ID = 0
	resp, err := n.client.CallWithin(ctx, addr, &r, n.cfg.ForwardTimeout)
	if err != nil {
		n.callFailed(ctx, addr, err)
		return unavailable(addr, err)
	}
	return resp
}

func unavailable(addr string, err error) *transport.Response {
	return errResponse(fmt.Errorf("%w: node %s: %w", transport.ErrUnavailable, addr, err))
}

func errResponse(err error) *transport.Response {
	return &transport.Response{Code: transport.CodeOf(err), Err: err.Error()}
}

func notFound() *transport.Response { return &transport.Response{Code: transport.CodeNotFound} }

func boolResponse(ok bool) *transport.Response {
	if ok {
		return &transport.Response{Int: 1}
	}
	return &transport.Response{}
}
