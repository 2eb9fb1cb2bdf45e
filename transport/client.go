package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Client sends requests to peers and waits for their replies. It keeps up
// to Config.ConnsPerPeer connections to each address, dialled on first use;
// every connection multiplexes many concurrent requests (pipelined, paired
// with replies by ID), and requests from callers that are pending together
// leave in one write. It is safe for concurrent use.
//
// The error a call returns is only ever a transport failure (ErrUnreachable,
// ErrConnLost, ErrTimeout, ErrClosed, ErrFrameTooLarge, ErrAuth, or the
// context's error); what the peer answered, including its errors, is in
// the Response (see Response.Error).
type Client struct {
	cfg Config
	// peers maps each address to its connection pool. It is replaced,
	// never changed, under mu (copy on write: new addresses are rare), so
	// that every call finds its peer with one atomic load instead of a
	// read lock whose shared counter every core would write.
	peers atomic.Pointer[map[string]*peer]
	// closed is set once, by Close, under mu. The slow paths that start
	// goroutines read it under mu, so Close's wg.Wait cannot miss one;
	// the path of every call reads it without.
	closed atomic.Bool

	log      *slog.Logger
	network  Network
	dialCtx  context.Context // cancelled by Close, aborting dials
	cancel   context.CancelFunc
	closedCh chan struct{}
	calls    sync.Pool // *call
	flights  sync.Pool // *Flight, given back by Release
	waves    sync.Pool // *Wave, given back by Release

	// The fields below are written on the request path (mu's reader count
	// and wg when a flight or dial goes to a goroutine): at least a
	// 64-byte cache line apart from the ones above, which every call only
	// reads.
	_ [64]byte
	// wg tracks dial and read goroutines so Close can wait for them.
	wg sync.WaitGroup
	mu sync.RWMutex // guards creating peers and setting closed
}

// NewClient returns a Client. It does not connect until the first call.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:      cfg,
		log:      cfg.logger().With("component", "transport-client"),
		network:  cfg.network(),
		dialCtx:  ctx,
		cancel:   cancel,
		closedCh: make(chan struct{}),
	}
	c.peers.Store(&map[string]*peer{})
	c.calls.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return &call{done: make(chan struct{}, 1), timer: t}
	}
	return c, nil
}

// maxSendAttempts bounds how often a call moves to a fresh connection when
// the one it picked turned out to be broken before the request was written
// (so retrying cannot apply it twice).
const maxSendAttempts = 3

// Call sends req to the peer at addr and waits for the reply. It sets
// req.ID, and req.Deadline to when it will stop waiting unless the caller
// set an earlier one. It gives up when ctx ends or, if ctx has no deadline, after
// Config.CallTimeout. A non-nil error is a transport failure: errors.Is
// with ErrUnreachable says the peer could not be reached or the connection
// broke (ErrConnLost; the request may have been applied), with ErrNotSent
// that the failure came before the request was handed to a connection,
// or the connection broke before writing it whole (whatever else it is,
// the peer never served it), with ErrTimeout
// (and context.DeadlineExceeded) that time ran out, with ErrClosed that the
// Client was closed, with ErrFrameTooLarge that req exceeds
// Config.MaxFrameSize (nothing was sent), with ErrAuth that the peer
// refused the connection or failed to authenticate (nothing was applied).
// Responses are allocated several at a time, so keeping one keeps its
// neighbours' memory too (under a megabyte): copy what you keep for long.
func (c *Client) Call(ctx context.Context, addr string, req *Request) (*Response, error) {
	return c.CallWithin(ctx, addr, req, 0)
}

// CallWithin is Call bounded by d instead of Config.CallTimeout: it gives
// up after d, or when ctx ends if that comes first (d <= 0: as Call). It
// does what Call with context.WithTimeout(ctx, d) would, without deriving
// a context: the bound rides on the call's pooled timer, so a caller that
// bounds every attempt (a read with another replica to try, a forward)
// pays no allocation for it. Running out of d is ErrTimeout, as running
// out of ctx's deadline is.
func (c *Client) CallWithin(ctx context.Context, addr string, req *Request, d time.Duration) (*Response, error) {
	if ctx.Err() != nil {
		return nil, unsent(expired(ctx, addr)) // do not send what nobody will wait for
	}
	if requestSizeHint(req) > c.cfg.MaxFrameSize {
		return nil, unsent(c.tooLarge(addr))
	}
	p, err := c.peer(addr)
	if err != nil {
		return nil, unsent(err)
	}
	now := time.Now()
	cl := c.getCall(ctx, now, d)
	dl := stampDeadline(ctx, req, now, cl.limit)
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			now = time.Now()
		}
		cc, err := p.pick(ctx, cl, now)
		if err == nil {
			err = cc.acquire(ctx, cl)
		}
		if err != nil {
			c.putCall(cl)
			return nil, unsent(err)
		}
		req.ID = cc.nextID.Add(1)
		sent, err := cc.send(ctx, cl, req, now, dl)
		if err != nil {
			// Refused before it was queued: too large to frame, or no
			// room in the buffer before time ran out.
			cc.slots.release(1)
			c.putCall(cl)
			return nil, unsent(err)
		}
		if sent {
			resp, err := cc.wait(ctx, cl, req.ID, cl.timerC)
			c.putCall(cl)
			return resp, err
		}
		cc.slots.release(1)
		if dl > 0 && time.Now().UnixMilli() >= dl {
			// The connection broke under this call's own write, cut at
			// its deadline: another would only send it late.
			c.putCall(cl)
			return nil, unsent(expired(ctx, addr))
		}
		if err := cc.failure(); errors.Is(err, ErrAuth) || attempt == maxSendAttempts {
			c.putCall(cl)
			if errors.Is(err, ErrAuth) {
				return nil, unsent(err) // a fresh connection would be refused too
			}
			// Every connection tried was found broken before the
			// request could be queued on it.
			return nil, unsent(fmt.Errorf("transport: %s: %w", addr, ErrConnLost))
		}
	}
}

// CallBatch sends all of reqs to the peer at addr on one connection, in one
// write when the connection's in-flight limit allows, and waits for every
// reply: resps[i] answers reqs[i]. It sets each request's ID. It exists so
// a client's pipelined commands can be forwarded to their owner in one
// round trip. If some replies cannot be obtained it returns the first
// transport error, with nil in resps for each missing reply and the replies
// that did arrive in place. A request over Config.MaxFrameSize fails the
// whole batch before anything is sent.
func (c *Client) CallBatch(ctx context.Context, addr string, reqs []*Request) ([]*Response, error) {
	return c.Start(ctx, addr, reqs).Wait()
}

