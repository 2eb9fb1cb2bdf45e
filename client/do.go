package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/starlingcache/starling/transport"
)

// maxFallback bounds how many nodes a smart call tries, after the key's
// owners, by sending the request unmarked for them to route: a client whose
// ring is out of date, or that cannot reach owners a node can.
const maxFallback = 2

// maxCandidates bounds the nodes one request is tried on.
const maxCandidates = MaxReplicas + maxFallback

// route is one request's way through the cluster: the nodes to try, in
// order, and whether each gets the request marked as already routed.
type route struct {
	cands  [maxCandidates]*member
	direct [maxCandidates]bool // send with FlagForwarded: the node serves it
	n      int
	next   int
	err    error // why the last attempt failed
	group  int   // Do's group for the current round
	// fallbacks says plan found a node to fall back on after the owners
	// but left listing them to more: nearly every request is answered by
	// its first owner, and listing them was a fifth of the time routing a
	// key took against three nodes.
	fallbacks bool
	fwd       []*member // the table's fwd, for more
}

func (rt *route) add(m *member, direct bool) {
	if rt.n == len(rt.cands) || rt.has(m) {
		return
	}
	rt.cands[rt.n], rt.direct[rt.n] = m, direct
	rt.n++
}

// has reports whether m (or a node at its address) is a candidate.
func (rt *route) has(m *member) bool {
	for _, c := range rt.cands[:rt.n] {
		if c == m || c.addr == m.addr {
			return true
		}
	}
	return false
}

// left reports whether another candidate remains, counting fallbacks not
// yet listed.
func (rt *route) left() bool { return rt.next < rt.n || rt.fallbacks }

// more reports whether another candidate remains, listing the fallbacks
// plan deferred once the owners are used up. They are judged by the
// nodes' health then, not when the request was planned: a node marked
// down meanwhile (by this request's owners' failure, say, or another
// request's) is skipped, as a fresh plan would skip it, and another takes
// its place; if none is left, the request fails there.
func (rt *route) more() bool {
	if rt.next == rt.n && rt.fallbacks {
		rt.fallbacks = false
		owned, now := rt.n, time.Now().UnixNano()
		for _, m := range rt.fwd {
			if rt.n-owned == maxFallback {
				break
			}
			if !m.down(now) {
				rt.add(m, false)
			}
		}
	}
	return rt.next < rt.n
}

// stop leaves rt no candidate to try.
func (rt *route) stop() {
	rt.next, rt.fallbacks = rt.n, false
}

// plan fills rt for req. With a table, a keyed request goes to the key's
// owners (healthy ones first, in ring order), then to up to maxFallback
// other nodes to route it (listed only if needed: see more); anything else
// goes to the configured addresses, then the other members, healthy ones
// first.
func (c *Client) plan(rt *route, t *table, req *transport.Request, now int64) {
	rt.n, rt.next, rt.err, rt.fallbacks = 0, 0, nil, false
	fwd := c.seeds
	if t != nil {
		fwd = t.fwd
		if req.Op.Keyed() {
			var buf [MaxReplicas]int
			owners := t.ring.AppendOwnerIndexes(buf[:0], req.Key, c.cfg.Replicas)
			// A write that must not be applied twice puts last only an
			// owner that could not be reached at all: one that timed out
			// may only have been slow, and still coordinates the key for
			// the nodes and clients that reach it, so a replica taking
			// over would race it (see retryable).
			repeat := req.Repeatable()
			for pass := range 2 {
				for _, o := range owners {
					m := t.byIndex[o]
					last := m.down(now)
					if !repeat {
						last = m.unreached(now)
					}
					if last == (pass == 1) {
						rt.add(m, true)
					}
				}
			}
			for _, m := range fwd {
				if !m.down(now) && !rt.has(m) {
					rt.fallbacks, rt.fwd = true, fwd
					break
				}
			}
			return
		}
	}
	for pass := range 2 {
		for _, m := range fwd {
			if m.down(now) == (pass == 1) {
				rt.add(m, false)
			}
		}
	}
}

