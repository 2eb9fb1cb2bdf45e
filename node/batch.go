package node

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/starlingcache/starling/transport"
)

// batch executes a group of requests — one from the msgpack transport, or
// a RESP client's pipeline — in two steps: runLocal does everything this
// node can do by itself, without blocking; runRemote then does, in
// parallel, everything that needs a peer, grouping requests per peer so
// each peer costs one round trip per batch.
type batch struct {
	n     *Node
	v     *view
	reqs  []*transport.Request
	resps []*transport.Response

	fwd       []fwdItem  // requests served by another owner
	fallback  []int      // requests that must first fetch the key from a previous owner
	selfServe []*fwdItem // forwarded requests whose failover candidate is this node
	resync    bool       // after a pause: reads first fetch from the other owners
	start     time.Time  // when the batch began, for its latency
	loads     []int      // OpLoad requests, answered by serveLoad (group.go)
	waitRepl  bool       // a write in the batch waits for replica acknowledgements

	mu   sync.Mutex // guards repl, which fallbacks extend concurrently
	repl []replItem // copies of this batch's writes, for other owners

	// Storage kept across uses of a pooled batch, so that serving a
	// request allocates no batch bookkeeping at steady state.
	one     [1]*transport.Request
	oneResp [1]*transport.Response
	reqBuf  []*transport.Request
	respBuf []*transport.Response
	groups  []fwdGroup
	flights []fwdFlight
	pending []*fwdItem // forwardAll's items still to send
	// The copies of forwarded requests (and pointers to them) that one
	// round of forwardAll hands its flights, kept across batches. Sized
	// for the round before it starts, only to save allocations: were they
	// reallocated, flights still out would keep the old array.
	fwdReqs []transport.Request
	fwdPtrs []*transport.Request
	oneItem [1]*fwdItem
	// While runLocal serves a window of a pipeline, reqs[win+k]'s owners
	// are routes[k], found once by route for both the prefetch and plan
	// (routed is set only then).
	routes [prefetchWindow]route
	win    int // reqs[win:win+wlen] is the window routes describes
	wlen   int
	routed bool
	pfKeys [prefetchWindow]string // the keys route has the store prefetch
	// now, while runLocal serves a window, is when the window began: its
	// writes take their versions from one reading of the clock. Zero
	// otherwise (a write served after waiting for a peer, or after a
	// request that may take long, reads the clock afresh, so that its
	// version is not stamped in the past).
	now time.Time

	// ar, when set, is where answers and read values are built: the
	// batch's own arena on the transport server's path, where replies are
	// encoded before the batch is freed, or the caller's on DoArena's.
	// Do's caller keeps the replies for as long as it likes, so Do leaves
	// it nil and every answer is allocated.
	ar  *Arena
	own Arena
}

// Arena holds the answers of one pipeline and the values they read, so a
// front end that keeps one per connection serves GETs and SETs without
// allocating: local ones, and forwarded ones too, whose owners' replies
// are decoded into it. Replies built in an arena are valid until its next
// Reset. An Arena must not be used by two calls at once.
type Arena struct {
	resps []transport.Response
	vals  []byte
	// fwd[:nfwd] hold the replies of the flights forwarded for the
	// pipeline, one Replies per flight: the owners' replies are decoded
	// straight into them, on their connections' reader goroutines at once.
	fwd  []*transport.Replies
	nfwd int
}

// maxArenaFlights bounds the Replies an arena keeps between pipelines
// (each bounds its own storage, about 100 KiB at most): a pipeline sends
// one flight per owner, and more only to retry, so a cluster of up to
// five nodes reuses them all; more are allocated while a pipeline needs
// them.
const maxArenaFlights = 4

// Reset makes the arena's storage available again. Replies from earlier
// calls must no longer be in use.
func (a *Arena) Reset() {
	// The forwarded replies go first, values and all: an idle connection's
	// arena, or a pooled batch's, must pin none.
	for _, r := range a.fwd[:a.nfwd] {
		r.Reset()
	}
	a.nfwd = 0
	if len(a.fwd) > maxArenaFlights {
		clear(a.fwd[maxArenaFlights:])
		a.fwd = a.fwd[:maxArenaFlights]
	}
	clear(a.resps)
	a.resps = a.resps[:0]
	if cap(a.vals) > maxValArena || cap(a.resps) > maxPooledBatch {
		// A rare huge pipeline: let its memory go.
		a.resps, a.vals = nil, nil
		return
	}
	a.vals = a.vals[:0]
}