// Flight is a batch of requests on its way to one peer: Start sends it,
// Wait collects the replies. Starting the batches for several peers before
// waiting for any sends them all in parallel with no goroutine per peer.
// A Flight is used by one goroutine; Wait must be called exactly once.
type Flight struct {
	c     *Client
	ctx   context.Context
	addr  string
	cc    *clientConn // the connection the requests went out on, if any
	reqs  []*Request
	resps []*Response
	first uint64 // ID of reqs[0]; the batch's IDs are consecutive
	sent  int    // reqs[:sent] are registered on cc
	err   error  // why reqs[sent:] were not sent
	// timer lends its timer (when it ends the flight before ctx) and its
	// done channel; a wave's flight borrows the wave's, or has one of its
	// own while it is started asynchronously (see startFlight).
	timer *call
	wave  *Wave // the wave f belongs to, if any: it waits for f (see answered)
	// deadline is when the caller stops waiting, as a Request.Deadline.
	deadline int64
	// started, if set, is closed once the goroutine sending the flight
	// (see Start) is done with it.
	started chan struct{}
	// remaining counts the replies still expected plus one for the
	// sender, so it reaches zero only once Wait (or the wave's) runs and
	// every reply is in; whoever brings it to zero calls answered.
	remaining atomic.Int32
	// connErr is the first failure reported for one of the requests by
	// the connection (guarded by cc.mu, like resps while sent).
	connErr error
	// unsentFrom is the first of the requests the connection failed
	// before they wholly left (len(reqs) if none; guarded by cc.mu): a
	// flight's frames leave in order, so the ones after it did not either.
	unsentFrom int
	// into, if set, is where the replies are decoded (see StartInto).
	into *Replies
}

// Start sends reqs to the peer at addr, as CallBatch does, and returns
// without waiting for replies; the Flight's Wait returns what CallBatch
// would. ctx bounds the whole flight, Wait included. Start does not wait
// for the peer either: when it has no connection yet, or not enough free
// in-flight slots for the batch, sending continues on a goroutine of its
// own, so that a peer slow to dial or to answer never holds up the
// batches started after it for other peers. (Only if other callers take
// the free slots between the check and the send does Start wait for
// slots itself, at most until ctx or CallTimeout ends. Nor, likewise, does
// it wait for room in a connection's full write buffer past then: see
// makeRoomLocked.)
func (c *Client) Start(ctx context.Context, addr string, reqs []*Request) *Flight {
	return c.StartWithin(ctx, addr, reqs, 0)
}

// StartWithin is Start whose flight is bounded by d instead of
// Config.CallTimeout, as CallWithin is (d <= 0: as Start).
func (c *Client) StartWithin(ctx context.Context, addr string, reqs []*Request, d time.Duration) *Flight {
	return c.StartInto(ctx, addr, reqs, d, nil)
}

// StartInto is StartWithin whose replies are decoded into into instead of
// being allocated (see Replies): they stay valid after Release, until the
// next flight started with into or into.Reset. A previous flight with into
// must have returned from Wait. A nil into makes it StartWithin.
func (c *Client) StartInto(ctx context.Context, addr string, reqs []*Request, d time.Duration, into *Replies) *Flight {
	return c.startFlight(ctx, addr, reqs, d, nil, into)
}

// startFlight is StartWithin, for a flight of wave w if w is not nil (it
// then shares w's timer and deadline), decoding its replies into into if
// that is not nil.
func (c *Client) startFlight(ctx context.Context, addr string, reqs []*Request, d time.Duration, w *Wave, into *Replies) *Flight {
	f := c.newFlight(ctx, addr, reqs)
	if into != nil {
		into.prepare(len(reqs))
		f.into = into
	}
	if w != nil {
		f.wave = w
		w.flights = append(w.flights, f)
		w.left.Add(1)
	}
	if len(reqs) == 0 {
		return f
	}
	if ctx.Err() != nil {
		f.err = expired(ctx, addr)
		return f
	}
	for _, r := range reqs {
		if requestSizeHint(r) > c.cfg.MaxFrameSize {
			f.err = c.tooLarge(addr)
			return f
		}
	}
	p, err := c.peer(addr)
	if err != nil {
		f.err = err
		return f
	}
	var now time.Time
	if w != nil {
		now, f.timer, f.deadline = w.now, w.timer, w.deadline
	} else {
		now = time.Now()
		f.timer = c.getCall(ctx, now, d)
		f.deadline = deadlineMillis(ctx, now, f.timer.limit)
	}
	for _, r := range reqs {
		if r.Deadline == 0 || f.deadline < r.Deadline {
			r.Deadline = f.deadline
		}
	}
	if cc := p.ready(now); cc != nil && cc.slots.free(len(reqs)) {
		// The usual case: sent on the connection found ready, at once.
		if f.send(cc, now) || f.err != nil {
			f.finishStart()
			return f
		}
		// It broke meanwhile: the goroutine below tries the others.
	}
	if w != nil {
		// The goroutine waits on a timer of its own, for what is left of
		// the wave's time: a timer ticks once, for one receiver, and two
		// such goroutines of one wave would otherwise compete for the
		// tick, the loser waiting on past the wave's bound.
		rest := time.Duration(0) // no timer: ctx's deadline governs
		if w.timer.limit > 0 {
			if rest = w.timer.limit - time.Since(w.now); rest <= 0 {
				f.err = expired(ctx, addr)
				return f
			}
		}
		f.timer = c.getCall(ctx, time.Now(), rest)
	}
	c.mu.RLock()
	if c.closed.Load() {
		c.mu.RUnlock()
		f.err = ErrClosed
		return f
	}
	c.wg.Add(1) // Close waits for it, like for dials
	c.mu.RUnlock()
	f.started = make(chan struct{})
	go func() {
		defer c.wg.Done()
		defer close(f.started)
		f.start(p)
	}()
	return f
}

// newFlight returns a flight for reqs, reusing a released one if it can.
func (c *Client) newFlight(ctx context.Context, addr string, reqs []*Request) *Flight {
	f, _ := c.flights.Get().(*Flight)
	if f == nil {
		f = new(Flight)
	}
	f.c, f.ctx, f.addr, f.reqs = c, ctx, addr, reqs
	if cap(f.resps) >= len(reqs) {
		f.resps = f.resps[:len(reqs)]
	} else {
		f.resps = make([]*Response, len(reqs))
	}
	f.remaining.Store(1)
	f.unsentFrom = len(reqs)
	return f
}

// maxPooledFlight bounds the replies slice a released flight keeps, so
// one huge batch does not pin its slice in the pool.
const maxPooledFlight = 1024

// Release gives the flight back for a later Start to reuse, sparing the
// allocation of a flight and its replies slice per batch. Call it only
// after Wait has returned, and only once: by then the transport holds no
// reference to the flight (every request was answered, failed with its
// connection, or abandoned under the connection's lock), but the caller
// must not touch f or the slice Wait returned afterwards. Not calling it
// is fine: the flight is then collected as garbage.
func (f *Flight) Release() {
	if f.wave != nil && !f.wave.waited {
		panic("transport: Flight.Release of a wave's flight before Wave.Wait")
	}
	c, resps := f.c, f.resps
	clear(resps) // drop the replies: they belong to the caller
	if cap(resps) > maxPooledFlight {
		resps = nil
	}
	*f = Flight{resps: resps[:0]}
	c.flights.Put(f)
}