// call sends one request and returns the node's answer, or the error
// (wrapping ErrUnavailable, or ErrTooLarge for an oversized request) that
// kept every node it tried from answering. The answer may itself be an
// error: see Response.Error.
func (c *Client) call(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	start := time.Now()
	var rt route
	c.plan(&rt, c.tableFor(ctx), req, start.UnixNano())
	derived := false
	for rt.more() {
		m, direct := rt.cands[rt.next], rt.direct[rt.next]
		rt.next++
		setDirect(req, direct)
		if rt.next > 1 && !derived {
			var cancel context.CancelFunc
			if ctx, cancel = c.overall(ctx, start); cancel != nil {
				defer cancel()
			}
			derived = true
		}
		resp, err := c.tc.CallWithin(ctx, m.addr, req, c.attempt(ctx, req.Repeatable() && rt.left()))
		if err == nil {
			c.noteVersion(resp.RingVersion, m.addr)
			return resp, nil
		}
		rt.err = c.failed(ctx, m, err, 1)
		if !retryable(ctx, req, err, transport.Unreached(err, 0, 1)) {
			break
		}
	}
	if rt.err == nil {
		rt.err = fmt.Errorf("%w: no node to send to", ErrUnavailable)
	}
	return nil, rt.err
}

// Do sends a pipeline of requests and waits for every answer: resps[i]
// answers reqs[i] (resps must be at least as long as reqs). A smart client
// groups the requests by owner and sends each group in one write, owners in
// parallel; otherwise the whole batch goes to one node. A request that no
// node answered gets a CodeUnavailable (or CodeTooLarge) response saying
// why, so resps[i].Error() is the per-request outcome either way; the
// returned error is the first such delivery failure, nil if every request
// was answered.
//
// Responses are allocated several at a time: keeping one also keeps a few
// others' memory (together at most about a megabyte); copy what you keep
// for long.
//
// Do owns reqs until it returns: it sets each ID and sets or clears
// FlagForwarded (requests sent straight to an owner carry it, so the node
// serves them without another hop); leave both to Do.
func (c *Client) Do(ctx context.Context, reqs []*transport.Request, resps []*transport.Response) error {
	if len(resps) < len(reqs) {
		return fmt.Errorf("%w: %d responses for %d requests", ErrInvalidArgument, len(resps), len(reqs))
	}
	switch len(reqs) {
	case 0:
		return nil
	case 1:
		resp, err := c.call(ctx, reqs[0])
		if err != nil {
			resp = failure(err)
		}
		resps[0] = resp
		return err
	}
	start := time.Now()
	t := c.tableFor(ctx)
	// Put back explicitly at the end, not deferred: after a panic a
	// flight's goroutine could still hold subs.
	st := c.getDoState(len(reqs))
	routes := st.routes
	pending, order := st.scratch[:len(reqs)], st.scratch[len(reqs):]
	for i, req := range reqs {
		c.plan(&routes[i], t, req, start.UnixNano())
		pending[i] = i
	}
	var firstErr error
	fail := func(i int) {
		rt := &routes[i]
		if rt.err == nil {
			rt.err = fmt.Errorf("%w: no node to send to", ErrUnavailable)
		}
		resps[i] = failure(rt.err)
		if firstErr == nil {
			firstErr = rt.err
		}
	}
	groups := st.groups[:0]
	// Every round moves each pending request to its next candidate, so
	// there are at most maxCandidates rounds.
	for round := 0; len(pending) > 0; round++ {
		if round == 1 {
			var cancel context.CancelFunc
			if ctx, cancel = c.overall(ctx, start); cancel != nil {
				defer cancel()
			}
		}
		// Group by target: count, then lay the indexes out contiguously.
		groups = groups[:0]
		sent := 0
		for _, i := range pending {
			rt := &routes[i]
			resps[i] = nil
			if !rt.more() {
				fail(i)
				continue
			}
			m := rt.cands[rt.next]
			setDirect(reqs[i], rt.direct[rt.next])
			rt.next++
			g := 0
			for g < len(groups) && groups[g].m != m {
				g++
			}
			if g == len(groups) {
				groups = append(groups, group{m: m})
			}
			groups[g].n++
			rt.group = g
			sent++
		}
		off := 0
		for g := range groups {
			groups[g].lo, groups[g].hi = off, off
			off += groups[g].n
		}
		for _, i := range pending {
			if resps[i] == nil {
				g := &groups[routes[i].group]
				order[g.hi] = i
				g.hi++
			}
		}
		// Every owner's group leaves before any reply is waited for: the
		// nodes work in parallel, with no goroutine per node. Groups with
		// the same bound (all of them, but in a pipeline mixing reads and
		// writes) leave as one wave, waited for with one timer and one
		// wake-up.
		same := true
		for g := range groups {
			lo, hi := groups[g].lo, groups[g].hi
			groups[g].prepare(ctx, c, order[lo:hi], st.subs[lo:hi:hi], reqs, routes)
			same = same && groups[g].d == groups[0].d
		}
		var w *transport.Wave
		if same && len(groups) > 1 {
			w = c.tc.NewWave(ctx, groups[0].d)
		}
		for g := range groups {
			groups[g].start(ctx, c, w)
		}
		if w != nil {
			w.Wait()
		}
		for g := range groups {
			groups[g].finish(ctx, c, order[groups[g].lo:groups[g].hi], reqs, resps, routes)
		}
		if w != nil {
			w.Release()
		}
		pending = pending[:0]
		for _, i := range order[:sent] {
			if resps[i] != nil {
				continue
			}
			if routes[i].more() {
				pending = append(pending, i)
			} else {
				fail(i)
			}
		}
	}
	st.groups = groups // keep what it grew to
	c.putDoState(st)
	return firstErr
}