// replies returns storage for one more forwarded flight's replies, valid
// until Reset.
func (a *Arena) replies() *transport.Replies {
	if a.nfwd == len(a.fwd) {
		a.fwd = append(a.fwd, new(transport.Replies))
	}
	a.nfwd++
	return a.fwd[a.nfwd-1]
}

// newResp returns a zeroed response for one of the batch's requests.
func (b *batch) newResp() *transport.Response {
	a := b.ar
	if a == nil {
		return new(transport.Response)
	}
	if len(a.resps) == cap(a.resps) {
		// A fresh array: responses already handed out keep pointing into
		// the old one, which stays alive as long as they do.
		a.resps = make([]transport.Response, 0, max(8, 2*cap(a.resps)))
	}
	a.resps = a.resps[:len(a.resps)+1]
	return &a.resps[len(a.resps)-1]
}

// getLocal serves a plain GET from this node's store, copying the value
// into the batch's arena when it has one.
func (b *batch) getLocal(req *transport.Request) *transport.Response {
	n := b.n
	n.stats.local.Add(1)
	var (
		val      []byte
		expireAt int64
		ver      uint64
		ok       bool
	)
	if a := b.ar; a != nil {
		if len(a.vals) > maxValArena {
			a.vals = nil // the old array stays with the replies using it
		}
		start := len(a.vals)
		a.vals, expireAt, ver, ok = n.store.AppendGetEntry(a.vals, req.Key)
		val = a.vals[start:len(a.vals):len(a.vals)]
	} else {
		val, expireAt, ver, ok = n.store.GetEntry(req.Key)
	}
	resp := b.newResp()
	if !ok {
		resp.Code = transport.CodeNotFound
		return resp
	}
	resp.Value, resp.TTL, resp.Version = val, remainingMillis(expireAt), ver
	return resp
}

// maxValArena bounds the value arena a pooled batch keeps.
const maxValArena = 256 << 10

// fwdGroup is the forwarded requests bound for one address in one round.
type fwdGroup struct {
	addr  string
	items []*fwdItem
}

// newBatch takes a batch from the node's pool, bound to the current view.
func (n *Node) newBatch() *batch {
	b, _ := n.batches.Get().(*batch)
	if b == nil {
		b = &batch{n: n}
	}
	b.v = n.view.Load()
	b.resync = n.resyncing()
	b.start = time.Now()
	return b
}

// freeBatch returns b to the pool once nothing refers to it any more: its
// replies are sent (or handed to Do's caller, who owns resps) and no
// goroutine it started is still running. Slices keep their capacity but
// drop their pointers, so a pooled batch pins no requests or values.
func (n *Node) freeBatch(b *batch) {
	clear(b.reqBuf)
	clear(b.respBuf)
	clear(b.repl)
	for i := range b.groups {
		clear(b.groups[i].items)
		b.groups[i].items = b.groups[i].items[:0]
	}
	b.one[0], b.oneResp[0], b.oneItem[0] = nil, nil, nil
	b.v, b.reqs, b.resps = nil, nil, nil
	b.fwd, b.fallback, b.repl = b.fwd[:0], b.fallback[:0], b.repl[:0]
	clear(b.selfServe)
	b.selfServe = b.selfServe[:0]
	clear(b.pending)
	b.pending = b.pending[:0]
	clear(b.fwdReqs) // values may alias a caller's buffer
	clear(b.fwdPtrs)
	b.fwdReqs, b.fwdPtrs = b.fwdReqs[:0], b.fwdPtrs[:0]
	b.loads = b.loads[:0]
	b.waitRepl, b.ar = false, nil
	b.own.Reset()
	if max(cap(b.reqBuf), cap(b.repl), cap(b.fwd), cap(b.fwdReqs), cap(b.pending), cap(b.fallback), cap(b.loads)) > maxPooledBatch {
		return // a rare huge pipeline: let it go rather than pin its memory
	}
	n.batches.Put(b)
}