// start sends the flight's requests on one of p's connections, dialling
// or waiting for in-flight slots as needed.
func (f *Flight) start(p *peer) {
	for attempt := 1; ; attempt++ {
		now := time.Now()
		if f.sent == 0 && !time.UnixMilli(f.deadline).After(now) {
			// Out of time before anything was registered, as when a
			// connection broke under the flight's own write, cut at its
			// deadline: another connection would only send it late.
			f.err = expired(f.ctx, f.addr)
			break
		}
		cc, err := p.pick(f.ctx, f.timer, now)
		if err != nil {
			f.err = err
			return
		}
		if f.send(cc, now) || f.err != nil || attempt == maxSendAttempts {
			break
		}
		if ferr := cc.failure(); errors.Is(ferr, ErrAuth) {
			f.err = ferr
			return
		}
	}
	f.finishStart()
}

// finishStart sees that what the flight registered gets written.
func (f *Flight) finishStart() {
	if f.sent == 0 && f.err == nil {
		f.err = fmt.Errorf("transport: %s: %w", f.addr, ErrConnLost)
	}
	if f.sent > 0 {
		f.cc.flushFlight(f)
	}
}

// send registers as many of the flight's requests on cc as it can and
// reports whether it registered any. It stops at the first it cannot
// register, noting why in f.err unless the connection was found broken
// before anything was registered (the caller may then try another).
func (f *Flight) send(cc *clientConn, now time.Time) bool {
	n := len(f.reqs)
	f.first = cc.nextID.Add(uint64(n)) - uint64(n) + 1
	for f.sent < n {
		// One slot, waiting for it if need be, then as many more as are
		// free at once: those requests are registered under one lock.
		if err := cc.acquire(f.ctx, f.timer); err != nil {
			f.err = err
			break
		}
		k := 1 + cc.slots.tryTake(n-f.sent-1)
		for j := f.sent; j < f.sent+k; j++ {
			f.reqs[j].ID = f.first + uint64(j)
		}
		done, err := cc.registerFlight(f, f.sent, k, now)
		if done < k {
			cc.slots.release(k - done)
		}
		if done > 0 {
			f.cc = cc
		}
		f.sent += done
		if done < k || err != nil {
			f.err = err
			if err == nil && f.sent > 0 {
				f.err = fmt.Errorf("transport: %s: %w", f.addr, ErrConnLost)
			}
			break
		}
	}
	return f.sent > 0
}

// unanswered is how many of f's requests still wait for a reply on its
// connection, while its sender has not begun to Wait (remaining counts
// the sender too). Call it with the connection's lock held.
func (f *Flight) unanswered() int {
	return int(f.remaining.Load()) - 1
}

// Wait returns the replies: resps[i] answers the i-th request, nil where
// none could be obtained, and then the first transport error. resps is the
// flight's own slice: Release clears it, so copy out what is needed first.
func (f *Flight) Wait() ([]*Response, error) {
	if f.wave != nil {
		if !f.wave.waited {
			panic("transport: Flight.Wait of a wave's flight before Wave.Wait")
		}
		return f.outcome()
	}
	if f.started != nil {
		<-f.started
	}
	if f.timer != nil {
		defer func() {
			// After an abandon, the last reply may have signalled just
			// before: the pooled call must go back with its channel empty.
			select {
			case <-f.timer.done:
			default:
			}
			f.c.putCall(f.timer)
		}()
	}
	switch {
	case f.sent == 0:
	case outOfTime(f.err):
		// Time ran out while sending (the timer already fired): wait
		// for nothing more.
		f.abandon()
	case f.remaining.Add(-1) != 0:
		if !f.timer.awaitDone(f.ctx) {
			f.abandon()
		}
	}
	return f.outcome()
}

// outcome is Wait's result once nothing more is waited for.
func (f *Flight) outcome() ([]*Response, error) {
	if f.sent == 0 {
		return f.resps, unsent(f.err)
	}
	f.cc.mu.Lock()
	err := f.connErr
	f.sent = min(f.sent, f.unsentFrom) // what the connection never wrote did not leave
	f.cc.mu.Unlock()
	if err == nil {
		err = f.err
	}
	return f.resps, err
}

// Sent returns how many of the flight's requests, from the first, may have
// reached the peer: they were handed to a connection and, if it broke,
// written whole or in a write still in progress. The others never reached
// it (Wait's error says why), so they may be sent elsewhere whatever they
// do. Call it after Wait and before Release; after Release it panics,
// since a released flight's count (zero) would claim that nothing was
// sent.
func (f *Flight) Sent() int {
	if f.c == nil {
		panic("transport: Flight.Sent after Release")
	}
	return f.sent
}

// abandon stops waiting for the replies not in yet: they are failed with
// the timeout (or cancellation) error, and arrive, if ever, to nobody.
func (f *Flight) abandon() {
	cc := f.cc
	released := 0
	cc.mu.Lock()
	for i := range f.sent {
		id := f.first + uint64(i)
		if _, ok := cc.pending.takeOwn(id, f, nil); ok {
			released++
		}
	}
	if released > 0 && f.connErr == nil {
		f.connErr = expired(f.ctx, f.addr)
	}
	cc.mu.Unlock()
	if released > 0 {
		cc.slots.release(released)
	}
}

// outOfTime reports whether err ends a call for lack of time (deadline or
// cancellation), after which nothing more should be waited for.
func outOfTime(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled)
}

// Close fails every pending call with ErrClosed, closes all connections and
// waits for the client's goroutines to exit. Calls made after Close fail
// with ErrClosed. It is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return nil
	}
	c.closed.Store(true)
	close(c.closedCh)
	all := *c.peers.Load()
	peers := make([]*peer, 0, len(all))
	for _, p := range all {
		peers = append(peers, p)
	}
	c.mu.Unlock()
	c.cancel()
	for _, p := range peers {
		for i := range p.slots {
			if cc := p.slots[i].cc.Load(); cc != nil {
				cc.fail(ErrClosed)
			}
		}
	}
	c.wg.Wait()
	return nil
}

func (c *Client) tooLarge(addr string) error {
	return fmt.Errorf("transport: request to %s: %w (limit %d bytes)", addr, ErrFrameTooLarge, c.cfg.MaxFrameSize)
}

// peer returns the connection pool for addr.
func (c *Client) peer(addr string) (*peer, error) {
	p := (*c.peers.Load())[addr]
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if p != nil {
		return p, nil
	}
	return c.addPeer(addr)
}