// group is the requests of one round that go to one node: order[lo:hi].
type group struct {
	m      *member
	n      int
	lo, hi int
	// Set by prepare, used by start.
	sub []*transport.Request
	d   time.Duration // the attempt's bound (see attempt)
	// Set by start, used by finish.
	flight *transport.Flight
}

// prepare lays out the requests reqs[idx...] for the group's node in sub,
// as long as idx, which holds them for the flight until finish, and
// works out the attempt's bound.
func (g *group) prepare(ctx context.Context, c *Client, idx []int, sub, reqs []*transport.Request, routes []route) {
	reads := true
	for j, i := range idx {
		sub[j] = reqs[i]
		reads = reads && reqs[i].Op.ReadOnly() && routes[i].left()
	}
	g.sub, g.d = sub, c.attempt(ctx, reads)
}

// start sends the group's requests to its node in one write, without
// waiting for the replies: as part of w if it is not nil (w's bound is
// then the group's).
func (g *group) start(ctx context.Context, c *Client, w *transport.Wave) {
	if w != nil {
		g.flight = w.Start(g.m.addr, g.sub)
	} else {
		g.flight = c.tc.StartWithin(ctx, g.m.addr, g.sub, g.d)
	}
	g.sub = nil
}

// finish waits for the group's replies and stores them in resps. Those
// left unanswered keep a nil response and have the failure noted in their
// route, which is exhausted if the request is not worth another candidate.
func (g *group) finish(ctx context.Context, c *Client, idx []int, reqs []*transport.Request, resps []*transport.Response, routes []route) {
	m := g.m
	out, err := g.flight.Wait()
	sent := g.flight.Sent()  // the requests after it never left
	defer g.flight.Release() // once out is read
	g.flight = nil
	var ferr error
	if err != nil {
		ferr = c.failed(ctx, m, err, sent)
	}
	noted := false
	for j, i := range idx {
		if j < len(out) && out[j] != nil {
			resps[i] = out[j]
			if !noted {
				c.noteVersion(out[j].RingVersion, m.addr)
				noted = true
			}
			continue
		}
		routes[i].err = ferr
		if ferr == nil {
			routes[i].err = fmt.Errorf("%w: %s: no reply", ErrUnavailable, m.addr)
		}
		if err == nil || !retryable(ctx, reqs[i], err, transport.Unreached(err, j, sent)) {
			routes[i].stop() // final
		}
	}
}

// overall bounds ctx by the client's Timeout counted from start, if it has
// no deadline: the first attempt relies on the transport's own timer (it
// costs no allocation), retries need the rest of the budget made explicit.
func (c *Client) overall(ctx context.Context, start time.Time) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, nil
	}
	return context.WithDeadline(ctx, start.Add(c.cfg.Timeout))
}