// maxPooledBatch bounds the pipelines whose batches are reused.
const maxPooledBatch = 1024

// fwdItem is one request on its way to another node, with the owners it
// may fail over to, in preference order.
type fwdItem struct {
	i      int
	flags  transport.Flags
	owners [maxReplicas]string
	count  int
	next   int
}

// replItem is one write's copy for one replica.
type replItem struct {
	target string // member name
	req    transport.Request
}

func (b *batch) remoteIdle() bool {
	return len(b.fwd) == 0 && len(b.fallback) == 0 && len(b.repl) == 0 && len(b.loads) == 0
}

// runLocal decides every request's fate and serves what it can here.
// A pipeline goes in windows of prefetchWindow requests: route finds the
// window's owners and prefetches the keys served here, then plan serves
// them while their memory is still in the CPU's caches.
func (b *batch) runLocal() {
	if len(b.reqs) == 1 {
		b.resps[0] = b.plan(0, b.reqs[0])
		return
	}
	for lo := 0; lo < len(b.reqs); lo += prefetchWindow {
		hi := min(lo+prefetchWindow, len(b.reqs))
		b.route(lo, hi)
		b.routed, b.now = true, time.Now()
		for i := lo; i < hi; i++ {
			b.resps[i] = b.plan(i, b.reqs[i])
		}
	}
	b.routed, b.now = false, time.Time{}
}

// prefetchWindow is how many requests route looks at together: as many
// as store.Prefetch overlaps, few enough that what it brings in is still
// cached when plan gets there.
const prefetchWindow = 16

// route finds the owners of reqs[lo:hi], once, for plan to use, and has
// the store bring in, all at once, the memory that serving this node's
// share of them will read (see store.Prefetch): a pipeline's lookups then
// overlap their cache misses instead of paying them one after another.
// prefetchWindow matches the store's own batch of 16. The keys passed are those a
// peer sent (forwarded, rerouted, replica copies) and those this node
// owns; a guess that turns out wrong only costs a wasted lookup.
func (b *batch) route(lo, hi int) {
	n, self := b.n, b.n.cfg.Name
	b.win, b.wlen = lo, hi-lo
	keys := b.pfKeys[:0]
	for i := lo; i < hi; i++ {
		req, r := b.reqs[i], &b.routes[i-lo]
		r.n = 0
		switch {
		case req.Op == transport.OpReplicate:
			keys = append(keys, req.Key)
		case !req.Op.Keyed():
		default:
			r.n = len(b.v.ring.AppendOwners(r.owners[:0], req.Key, n.cfg.Replicas))
			if req.Flags&(transport.FlagForwarded|transport.FlagRerouted|transport.FlagLocalOnly) != 0 || r.n == 0 || r.owners[0] == self {
				keys = append(keys, req.Key)
			}
		}
	}
	if len(keys) > 1 {
		n.store.Prefetch(keys)
	}
	clear(keys) // a pooled batch must not pin the requests' keys
}

// route is a request's owners, in preference order.
type route struct {
	owners [maxReplicas]string
	n      int
}

// ownersOf returns reqs[i]'s owners on the batch's ring (in buf): as
// route found them while runLocal serves i's window, else finding them
// now (a batch of one, or a request served after waiting for a peer).
func (b *batch) ownersOf(i int, buf *[maxReplicas]string) []string {
	if k := i - b.win; b.routed && k >= 0 && k < b.wlen {
		r := &b.routes[k]
		return append(buf[:0], r.owners[:r.n]...)
	}
	return b.v.ring.AppendOwners(buf[:0], b.reqs[i].Key, b.n.cfg.Replicas)
}