// addPeer returns the connection pool for addr, creating it unless a
// caller that also missed it in the map has meanwhile.
func (c *Client) addPeer(addr string) (*peer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, ErrClosed
	}
	old := *c.peers.Load()
	p := old[addr]
	if p == nil {
		p = &peer{c: c, addr: addr, tls: clientTLS(c.cfg.TLS, addr), slots: make([]connSlot, c.cfg.ConnsPerPeer)}
		next := make(map[string]*peer, len(old)+1)
		maps.Copy(next, old)
		next[addr] = p
		c.peers.Store(&next)
	}
	return p, nil
}

// call is one request waiting for its reply. Calls are pooled: with the
// timer inside, a call costs no allocation in steady state.
type call struct {
	done  chan struct{} // receives once: resp or err is set
	resp  *Response
	err   error
	timer *time.Timer
	// timerC is timer.C while the timer runs (it ends the call before
	// the context's deadline, or the context has none), nil otherwise.
	timerC <-chan time.Time
	// limit is how long the timer runs, zero if it does not.
	limit time.Duration
}

// awaitDone waits for cl's done signal and reports whether it came before
// ctx ended or cl's timer fired.
func (cl *call) awaitDone(ctx context.Context) bool {
	select {
	case <-cl.done:
		return true
	case <-ctx.Done():
	case <-cl.timerC:
	}
	return false
}

// getCall takes a call from the pool and arms it for ctx and within (see
// CallWithin).
func (c *Client) getCall(ctx context.Context, now time.Time, within time.Duration) *call {
	cl := c.calls.Get().(*call)
	cl.arm(ctx, now, c.cfg.CallTimeout, within)
	return cl
}

func (c *Client) putCall(cl *call) {
	if cl.timerC != nil {
		if !cl.timer.Stop() {
			// Fired: with Go 1.23 timers Stop leaves nothing to read, but
			// a program built with asynctimerchan=1 would find a stale tick
			// on the next call's timer.
			select {
			case <-cl.timer.C:
			default:
			}
		}
		cl.timerC = nil
	}
	cl.resp, cl.err = nil, nil
	c.calls.Put(cl)
}

// stampDeadline sets req.Deadline to when the caller stops waiting: limit
// from now if the call's timer runs (see call.limit), else ctx's deadline;
// an earlier deadline already set is kept. It returns the caller's own
// deadline, which may be later than the one stamped.
func stampDeadline(ctx context.Context, req *Request, now time.Time, limit time.Duration) int64 {
	ms := deadlineMillis(ctx, now, limit)
	if req.Deadline == 0 || ms < req.Deadline {
		req.Deadline = ms
	}
	return ms
}

// deadlineMillis is when a caller stops waiting, as a Request.Deadline:
// limit from now if the call's own timer runs for limit (see call.limit),
// else ctx's deadline, rounded up to the next millisecond.
func deadlineMillis(ctx context.Context, now time.Time, limit time.Duration) int64 {
	d, ok := ctx.Deadline()
	if limit > 0 || !ok {
		d = now.Add(limit)
	}
	return d.UnixMilli() + 1
}

// arm starts the call's own timer when it ends the call before ctx's
// deadline: for within if set and sooner than that deadline, else for
// timeout (CallTimeout) if ctx has no deadline.
func (cl *call) arm(ctx context.Context, now time.Time, timeout, within time.Duration) {
	cl.limit = 0
	dl, ok := ctx.Deadline()
	switch {
	case within > 0 && (!ok || now.Add(within).Before(dl)):
		cl.limit = within
	case !ok:
		cl.limit = timeout
	default:
		return
	}
	cl.timer.Reset(cl.limit)
	cl.timerC = cl.timer.C
}

// expired returns the error for a call whose time ran out: ErrTimeout for
// a passed deadline (ours or ctx's), ctx's error if it was cancelled.
func expired(ctx context.Context, addr string) error {
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("transport: call to %s: %w", addr, err)
	}
	return fmt.Errorf("transport: call to %s: %w", addr, ErrTimeout)
}

// peer is the pool of connections to one address.
type peer struct {
	c    *Client
	addr string
	// tls is Config.TLS for this address (see clientTLS); nil: plaintext.
	tls   *tls.Config
	slots []connSlot
}

// connSlot holds one pooled connection, dialled lazily.
type connSlot struct {
	cc atomic.Pointer[clientConn]
	// failedAt is when a dial of this slot last failed (unix nanoseconds).
	failedAt atomic.Int64

	mu      sync.Mutex
	dialing *dialState // non-nil while a dial is in progress
}

// dialState is one dial that callers wait on together.
type dialState struct {
	done chan struct{}
	err  error // set before done is closed
}

// spillAt is how many requests one of a peer's connections carries in
// flight before the next request goes to another (dialling it if need
// be). Below it one connection carries everything: each of its writes,
// and each of the peer's reads and replies, then holds more requests,
// which is what keeps a node serving many clients efficient (a smart
// client spreading 50 requests over three nodes and two connections each
// sent a third fewer per write than over one, for 10-15% less
// throughput). Past it the load spreads over the pool, so a pipelined
// burst or a slow reply does not queue everything behind one stream.
const spillAt = 32

// growBackoff is how long a slot whose dial failed is left alone while
// the peer's other connections still have room: a peer refusing further
// connections (at its MaxConns, say) then costs a failed dial a second,
// not one per request.
const growBackoff = time.Second

// choose finds the connection the next request should go on. use is the
// first usable one with fewer than spillAt requests in flight (or fewer
// than its in-flight limit, if that is lower). Otherwise grow is a free
// slot to dial, if there is one worth dialling, and best the least loaded
// usable connection, which the caller may use meanwhile if it has room.
func (p *peer) choose(now time.Time) (use, best *clientConn, grow *connSlot) {
	bestLoad := 0
	for i := range p.slots {
		s := &p.slots[i]
		cc := s.cc.Load()
		if cc == nil || cc.broken.Load() || cc.retireIfIdle(now) {
			if grow == nil {
				grow = s
			}
			continue
		}
		load := cc.slots.load()
		if load < min(spillAt, int(cc.slots.max)) {
			return cc, nil, nil
		}
		if best == nil || load < bestLoad {
			best, bestLoad = cc, load
		}
	}
	if grow != nil && best != nil && now.UnixNano()-grow.failedAt.Load() < int64(growBackoff) {
		grow = nil // its last dial failed just now; best will do
	}
	return nil, best, grow
}