// attempt returns how long one attempt may take on top of ctx's own bound
// (0: no further bound): AttemptTimeout for a read that has another
// replica to try. The transport applies it with the call's pooled timer
// (CallWithin), so bounding every read costs no context or allocation.
func (c *Client) attempt(ctx context.Context, failover bool) time.Duration {
	if !failover || c.cfg.AttemptTimeout <= 0 {
		return 0
	}
	if _, ok := ctx.Deadline(); !ok {
		// No overall deadline yet: the first attempt of a call without one.
		// Timeout is the longer bound.
		return min(c.cfg.AttemptTimeout, c.cfg.Timeout)
	}
	return c.cfg.AttemptTimeout
}

// failed records that m could not answer a batch of which the first sent
// may have reached it (1 for a lone call), and returns the caller-facing
// error. A node that could not be reached, or that used up an attempt's
// time while the caller still had some (so the caller's own short deadline
// is not blamed on the node), is tried last for a while. Either way, and
// also when the caller's deadline ran out, the member list is re-read in
// case the node left: a write that is not resent after a timeout (INCR)
// would otherwise keep going to a node that is gone, each call waiting
// out the caller's deadline, until the next periodic refresh.
func (c *Client) failed(ctx context.Context, m *member, err error, sent int) error {
	unreachable := errors.Is(err, transport.ErrUnreachable)
	if timedOut := errors.Is(err, transport.ErrTimeout); unreachable || timedOut {
		if unreachable || ctx.Err() == nil {
			c.markDown(m, transport.Unreached(err, 0, sent))
		}
		c.kick("")
	}
	if errors.Is(err, transport.ErrFrameTooLarge) {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, m.addr, err)
}

// retryable reports whether a request that failed with err (the node
// could not be reached, or did not answer in time) may be sent to its next
// candidate: the caller still has time, and either it is a read, or a
// write that may safely be applied twice, or it never reached a node
// that could have taken it (unreached: see transport.Unreached). A write
// that must not be applied twice (INCR, SET NX) otherwise may still be
// applied by the node that timed out or lost its connection, so it is not
// resent.
func retryable(ctx context.Context, req *transport.Request, err error, unreached bool) bool {
	if ctx.Err() != nil {
		return false
	}
	if !errors.Is(err, transport.ErrUnreachable) && !errors.Is(err, transport.ErrTimeout) {
		return false
	}
	return req.Repeatable() || unreached
}

// failure turns a delivery error into the response Do reports for it.
func failure(err error) *transport.Response {
	return &transport.Response{Code: transport.CodeOf(err), Err: err.Error()}
}

// setDirect also clears the request's Deadline: each attempt gets the
// deadline of its own context from the transport. A deadline left over
// from an earlier attempt would make a healthy node refuse the retry.
func setDirect(req *transport.Request, direct bool) {
	req.Deadline = 0
	if direct {
		req.Flags |= transport.FlagForwarded
	} else {
		req.Flags &^= transport.FlagForwarded
	}
}

// doState is Do's working storage for one pipeline, pooled so that a
// pipeline at steady state allocates none of it.
type doState struct {
	routes  []route
	scratch []int // pending, then order
	groups  []group
	subs    []*transport.Request // each group's requests, laid out as order
}

// maxPooledDo bounds the pipelines whose storage goes back to the pool.
const maxPooledDo = 1024

func (c *Client) getDoState(n int) *doState {
	st, _ := c.doStates.Get().(*doState)
	if st == nil {
		st = &doState{groups: make([]group, 0, 8)}
	}
	if cap(st.routes) < n {
		st.routes = make([]route, n)
		st.scratch = make([]int, 2*n)
		st.subs = make([]*transport.Request, n)
	}
	st.routes, st.scratch, st.subs = st.routes[:n], st.scratch[:2*n], st.subs[:n]
	return st
}

// putDoState pools st once Do is done with it: every flight has been
// waited for, so nothing refers to subs any more. Pointers are dropped so
// a pooled state pins no requests, errors or members.
func (c *Client) putDoState(st *doState) {
	if cap(st.routes) > maxPooledDo {
		return
	}
	clear(st.routes)
	clear(st.subs)
	clear(st.groups[:cap(st.groups)])
	c.doStates.Put(st)
}