// plan answers req now, or returns nil after queueing the remote work
// that will answer it.
func (b *batch) plan(i int, req *transport.Request) *transport.Response {
	n := b.n
	switch {
	case req.Op == transport.OpReplicate:
		return n.applyReplica(req)
	case req.Op == transport.OpLoad:
		b.loads = append(b.loads, i) // may wait for a load: never inline
		return nil
	case !req.Op.Keyed():
		b.now = time.Time{} // it may take long (DBSIZE walks the store)
		return n.serveLocal(req)
	}
	if err := n.checkKey(req); err != nil {
		return errResponse(err)
	}
	var buf [maxReplicas]string
	owners := b.ownersOf(i, &buf)
	self := n.cfg.Name
	switch {
	case len(owners) == 0, req.Flags&transport.FlagLocalOnly != 0:
		// A previous owner answering a new owner's fetch: its own store only.
		return b.serveHere(i, req, owners, false)
	case req.Flags&transport.FlagRerouted != 0:
		// The last stop: served here whatever our ring says, fetching the
		// key first if it is still on its way from a previous owner.
		return b.serveHere(i, req, owners, true)
	case req.Flags&transport.FlagForwarded != 0:
		if slices.Contains(owners, self) {
			return b.serveHere(i, req, owners, true)
		}
		// The sender's ring and ours disagree (one of us has not heard of
		// a membership change yet). Send it on once more, marked so that
		// its next stop serves it whatever that node's ring says.
		b.addForward(i, req.Flags|transport.FlagRerouted, owners)
		return nil
	case owners[0] == self:
		return b.serveHere(i, req, owners, true)
	}
	b.addForward(i, req.Flags, owners)
	return nil
}

func (b *batch) addForward(i int, flags transport.Flags, owners []string) {
	b.fwd = append(b.fwd, fwdItem{i: i, flags: flags | transport.FlagForwarded, count: len(owners)})
	copy(b.fwd[len(b.fwd)-1].owners[:], owners)
}

// serveHere executes req against this node's store, as its owner (or as
// the last stop of a rerouted request). A key this node does not hold yet
// during a hand-off window, and any key in its resync window after a
// pause, is first fetched from the other owners (needsFetch).
func (b *batch) serveHere(i int, req *transport.Request, owners []string, mayFallback bool) *transport.Response {
	n := b.n
	if mayFallback && b.needsFetch(req) {
		b.fallback = append(b.fallback, i)
		return nil
	}
	if !isWrite(req) {
		if req.Op == transport.OpGet {
			return b.getLocal(req)
		}
		return n.serveLocal(req)
	}
	resp, e, wrote := n.coordinate(req, b.newResp(), b.now)
	if !wrote {
		return resp
	}
	// Where the key belongs now: its owners on the batch's ring or, if the
	// ring changed while the batch ran, on the new one.
	var buf [maxReplicas]string
	v := n.view.Load()
	var current []string
	if v == b.v {
		current = b.ownersOf(i, &buf)
	} else {
		// A rebalance pass may already have scanned the key, so copy it
		// to its current owners too.
		current = v.ring.AppendOwners(buf[:0], req.Key, n.cfg.Replicas)
		for _, o := range current {
			if !slices.Contains(owners, o) {
				owners = append(owners, o)
			}
		}
	}
	if len(owners) > 0 && !slices.Contains(current, n.cfg.Name) {
		n.misplaced.Store(true) // a stand-in copy: the next pass sends it on and drops it
	}
	b.addReplicas(req.Key, e, owners)
	return resp
}

// needsFetch reports whether req, served here, must first fetch its key
// from the key's other owners (see fetch): after a pause, or during a
// hand-off for a key this node did not own before and does not hold yet.
func (b *batch) needsFetch(req *transport.Request) bool {
	n := b.n
	return needsOldState(req) && (b.resync || n.inHandoff(b.v) && !n.ownedBefore(b.v, req.Key) && !n.holds(req.Key))
}

// addReplicas queues the entry a write produced for every other owner.
func (b *batch) addReplicas(key string, e entry, owners []string) {
	n := b.n
	if n.cfg.Replicas < 2 && slices.Contains(owners, n.cfg.Name) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sent := 0
	for _, o := range owners {
		if o == n.cfg.Name {
			continue
		}
		b.repl = append(b.repl, replItem{target: o, req: replicaRequest(key, e)})
		sent++
	}
	if n.cfg.WriteAck.waitFor(n.cfg.Replicas, sent) > 0 {
		b.waitRepl = true
	}
}