// pick returns a usable connection (see choose). When the pool should
// grow it starts the dial, and uses a busy connection meanwhile if that
// has room; it waits for the dial only when none has, and no longer than
// the call's deadline.
func (p *peer) pick(ctx context.Context, cl *call, now time.Time) (*clientConn, error) {
	for {
		use, best, grow := p.choose(now)
		if use != nil {
			return use, nil
		}
		if grow == nil {
			return best, nil // every slot busy: acquire waits for room
		}
		// A broken or retired connection left in the slot is replaced by
		// the dial (startDial treats it as absent); it is not swapped out
		// here, which could remove one a dial just installed.
		ds, err := p.startDial(grow)
		if err != nil {
			return nil, err
		}
		if best != nil && best.slots.free(1) {
			return best, nil // the dial goes on in the background
		}
		select {
		case <-ds.done:
			if ds.err != nil {
				if best != nil {
					return best, nil // full, but up: wait for room on it
				}
				return nil, ds.err
			}
		case <-ctx.Done():
			return nil, expired(ctx, p.addr)
		case <-cl.timerC:
			return nil, expired(ctx, p.addr)
		case <-p.c.closedCh:
			return nil, ErrClosed
		}
	}
}

// ready is pick without waiting: the connection pick would use at once,
// nil if the request would have to wait for a dial. A dial the pool
// needs is started.
func (p *peer) ready(now time.Time) *clientConn {
	use, best, grow := p.choose(now)
	switch {
	case use != nil:
		return use
	case grow == nil:
		return best
	}
	if _, err := p.startDial(grow); err == nil && best != nil && best.slots.free(1) {
		return best
	}
	return nil
}

// startDial returns the dial in progress for s, starting one if needed.
func (p *peer) startDial(s *connSlot) (*dialState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dialing != nil {
		return s.dialing, nil
	}
	if cc := s.cc.Load(); cc != nil && !cc.broken.Load() {
		// Another caller installed a connection meanwhile.
		ds := &dialState{done: make(chan struct{})}
		close(ds.done)
		return ds, nil
	}
	c := p.c
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return nil, ErrClosed
	}
	ds := &dialState{done: make(chan struct{})}
	s.dialing = ds
	c.wg.Add(1)
	go p.dial(s, ds)
	return ds, nil
}

// dial connects slot s and starts the connection's reader. It runs on its
// own goroutine so that no single caller's context decides the outcome
// for every caller waiting on it.
func (p *peer) dial(s *connSlot, ds *dialState) {
	c := p.c
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.dialCtx, c.cfg.DialTimeout)
	raw, err := c.network.Dial(ctx, p.addr)
	cancel()
	var conn net.Conn
	var fr *frameReader
	if err == nil {
		conn, fr, err = p.handshake(raw)
		if err != nil {
			raw.Close()
		}
	}
	switch {
	case err != nil && c.dialCtx.Err() != nil:
		ds.err = ErrClosed
	case errors.Is(err, ErrAuth):
		ds.err = fmt.Errorf("transport: connect to %s: %w", p.addr, err)
	case err != nil:
		ds.err = fmt.Errorf("transport: dial %s: %w: %w", p.addr, ErrUnreachable, err)
	default:
		cc := newClientConn(p, s, raw, conn, fr)
		c.mu.RLock()
		if c.closed.Load() {
			ds.err = ErrClosed
			raw.Close()
		} else {
			s.cc.Store(cc)
			c.wg.Add(2)
			go cc.readLoop()
			go cc.writeLoop()
		}
		c.mu.RUnlock()
	}
	if ds.err != nil {
		s.failedAt.Store(time.Now().UnixNano())
	} else {
		s.failedAt.Store(0)
	}
	s.mu.Lock()
	s.dialing = nil
	s.mu.Unlock()
	close(ds.done)
}

// handshake runs the TLS and secret handshakes on a fresh connection, as
// configured, within HandshakeTimeout. It returns the connection requests
// travel on (raw, or TLS over it) and its frame reader. A refusal, on
// either side, is an ErrAuth error; a failure of the connection itself is
// returned as it is.
func (p *peer) handshake(raw net.Conn) (net.Conn, *frameReader, error) {
	c := p.c
	if p.tls == nil && len(c.cfg.Secret) == 0 {
		return raw, newFrameReader(raw, c.cfg.MaxFrameSize), nil
	}
	// Close aborts a handshake in progress; the deadline bounds it.
	stop := context.AfterFunc(c.dialCtx, func() { raw.Close() })
	defer stop()
	if err := raw.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout)); err != nil {
		return nil, nil, err
	}
	conn := raw
	var binding []byte
	if p.tls != nil {
		tc := tls.Client(raw, p.tls)
		if err := tc.HandshakeContext(c.dialCtx); err != nil {
			if !isIOError(err) {
				err = fmt.Errorf("%w: TLS handshake (are TLS settings the same on both sides?): %w", ErrAuth, err)
			}
			return nil, nil, err
		}
		var err error
		if binding, err = tlsBinding(tc); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrAuth, err)
		}
		conn = tc
	}
	fr := newFrameReader(conn, c.cfg.MaxFrameSize)
	if len(c.cfg.Secret) > 0 {
		if err := clientAuth(conn, fr, c.cfg.Secret, binding, rand.Reader); err != nil {
			if !errors.Is(err, ErrAuth) && isRemoteTLSAlert(err) {
				// TLS 1.3: the server refused our certificate after our
				// side of the TLS handshake had completed.
				err = fmt.Errorf("%w: TLS: %w", ErrAuth, err)
			}
			return nil, nil, err
		}
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, nil, err
	}
	return conn, fr, nil
}

// clientConn is one pooled connection: callers write requests into it
// (batched, see outbuf) and its read goroutine hands replies back.
type clientConn struct {
	p    *peer
	slot *connSlot
	// raw is the dialled connection and conn what requests travel on: raw
	// itself, or TLS over it. Closing is done on raw (see serverConn).
	raw  net.Conn
	conn net.Conn
	fr   *frameReader
	// slots bounds the requests in flight (MaxInflightPerConn).
	slots *slots
	// kick wakes writeLoop to write what is buffered (see flushSoonLocked).
	kick chan struct{}
	// dead is closed when the connection fails.
	dead chan struct{}
	// broken mirrors err != nil, readable without the lock.
	broken atomic.Bool
	// lastSend is when a request was last written (unix nanoseconds).
	lastSend atomic.Int64
	// nextID numbers the connection's requests. Each connection counts
	// its own, so the IDs awaiting replies on it are a window of
	// consecutive numbers, which pendingMap keeps side by side.
	nextID atomic.Uint64
	// into is set once a flight with Replies tries to register a request
	// (just before, so that it is set before any could be answered):
	// readLoop then decodes replies in place, leaving the copy to where
	// each is wanted (see deliverAll). Until then it allocates each as it
	// decodes it, as every reply on a connection that only ever carries
	// flights and calls without Replies is wanted that way.
	into atomic.Bool

	mu      sync.Mutex
	pending pendingMap
	out     outbuf
	err     error // why the connection is unusable; set once
	// queued is set while writeLoop has been kicked and has not yet taken
	// the buffer: requests appended meanwhile leave in its write.
	queued bool
}