// runRemote forwards, fetches and replicates, and returns when every
// request has its answer and the replica acknowledgements the write mode
// asks for have arrived.
func (b *batch) runRemote(ctx context.Context) {
	if len(b.fallback) > 0 || len(b.loads) > 0 {
		b.fetchAndForward(ctx)
	} else if len(b.fwd) > 0 {
		b.forwardAll(ctx) // the usual remote work, with no goroutine (or WaitGroup) to allocate
	}
	// Served one after another, once every fetch is done: serving uses the
	// batch's arena, which is not safe for concurrent use.
	for _, i := range b.fallback {
		var buf [maxReplicas]string
		b.resps[i] = b.serveHere(i, b.reqs[i], b.ownersOf(i, &buf), false)
	}
	// Requests whose owners before us failed: we hold a replica, so we
	// serve them as their coordinator (a write copies to the owners it can
	// reach and leaves hints for the others).
	if len(b.selfServe) > 0 {
		b.fetchStandIns(ctx)
	}
	for _, it := range b.selfServe {
		b.resps[it.i] = b.serveHere(it.i, b.reqs[it.i], it.owners[:it.count], false)
	}
	if len(b.repl) == 0 {
		return
	}
	if !b.waitRepl {
		// Acknowledge now; copies go out in the background, bounded by
		// ReplicaTimeout and tracked so Shutdown waits for them. Values
		// may alias the caller's buffers (a RESP connection reuses its
		// read buffer once Do returns): the copies own theirs.
		// The goroutine outlives the batch, which goes back to its pool
		// (and is reused) as soon as the replies are out: it keeps only
		// what it copied here, and the keys, which are immutable (one
		// read off a connection may keep that connection's current key
		// chunk, transport.KeyChunk, alive until then).
		n, v := b.n, b.v
		items := slices.Clone(b.repl)
		for i := range items {
			items[i].req.Value = bytes.Clone(items[i].req.Value)
		}
		if !n.track() {
			n.sendReplicas(ctx, v, items)
			return
		}
		go func() {
			defer n.reqWG.Done()
			n.sendReplicas(n.ctx, v, items)
		}()
		return
	}
	b.n.sendReplicas(ctx, b.v, b.repl)
}

// fetchAndForward runs the fetches from previous owners and the
// read-through loads each on a goroutine, and the forwards on this one.
func (b *batch) fetchAndForward(ctx context.Context) {
	var wg sync.WaitGroup
	for _, i := range b.fallback {
		wg.Go(func() { b.fetch(ctx, i) })
	}
	for _, i := range b.loads {
		wg.Go(func() { b.resps[i] = b.n.serveLoad(ctx, b.reqs[i]) })
	}
	if len(b.fwd) > 0 {
		b.forwardAll(ctx)
	}
	wg.Wait()
}

// fetchStandIns fetches, as serveHere would have, for the requests this
// node serves in place of owners that look down: in its resync window
// after a pause (where those marks are often the pause's own doing: every
// call in flight while the process was stopped timed out) and for keys
// still on their way to it in a hand-off. Without the fetch such requests
// would go straight to the copies the fetch is there to check.
func (b *batch) fetchStandIns(ctx context.Context) {
	var wg sync.WaitGroup
	for _, it := range b.selfServe {
		if b.needsFetch(b.reqs[it.i]) {
			wg.Go(func() { b.fetch(ctx, it.i) })
		}
	}
	wg.Wait()
}