func newClientConn(p *peer, s *connSlot, raw, conn net.Conn, fr *frameReader) *clientConn {
	cc := &clientConn{
		p:     p,
		slot:  s,
		raw:   raw,
		conn:  conn,
		fr:    fr,
		slots: newSlots(p.c.cfg.MaxInflightPerConn),
		kick:  make(chan struct{}, 1),
		dead:  make(chan struct{}),
	}
	cc.lastSend.Store(time.Now().UnixNano())
	return cc
}

// acquire takes an in-flight slot, waiting in line while the connection
// is at its limit.
func (cc *clientConn) acquire(ctx context.Context, cl *call) error {
	if cc.slots.tryTake(1) == 1 {
		return nil
	}
	// Let what is queued go, so slots come back: a flight waiting here
	// may have its own first requests still buffered. writeLoop writes
	// them, not the caller, whose wait below keeps to its deadline even
	// if the peer has stopped reading.
	cc.mu.Lock()
	cc.wakeWriterLocked()
	cc.mu.Unlock()
	ch := cc.slots.wait()
	if ch == nil {
		return nil
	}
	var err error
	select {
	case <-ch:
		return nil
	case <-cc.dead:
		err = cc.failure()
	case <-ctx.Done():
		err = expired(ctx, cc.p.addr)
	case <-cl.timerC:
		err = expired(ctx, cc.p.addr)
	case <-cc.p.c.closedCh:
		err = ErrClosed
	}
	cc.slots.leave(ch)
	return err
}

func (cc *clientConn) failure() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

// send registers cl under req.ID and writes the request (together with
// whatever else is pending), by deadline (the caller's own, as a
// Request.Deadline: req may carry an earlier one from its sender) if it
// writes itself. It first waits for room in a full buffer (makeRoomLocked),
// and returns the error without registering anything if there is none by
// then. sent is false if the connection was already broken, or broke under
// the write that made room: the call was not registered, and the caller
// may try another connection.
func (cc *clientConn) send(ctx context.Context, cl *call, req *Request, now time.Time, deadline int64) (sent bool, err error) {
	cc.mu.Lock()
	var werr error
	if cc.out.overHigh() {
		werr, err = cc.makeRoomLocked(ctx, 0, deadline)
	}
	if werr == nil && err == nil {
		if sent, err = cc.registerLocked(waiter{cl: cl}, req, now); sent {
			werr = cc.flushSoonLocked(1, deadline)
		}
	}
	cc.mu.Unlock()
	if werr != nil {
		// A registered call fails with the rest; an unregistered one
		// finds the connection broken and may try another.
		cc.fail(cc.lostErr(werr))
	}
	return sent, err
}

// waiter is who waits for the reply to a pending request: a Call's call,
// or request i of a Flight.
type waiter struct {
	cl *call
	f  *Flight
	i  int
	// end is where the request's frame ends in the connection's byte
	// stream (outbuf.end): if the connection fails before Write took that
	// far, the peer never read the whole frame, so never served it.
	end int64
}

// registerFlight is send for requests from to from+k of f, without the
// write: that happens at flushFlight, or earlier if the buffer passes its
// high-water mark (makeRoomLocked, before each request). It returns how
// many it registered: fewer than k if the connection broke (err nil), a
// request was too large, or there was no room in the buffer before time
// ran out (err set).
func (cc *clientConn) registerFlight(f *Flight, from, k int, now time.Time) (done int, err error) {
	var werr error
	counted := 0 // of done, how many remaining counts
	if f.into != nil && !cc.into.Load() {
		cc.into.Store(true) // before any of its requests can be answered
	}
	cc.mu.Lock()
	for done < k {
		if cc.out.overHigh() {
			// Making room releases the lock, and a reply may then arrive:
			// remaining must count its request first.
			f.remaining.Add(int32(done - counted))
			counted = done
			if werr, err = cc.makeRoomLocked(f.ctx, f.unanswered(), f.deadline); werr != nil || err != nil {
				// After a failed write, what is registered fails with the
				// connection, below, and the rest finds it broken.
				break
			}
			if !time.UnixMilli(f.deadline).After(time.Now()) {
				// No time left: the flight ends with what it registered;
				// finishStart hands that to writeLoop.
				err = expired(f.ctx, f.addr)
				break
			}
		}
		i := from + done
		ok, rerr := cc.registerLocked(waiter{f: f, i: i}, f.reqs[i], now)
		if !ok {
			err = rerr
			break
		}
		done++
	}
	// Replies can arrive only once the lock is released.
	f.remaining.Add(int32(done - counted))
	cc.mu.Unlock()
	if werr != nil {
		cc.fail(cc.lostErr(werr))
	}
	return done, err
}

func (cc *clientConn) registerLocked(w waiter, req *Request, now time.Time) (bool, error) {
	if cc.err != nil {
		return false, nil
	}
	start := len(cc.out.buf)
	b := appendRequest(appendFrameHeader(cc.out.buf, kindRequest), req)
	if !finishFrame(b, start, cc.p.c.cfg.MaxFrameSize) {
		cc.out.buf = b[:start]
		return false, cc.p.c.tooLarge(cc.p.addr)
	}
	cc.out.buf = b
	cc.out.peak = max(cc.out.peak, len(b))
	w.end = cc.out.end()
	cc.pending.put(req.ID, w)
	cc.lastSend.Store(now.UnixNano())
	return true, nil
}

// flush writes whatever is buffered.
func (cc *clientConn) flush() {
	cc.mu.Lock()
	cc.queued = false
	err := cc.out.flushLocked(&cc.mu, cc.conn, cc.p.c.cfg.WriteTimeout)
	cc.mu.Unlock()
	if err != nil {
		cc.fail(cc.lostErr(err))
	}
}

// flushFlight sees that what f registered gets written (see
// flushSoonLocked).
func (cc *clientConn) flushFlight(f *Flight) {
	cc.mu.Lock()
	var err error
	if outOfTime(f.err) {
		cc.wakeWriterLocked() // the flight will not wait for it
	} else {
		err = cc.flushSoonLocked(f.unanswered(), f.deadline)
	}
	cc.mu.Unlock()
	if err != nil {
		cc.fail(cc.lostErr(err))
	}
}

// flushSoonLocked sees that the buffer gets written. On a connection with
// nothing in flight but the caller's own own requests, the caller writes
// it at once: nobody could share the write, and a hand-off would only add
// latency. That write stops at the caller's deadline (a Request.Deadline;
// the connection fails if the peer has not taken the bytes by then), so a
// peer that stopped reading cannot hold the caller past it; a caller with
// no time left leaves the write to writeLoop. Under load it kicks
// writeLoop instead, and every request appended before writeLoop gets to
// run leaves in the same write: a forwarding node with many clients then
// pays one write system call for many requests, not one each, and the
// peer reads them in one go too. A write already in progress or queued
// takes the new frames with it. The error is a failed write: the
// connection must fail.
func (cc *clientConn) flushSoonLocked(own int, deadline int64) error {
	if cc.pending.len() > own || cc.out.writing || deadline <= 0 {
		cc.wakeWriterLocked() // unless a write in progress or queued takes it
		return nil
	}
	err := cc.out.flushByLocked(&cc.mu, cc.conn, cc.p.c.cfg.WriteTimeout, time.UnixMilli(deadline))
	cc.wakeWriterLocked() // what others appended meanwhile, or all if there was no time left
	return err
}

// makeRoomLocked sees, before a caller adds to the buffer, that it is
// under its high-water mark: that is the connection's backpressure. A
// caller alone on the connection (own as for flushSoonLocked) writes the
// buffer itself, by its deadline; one that shares it waits for writeLoop
// to take it (waitRoomLocked). writeErr is a failed write (the connection
// must fail); err says why there is still no room: the deadline passed,
// ctx ended or the client closed, and the caller must add nothing. A
// connection found broken returns neither: registering finds it broken.
func (cc *clientConn) makeRoomLocked(ctx context.Context, own int, deadline int64) (writeErr, err error) {
	if !cc.out.overHigh() || cc.err != nil {
		return nil, nil
	}
	if cc.pending.len() <= own && !cc.out.writing && deadline > 0 {
		if writeErr = cc.flushSoonLocked(own, deadline); writeErr != nil {
			return writeErr, nil
		}
		// One write, by the deadline: what others appended meanwhile,
		// or the buffer itself if time ran out first, is writeLoop's.
	}
	cc.wakeWriterLocked()
	return nil, cc.waitRoomLocked(ctx, deadline)
}

// waitRoomLocked waits, with the lock released, while the buffer is past
// its high-water mark and the connection works, but no longer than the
// caller's deadline (a Request.Deadline; none if not positive) or ctx, and
// says why it stopped with no room: the deadline passed or ctx ended
// (expired), or the client closed. The write itself is writeLoop's,
// bounded by WriteTimeout. Only the callers that find room add to the
// buffer, so it stays within the mark plus about one frame however many
// wait (the write in progress holds as much again), and a peer that stops
// reading holds no caller past its deadline.
// (Such callers used to wait for the write in progress and then write the
// buffer themselves, each wait as long as WriteTimeout.)
func (cc *clientConn) waitRoomLocked(ctx context.Context, deadline int64) error {
	if !cc.out.overHigh() || cc.err != nil {
		return nil
	}
	var timeUp <-chan time.Time
	if deadline > 0 {
		left := time.Until(time.UnixMilli(deadline))
		if left <= 0 {
			return expired(ctx, cc.p.addr)
		}
		t := time.NewTimer(left)
		defer t.Stop()
		timeUp = t.C
	}
	for cc.out.overHigh() && cc.err == nil {
		wrote := cc.out.wroteLocked()
		cc.mu.Unlock()
		var err error
		select {
		case <-wrote:
		case <-cc.dead:
		case <-timeUp:
			err = expired(ctx, cc.p.addr)
		case <-ctx.Done():
			err = expired(ctx, cc.p.addr)
		case <-cc.p.c.closedCh:
			err = ErrClosed
		}
		cc.mu.Lock()
		if err == nil && ctx.Err() != nil {
			err = expired(ctx, cc.p.addr) // woken by a write, but ctx ended as well
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// wakeWriterLocked has writeLoop write what is buffered, unless a write
// already in progress or queued will take it.
func (cc *clientConn) wakeWriterLocked() {
	if cc.out.writing || cc.queued || len(cc.out.buf) == 0 {
		return
	}
	cc.queued = true
	select {
	case cc.kick <- struct{}{}:
	default:
	}
}

// writeLoop writes the buffer whenever flushSoonLocked asks it to. Before
// writing it yields once, so that callers already runnable append their
// requests first and share the write.
func (cc *clientConn) writeLoop() {
	defer cc.p.c.wg.Done()
	for {
		select {
		case <-cc.kick:
		case <-cc.dead:
			return
		}
		runtime.Gosched()
		cc.flush()
	}
}

// wait blocks until the reply to call id arrives, the connection fails, or
// time runs out (ctx, or timerC when the call's own timer runs).
func (cc *clientConn) wait(ctx context.Context, cl *call, id uint64, timerC <-chan time.Time) (*Response, error) {
	select {
	case <-cl.done:
		return cl.resp, cl.err
	case <-ctx.Done():
	case <-timerC:
	}
	return cc.abandon(cl, id, expired(ctx, cc.p.addr))
}

// abandon gives up on call id with err, unless its outcome is already on
// the way, in which case it returns that.
func (cc *clientConn) abandon(cl *call, id uint64, err error) (*Response, error) {
	cc.mu.Lock()
	if _, ok := cc.pending.takeOwn(id, nil, cl); ok {
		cc.mu.Unlock()
		cc.slots.release(1)
		return nil, err
	}
	cc.mu.Unlock()
	<-cl.done // delivered or failed just now
	return cl.resp, cl.err
}

// readLoop reads replies and hands each to its waiting call. Replies
// already in the read buffer are decoded first and handed over together,
// under one acquisition of the connection's lock: a pipelined batch's
// replies usually arrive in one read.
func (cc *clientConn) readLoop() {
	defer cc.p.c.wg.Done()
	var r replyReader
	ds := make([]delivery, 0, maxDeliveries)
	for {
		kind, body, owned, err := cc.fr.next()
		if err != nil {
			cc.deliverAll(ds, &r)
			cc.fail(cc.lostErr(err))
			return
		}
		if kind == kindAuthFail {
			// The server wants a handshake this client did not make (it
			// has a Secret, or TLS, and we do not).
			cc.deliverAll(ds, &r)
			cc.fail(fmt.Errorf("transport: connection to %s: %w", cc.p.addr, refusedBy(body)))
			return
		}
		if kind == kindResponse {
			// In place (aliased) only while the frame sits in the read
			// buffer: deliverAll runs before the next read can refill it.
			aliased := !owned && cc.into.Load()
			var resp *Response
			if aliased {
				if r.scratch == nil {
					r.scratch = make([]Response, maxDeliveries)
				}
				resp = &r.scratch[len(ds)]
				*resp = Response{}
			} else {
				resp = r.chunk.next(owned)
			}
			if err := decodeResponse(body, resp, owned || aliased); err != nil {
				if resp.ID == 0 {
					cc.deliverAll(ds, &r)
					cc.fail(cc.lostErr(err))
					return
				}
				ds = append(ds, delivery{id: resp.ID, err: fmt.Errorf("transport: reply from %s: %w", cc.p.addr, err)})
			} else {
				ds = append(ds, delivery{id: resp.ID, resp: resp, aliased: aliased})
			}
		} // else a kind from a newer protocol: not for us
		if len(ds) == cap(ds) || !cc.fr.buffered() {
			cc.deliverAll(ds, &r)
			clear(ds)
			ds = ds[:0]
		}
	}
}

// replyReader is readLoop's storage for the replies it decodes.
type replyReader struct {
	// chunk allocates the replies handed over as they are (see chunk).
	chunk chunk[Response]
	// scratch holds replies decoded in place, up to maxDeliveries at a
	// time (one per delivery), until deliverAll copies them out.
	scratch []Response
}

// own returns a copy of a reply decoded in place, allocated to last, for
// a caller that keeps its replies (a Call, or a flight without Replies).
func (r *replyReader) own(resp *Response) *Response {
	c := r.chunk.next(false)
	*c = *resp
	if resp.Value != nil {
		c.Value = bytes.Clone(resp.Value)
	}
	return c
}

// maxDeliveries bounds how many replies readLoop holds before handing
// them over.
const maxDeliveries = 64

// delivery is a reply (or the reason there is none) for request id.
type delivery struct {
	id   uint64
	resp *Response
	err  error
	cl   *call // set by deliverAll when a Call waits for it
	// aliased says resp was decoded in place: it and its value are
	// readLoop's until deliverAll copies them to where they are wanted.
	aliased bool
}

// deliverAll completes the calls and flight requests ds answer, under one
// acquisition of the lock. Replies nobody waits for any more (timed out)
// are dropped. A reply decoded in place is copied into its flight's
// Replies, or else into storage of its own; a flight's under the lock,
// since its caller may stop waiting (abandon) and reuse its Replies the
// moment the lock is free. (So a flight without Replies on such a
// connection, a node's replica copies or fetches, has its reply allocated
// under the lock: a few of them per batch, not one per forwarded request.)
// It must run before the reader reads again: see frameReader.buffered.
func (cc *clientConn) deliverAll(ds []delivery, r *replyReader) {
	if len(ds) == 0 {
		return
	}
	done := 0
	cc.mu.Lock()
	for i := range ds {
		d := &ds[i]
		w, ok := cc.pending.take(d.id)
		if !ok {
			continue
		}
		done++
		if w.f == nil {
			d.cl = w.cl // its caller waits for done, whatever happens
			continue
		}
		resp := d.resp
		switch {
		case resp == nil:
		case w.f.into != nil:
			resp = w.f.into.keep(w.i, resp, d.aliased)
		case d.aliased:
			resp = r.own(resp)
		}
		w.f.finishLocked(w.i, resp, d.err)
	}
	cc.mu.Unlock()
	if done > 0 {
		cc.slots.release(done)
	}
	for i := range ds {
		d := &ds[i]
		if cl := d.cl; cl != nil {
			resp := d.resp
			if d.aliased && resp != nil {
				resp = r.own(resp)
			}
			cl.resp, cl.err = resp, d.err
			cl.done <- struct{}{}
		}
	}
}

// finishLocked records the outcome of request i, with its connection's
// lock held, and wakes Wait if that was the last one. Doing this under the
// lock is what lets abandon know that nothing is written into the flight
// after it returns.
func (f *Flight) finishLocked(i int, resp *Response, err error) {
	f.resps[i] = resp
	if err != nil && f.connErr == nil {
		f.connErr = err
	}
	if f.remaining.Add(-1) == 0 {
		f.answered()
	}
}

// answered wakes whoever waits for f, now that every reply is in and its
// sender waits: f's own Wait, or its wave's once the wave's other flights
// are answered too.
func (f *Flight) answered() {
	if w := f.wave; w != nil {
		if w.left.Add(-1) == 0 {
			w.timer.done <- struct{}{}
		}
		return
	}
	f.timer.done <- struct{}{}
}

// lostErr wraps the cause of a broken connection for the calls it fails.
// A TLS alert from the server is a refusal (ErrAuth), not a lost
// connection: under TLS 1.3 that is how a server rejects a client
// certificate, after the client believes the handshake complete, so no
// request on the connection was served.
func (cc *clientConn) lostErr(cause error) error {
	if isRemoteTLSAlert(cause) {
		return fmt.Errorf("transport: connection to %s: %w: TLS: %w", cc.p.addr, ErrAuth, cause)
	}
	return fmt.Errorf("transport: connection to %s: %w: %w", cc.p.addr, ErrConnLost, cause)
}

// fail marks the connection unusable, fails every pending call with err,
// closes the socket and frees the pool slot. Only the first call counts.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	first := cc.err == nil
	if first {
		cc.failLocked(err)
	}
	cc.mu.Unlock()
	if first {
		cc.teardown()
	}
}

// failLocked is fail's part under the lock: from here on nothing is
// registered or written. A request whose frame had not wholly been taken
// by a Write, and is not in one still in progress (which may yet finish),
// never reached the peer: its error is marked ErrNotSent, or for a
// flight's request its index goes past Flight.Sent, so that a request
// that must not be applied twice may still go to another replica.
func (cc *clientConn) failLocked(err error) {
	cc.err = err
	if cc.out.err == nil {
		cc.out.err = err
	}
	cc.out.buf, cc.out.spare = nil, nil
	taken := cc.out.sent + int64(cc.out.inWrite)
	cc.pending.each(func(w waiter) {
		notSent := w.end > taken
		if w.f != nil {
			if notSent && w.i < w.f.unsentFrom {
				w.f.unsentFrom = w.i
			}
			w.f.finishLocked(w.i, nil, err)
			return
		}
		w.cl.err = err
		if notSent {
			w.cl.err = unsent(err)
		}
		w.cl.done <- struct{}{}
	})
	cc.pending.clear()
	cc.broken.Store(true)
}

// teardown is fail's part after the lock.
func (cc *clientConn) teardown() {
	close(cc.dead)
	cc.raw.Close()
	cc.slot.cc.CompareAndSwap(cc, nil)
}

// retireIfIdle closes the connection if nothing was sent on it for half
// the IdleTimeout and nothing is in flight, so that a call never races the
// server closing it for idleness. It reports whether the connection is
// now unusable.
func (cc *clientConn) retireIfIdle(now time.Time) bool {
	limit := int64(cc.p.c.cfg.IdleTimeout / 2)
	if now.UnixNano()-cc.lastSend.Load() < limit {
		return false
	}
	cc.mu.Lock()
	// Re-check under the lock, which registration holds: a request
	// registered meanwhile keeps the connection.
	// A caller holding a slot may be about to register on it: not idle.
	retire := cc.err == nil && cc.pending.len() == 0 && cc.slots.load() == 0 && now.UnixNano()-cc.lastSend.Load() >= limit
	if retire {
		cc.failLocked(fmt.Errorf("transport: connection to %s retired after idling: %w", cc.p.addr, ErrConnLost))
	}
	broken := cc.err != nil
	cc.mu.Unlock()
	if retire {
		cc.teardown()
	}
	return broken
}