// forwardAll sends every forwarded request to its owner, one batch per
// owner, and retries on the next owner those whose owner could not be
// reached: a crashed node costs one failed round trip, not a wait for
// gossip to notice.
func (b *batch) forwardAll(ctx context.Context) {
	if len(b.fwd) == 1 { // the common case: one request, one owner
		it := &b.fwd[0]
		for {
			addr, self := b.pickOwner(it)
			if self {
				b.selfServe = append(b.selfServe, it)
				return
			}
			b.oneItem[0] = it
			if len(b.forwardGroup(ctx, addr, b.oneItem[:])) == 0 {
				return
			}
			if ctx.Err() != nil {
				b.resps[it.i] = errResponse(ctx.Err())
				return
			}
		}
	}
	pending := b.pending[:0]
	for j := range b.fwd {
		pending = append(pending, &b.fwd[j])
	}
	b.pending = pending
	for len(pending) > 0 {
		groups := b.group(pending)
		if len(groups) == 0 {
			return // every remaining item falls back to this node
		}
		if cap(b.fwdReqs) < len(pending) {
			b.fwdReqs = make([]transport.Request, 0, max(len(pending), 2*cap(b.fwdReqs)))
			b.fwdPtrs = make([]*transport.Request, 0, cap(b.fwdReqs))
		}
		clear(b.fwdReqs) // the last round's: its flights are over
		clear(b.fwdPtrs)
		b.fwdReqs, b.fwdPtrs = b.fwdReqs[:0], b.fwdPtrs[:0]
		// Every owner's batch leaves before any reply is waited for: the
		// owners work in parallel, and no goroutine is needed per owner.
		// Several leave as one wave, waited for with one timer and one
		// wake-up rather than one per owner.
		sending := 0 // groups with an address: each starts a flight
		for _, g := range groups {
			if g.addr != "" {
				sending++
			}
		}
		var w *transport.Wave
		if sending > 1 {
			w = b.n.client.NewWave(ctx, b.n.cfg.ForwardTimeout)
		}
		flights := b.flights[:0]
		for k, g := range groups {
			flights = append(flights, b.startGroup(ctx, w, g.addr, g.items, k == len(groups)-1))
		}
		if w != nil {
			w.Wait()
		}
		var retry []*fwdItem
		for k := range flights {
			retry = append(retry, b.endGroup(ctx, &flights[k])...)
			flights[k] = fwdFlight{}
		}
		b.flights = flights[:0]
		if w != nil {
			w.Release()
		}
		pending = retry
		if ctx.Err() != nil {
			for _, it := range pending {
				b.resps[it.i] = errResponse(ctx.Err())
			}
			return
		}
	}
}

// group sorts pending items by the address each goes to next, reusing the
// batch's group slices. Owners are few, so a linear scan beats a map.
func (b *batch) group(pending []*fwdItem) []fwdGroup {
	groups := b.groups[:0]
outer:
	for _, it := range pending {
		addr, self := b.pickOwner(it)
		if self {
			b.selfServe = append(b.selfServe, it)
			continue
		}
		for k := range groups {
			if groups[k].addr == addr {
				groups[k].items = append(groups[k].items, it)
				continue outer
			}
		}
		if len(groups) < cap(groups) {
			groups = groups[:len(groups)+1]
			groups[len(groups)-1].addr = addr
			groups[len(groups)-1].items = append(groups[len(groups)-1].items[:0], it)
		} else {
			groups = append(groups, fwdGroup{addr: addr, items: []*fwdItem{it}})
		}
	}
	b.groups = groups
	return groups
}

// pickOwner returns the address of the first candidate owner not known to
// be down, advancing it.next past the ones skipped; the last candidate is
// tried even if it looks down. self reports that the candidate is this
// node (a replica, once the owners before it failed): the request is then
// served here, never sent to our own address.
//
// A request that must not be applied twice (see Request.Repeatable) skips only
// an owner that could not be reached at all lately (a refused
// connection), not one whose call timed out: that owner may only have
// been slow, and still coordinates the key for the nodes that reach it,
// so a second coordinator would race it and lose increments.
func (b *batch) pickOwner(it *fwdItem) (addr string, self bool) {
	anyFailure := b.reqs[it.i].Repeatable()
	for it.next < it.count-1 && b.n.peers.skip(b.v.addrs[it.owners[it.next]], anyFailure) {
		it.next++
	}
	if it.owners[it.next] == b.n.cfg.Name {
		return "", true
	}
	return b.v.addrs[it.owners[it.next]], false
}

// fwdFlight is one owner's share of a batch, sent and not yet answered.
type fwdFlight struct {
	addr   string
	items  []*fwdItem
	flight *transport.Flight // nil if nothing could be sent
	resp   *transport.Response
	one    [1]*transport.Response // out for resp, without allocating
	err    error
}

// forwardGroup sends items to one owner in one round trip. It fills in
// their responses and returns the items worth retrying on another owner.
func (b *batch) forwardGroup(ctx context.Context, addr string, items []*fwdItem) []*fwdItem {
	f := b.startGroup(ctx, nil, addr, items, true)
	return b.endGroup(ctx, &f)
}

// startGroup sends items to the owner at addr, as part of w if it is not
// nil. A batch is only sent; a single request outside a wave may block
// (last says nothing else is left to start), and is then sent and
// answered at once: Call spares the flight.
func (b *batch) startGroup(ctx context.Context, w *transport.Wave, addr string, items []*fwdItem, last bool) fwdFlight {
	n := b.n
	f := fwdFlight{addr: addr, items: items}
	// ForwardTimeout bounds the forward even when ctx allows longer.
	n.stats.forwarded.Add(int64(len(items)))
	switch {
	case addr == "":
		f.err = errors.New("no address known for the owner")
	case len(items) == 1 && last && w == nil:
		fwd := *b.reqs[items[0].i]
		fwd.ID, fwd.Flags = 0, items[0].flags
		f.resp, f.err = n.client.CallWithin(ctx, addr, &fwd, n.cfg.ForwardTimeout)
	default:
		// Copies in the round's storage (see forwardAll), which outlives
		// the flight: Wait returns only once the transport is done with
		// them.
		from := len(b.fwdReqs)
		for _, it := range items {
			b.fwdReqs = append(b.fwdReqs, *b.reqs[it.i])
			fwd := &b.fwdReqs[len(b.fwdReqs)-1]
			fwd.ID, fwd.Flags = 0, it.flags
			b.fwdPtrs = append(b.fwdPtrs, fwd)
		}
		sub := b.fwdPtrs[from:len(b.fwdPtrs):len(b.fwdPtrs)]
		// With an arena the replies go into it, as local answers do (they
		// live as long); without, the transport allocates them.
		var into *transport.Replies
		if b.ar != nil {
			into = b.ar.replies()
		}
		if w != nil {
			f.flight = w.StartInto(addr, sub, into)
		} else {
			f.flight = n.client.StartInto(ctx, addr, sub, n.cfg.ForwardTimeout, into)
		}
	}
	return f
}

// endGroup waits for f's replies, fills in the responses and returns the
// items worth retrying on another owner.
func (b *batch) endGroup(ctx context.Context, f *fwdFlight) []*fwdItem {
	n := b.n
	out, err := f.one[:0], f.err
	sent := len(f.items) // a lone call: see err
	switch {
	case f.flight != nil:
		out, err = f.flight.Wait()
		sent = f.flight.Sent()
		defer f.flight.Release() // once out is read
	case err == nil:
		f.one[0] = f.resp
		out = f.one[:]
	}
	if err != nil {
		n.flightFailed(ctx, f.addr, err, sent)
	}
	var retry []*fwdItem
	for j, it := range f.items {
		if j < len(out) && out[j] != nil {
			b.resps[it.i] = out[j]
			continue
		}
		it.next++
		if it.next < it.count && failoverable(err) && ctx.Err() == nil &&
			(b.reqs[it.i].Repeatable() || transport.Unreached(err, j, sent)) {
			retry = append(retry, it)
			continue
		}
		b.resps[it.i] = unavailable(f.addr, err)
	}
	return retry
}

// failoverable reports whether a failed call may be retried on another
// replica: the peer was unreachable or did not answer in time.
func failoverable(err error) bool {
	return errors.Is(err, transport.ErrUnreachable) || errors.Is(err, transport.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded)
}

// fetch prepares a request for a key this node owns but has not received
// yet during a hand-off, or holds but may hold stale after a pause: it
// fetches the key's full state (refetch) so the request can then be
// served as usual.
func (b *batch) fetch(ctx context.Context, i int) {
	b.n.refetch(ctx, b.v, b.reqs[i].Key, b.resync)
}

// refetch asks key's owners in v's previous ring, if v has one, and after
// a pause (resync) its current owners too, for the key's full state,
// tombstones included, in parallel, and applies the newest (fetchNewest),
// counting the fetch in FallbackHits if any of them had a copy.
//
// Just after a pause it asks members even if they look down: the calls
// this node had in flight all timed out while it was stopped, which marks
// its peers down for a while and says nothing about them. Skipping them
// would serve the very copies the resync is there to check.
func (n *Node) refetch(ctx context.Context, v *view, key string, resync bool) {
	var buf [2 * maxReplicas]string
	from := buf[:0]
	if v.prev != nil {
		from = v.prev.AppendOwners(from, key, n.cfg.Replicas)
	}
	if resync {
		// After a pause the current owners may hold newer copies than ours.
		var cur [maxReplicas]string
		for _, o := range v.ring.AppendOwners(cur[:0], key, n.cfg.Replicas) {
			if !slices.Contains(from, o) {
				from = append(from, o)
			}
		}
	}
	if n.fetchNewest(ctx, v, key, from, resync && n.justWoke()) {
		n.stats.fallbackHits.Add(1)
	}
}

// fetchNewest asks the members named in from (this node skipped, and
// members known to be down unless askDown) for their copy of key,
// tombstones included, in parallel, and applies the newest one found, last
// writer wins. It reports whether any member had a copy.
func (n *Node) fetchNewest(ctx context.Context, v *view, key string, from []string, askDown bool) bool {
	found := make([]*transport.Response, len(from))
	var wg sync.WaitGroup
	for j, o := range from {
		addr, ok := v.addrs[o]
		if o == n.cfg.Name || !ok || !askDown && n.peers.down(addr) {
			continue
		}
		wg.Go(func() {
			resp, err := n.client.CallWithin(ctx, addr, &transport.Request{Op: transport.OpLookup, Key: key, Flags: transport.FlagLocalOnly}, n.cfg.ReplicaTimeout)
			if err != nil {
				n.callFailed(ctx, addr, err)
				return
			}
			if resp.Code == transport.CodeOK && resp.Version != 0 {
				found[j] = resp
			}
		})
	}
	wg.Wait()
	var newest *transport.Response
	for _, r := range found {
		if r != nil && (newest == nil || r.Version > newest.Version) {
			newest = r
		}
	}
	if newest == nil {
		return false
	}
	rep := &transport.Request{Op: transport.OpReplicate, Key: key, Value: newest.Value,
		ExpireAt: expiryFromTTL(newest.TTL), Version: newest.Version}
	if newest.Int == 1 {
		rep.Flags |= transport.FlagTombstone
	}
	n.applyReplica(rep)
	return true
}

// ownedBefore reports whether this node was already an owner of key in
// the ring before the last change: then it has the key (or knows it is
// absent), and a miss needs no fetch from elsewhere.
func (n *Node) ownedBefore(v *view, key string) bool {
	var buf [maxReplicas]string
	return slices.Contains(v.prev.AppendOwners(buf[:0], key, n.cfg.Replicas), n.cfg.Name)
}

// inHandoff reports whether v is recent enough that keys may still be on
// their way from their previous owners.
func (n *Node) inHandoff(v *view) bool {
	// The clock is read last: a settled view, the usual case under load,
	// answers with one atomic load.
	return v.prev != nil && !v.settled.Load() && time.Since(v.changed) < n.cfg.HandoffGrace
}

// needsOldState reports whether req's result depends on the key's current
// value; a plain SET overwrites whatever was there and needs no fetch.
func needsOldState(req *transport.Request) bool {
	const conditional = transport.FlagIfAbsent | transport.FlagIfPresent | transport.FlagKeepTTL | transport.FlagGetOld
	return req.Op != transport.OpSet || req.Flags&conditional != 0
}

// isWrite reports whether req changes the key, and so gets a new version
// and is replicated.
func isWrite(req *transport.Request) bool {
	switch req.Op {
	case transport.OpSet, transport.OpDelete, transport.OpGetDel, transport.OpExpire,
		transport.OpIncr, transport.OpIncrFloat, transport.OpAppend:
		return true
	case transport.OpGetEx:
		return req.TTL > 0 || req.Flags&transport.FlagPersist != 0
	}
	return false
}
