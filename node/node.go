// Package node runs one member of a starling cluster: it stores its share of
// the keys, joins the gossip cluster, keeps a consistent-hash ring of the
// live members, and answers every request either from its own store or by
// forwarding it once to the key's owner. There is no coordinator: every node
// runs the same code and can take any request.
package node

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starlingcache/starling/gossip"
	"github.com/starlingcache/starling/node/admin"
	"github.com/starlingcache/starling/node/hlc"
	"github.com/starlingcache/starling/node/metrics"
	"github.com/starlingcache/starling/node/resp"
	"github.com/starlingcache/starling/node/store"
	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// maxHintsPerPeer bounds the keys remembered for one unreachable replica;
// past it the replica gets a full resync instead.
const maxHintsPerPeer = 1 << 20

// Version is starling's release, reported by INFO and in logs.
const Version = "0.1.0"

// ProtocolVersion is published in gossip metadata so that a future node can
// tell which peers understand which operations.
const ProtocolVersion = 1

// Node is a running cluster member. Create it with New, then Start it; all
// methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    *slog.Logger
	store  *store.Store
	client *transport.Client

	batches sync.Pool // *batch, reused across requests

	// view is the current ring and member addresses. Request paths load it
	// without locking; the membership loop swaps in a rebuilt one.
	view atomic.Pointer[view]

	clock *hlc.Clock
	peers *peerHealth
	hints *hintSet

	ringChanged chan struct{} // wakes the rebalance loop; capacity 1, never blocks

	leaveOnce      sync.Once
	leaveRequested chan struct{} // closed when a client asks the node to leave
	leaving        atomic.Bool   // set by Shutdown before the hand-off
	leaversMu      sync.Mutex
	leavers        map[string]bool // members that refused hand-offs because they leave too
	allLeaving     atomic.Bool     // every other member refused hand-offs: the cluster is stopping
	passMu         sync.Mutex      // one rebalance pass at a time
	viewMu         sync.Mutex      // serializes view rebuilds against the leave hand-off
	joinedAt       time.Time       // when this node first saw others; guarded by viewMu
	boot           uint64          // this run's identity, published in gossip metadata

	// Request goroutines (forwarding, background replication) are tracked
	// apart from the node's loops, so Shutdown can let them finish before
	// it cancels the context the loops watch.
	reqMu     sync.RWMutex
	reqClosed bool
	reqWG     sync.WaitGroup

	// ready is closed once the node knows the cluster it joined (or that
	// it is alone): until then it has no ring to route or fetch by, and
	// requests wait for it.
	ready     chan struct{}
	readyOnce sync.Once

	// Pause detection (pause.go), in monotonic time since created.
	// bootClock reads the clock that keeps counting while the machine is
	// suspended (bootClock in suspend_linux.go); ok is false where there
	// is none. Tests replace it before Start.
	bootClock   func() (time.Duration, bool)
	created     time.Time
	lastTick    atomic.Int64
	resyncUntil atomic.Int64
	noticed     atomic.Int64 // when the last pause was noticed

	rejoinMu  sync.Mutex
	rejoined  []string        // members seen restarting (new Boot) since the last pass
	departed  map[string]bool // members seen leaving or failing; guarded by rejoinMu
	fullPass  atomic.Bool     // a full pass failed: run it again
	misplaced atomic.Bool     // a pass left keys behind: run another

	rt readThrough // read-through groups and their loads in flight (group.go)

	settleMu   sync.Mutex
	settleFrom map[settleKey]map[string]bool // hand-off reports by ring change (settle.go)

	stats struct {
		forwarded      atomic.Int64 // requests sent on to their owner
		local          atomic.Int64 // keyed requests served from this node's store
		replicated     atomic.Int64 // copies acknowledged by replicas
		fallbackHits   atomic.Int64 // keys fetched from a previous owner mid-hand-off
		pauses         atomic.Int64 // process pauses noticed (see pause.go)
		keysMoved      atomic.Int64 // keys handed to new owners
		bytesMoved     atomic.Int64
		lastHandoff    atomic.Int64 // duration of the last pass that moved keys, ns
		handoffRunning atomic.Int64 // passes in progress
	}

	// ctx is cancelled by Shutdown and parents all background work.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Set once by Start and read-only afterwards.
	srv      *transport.Server
	resp     *resp.Server  // nil when RESP is disabled
	http     *admin.Server // nil when HTTP is disabled
	gossip   *gossip.Gossip
	dataAddr string
	respAddr string
	httpAddr string

	rec    *metrics.Recorder // request counts and latencies, for /metrics
	passes atomic.Int64      // rebalance passes running

	// gossipStarted, when a test sets it before Start, runs between the
	// gossip start and the first ring: it lets a test make the background
	// join win the race that decides how that first ring looks.
	gossipStarted func(*gossip.Gossip)

	mu       sync.Mutex
	started  bool
	shutdown bool
	done     chan struct{} // closed when Shutdown finishes
	shutErr  error
}

// view is an immutable snapshot of membership: the ring built from it and
// where to reach each member.
type view struct {
	ring    *ring.Ring
	addrs   map[string]string // member name -> data address
	members []gossip.Member

	// prev is the ring before the last change and changed is when it
	// happened: for HandoffGrace afterwards, a key missing on its new owner
	// is fetched from its previous owners.
	prev    *ring.Ring
	changed time.Time
	// settled is set once every member that may hold keys for us under
	// prev has reported its hand-off to ring done: the fetches of the
	// hand-off window can stop early. Shared by the views of one ring.
	settled *atomic.Bool
}

// New validates cfg and builds a node without touching the network.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("node", cfg.Name)
	st, err := store.New(cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("node: store: %w", err)
	}
	tcfg := cfg.Transport
	tcfg.Logger = log
	// The client's own per-call timer (reused, unlike a context deadline's)
	// bounds forwarded calls made without a deadline of their own.
	tcfg.CallTimeout = cfg.ForwardTimeout
	tcfg.TLS = cfg.ClientTLS
	cl, err := transport.NewClient(tcfg)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("node: transport client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tag := fnv.New32a()
	tag.Write([]byte(cfg.Name))
	n := &Node{
		cfg:         cfg,
		log:         log,
		store:       st,
		client:      cl,
		clock:       hlc.New(uint8(tag.Sum32()), nil),
		peers:       newPeerHealth(cfg.PeerBackoff),
		hints:       newHintSet(maxHintsPerPeer),
		ringChanged: make(chan struct{}, 1),
		ready:       make(chan struct{}),
		created:     time.Now(),
		bootClock:   bootClock,
		rec:         metrics.NewRecorder(),
		boot:        rand.Uint64() | 1,

		leaveRequested: make(chan struct{}),
		ctx:            ctx,
		cancel:         cancel,
		done:           make(chan struct{}),
	}
	empty, _ := ring.New(cfg.Ring, nil)
	n.view.Store(&view{ring: empty, addrs: map[string]string{}, settled: new(atomic.Bool)})
	return n, nil
}

// Start binds the data listener, starts serving, and joins the gossip
// cluster. It returns once both listeners are bound; joining seeds goes on in
// the background (use WaitJoined to wait for it), because a seed that is not
// up yet is normal when a whole cluster starts at once.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shutdown {
		return ErrShutdown
	}
	if n.started {
		return errors.New("node: already started")
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	n.warnInsecure()
	// Pause detection counts from here: a slow start is not a pause.
	n.lastTick.Store(int64(n.monotonic()))
	ln, err := net.Listen("tcp", n.cfg.Addr)
	if err != nil {
		return fmt.Errorf("node: listen on %s: %w", n.cfg.Addr, err)
	}
	n.dataAddr = advertised(ln.Addr().String(), n.cfg.Advertise)

	scfg := n.cfg.Transport
	scfg.Logger = n.log
	scfg.TLS = n.cfg.ServerTLS
	srv, err := transport.NewServer(scfg, n)
	if err != nil {
		ln.Close()
		return fmt.Errorf("node: transport server: %w", err)
	}
	n.srv = srv
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, transport.ErrServerClosed) {
			n.log.Error("transport server stopped", "err", err)
		}
	}()

	if n.cfg.RESP.Addr != "" {
		if err := n.startRESP(); err != nil {
			n.cancel()
			_ = srv.Close()
			n.wg.Wait()
			return err
		}
	}

	if n.cfg.HTTP.Addr != "" {
		if err := n.startHTTP(); err != nil {
			n.cancel()
			_ = srv.Close()
			if n.resp != nil {
				_ = n.resp.Shutdown(expired())
			}
			n.wg.Wait()
			return err
		}
	}

	gcfg := n.cfg.Gossip
	gcfg.Name = n.cfg.Name
	gcfg.Meta = gossip.Meta{DataAddr: n.dataAddr, RespAddr: n.respAddr, HTTPAddr: n.httpAddr, Proto: ProtocolVersion, Boot: n.boot, Groups: n.groupNames()}
	if n.cfg.Advertise != "" && gcfg.AdvertiseAddr == "" {
		gcfg.AdvertiseAddr = n.cfg.Advertise
	}
	gcfg.Logger = n.log.With("component", "gossip")
	g, err := gossip.Start(gcfg)
	if err != nil {
		n.cancel()
		_ = srv.Close()
		if n.resp != nil {
			_ = n.resp.Shutdown(expired())
		}
		if n.http != nil {
			_ = n.http.Shutdown(expired())
		}
		n.wg.Wait()
		return fmt.Errorf("node: gossip: %w", err)
	}
	n.gossip = g
	if n.gossipStarted != nil {
		n.gossipStarted(g)
	}
	n.rebuild()
	if len(gcfg.Seeds) == 0 {
		n.markReady()
	} else {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			// Seeds that never answer leave us a cluster of one, which must
			// serve too: wait for them only so long.
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.JoinWait)
			defer cancel()
			if err := g.WaitJoined(ctx); err == nil {
				n.rebuild()
			}
			n.markReady()
		}()
	}
	// The rebalance loop starts from a ring of this node alone, not from
	// the first ring: when the gossip join beat the first rebuild, that
	// ring already holds the whole cluster, and a loop starting there
	// would see no change, run no pass, and never report its hand-off done
	// to the members whose windows wait for that report (see settle.go).
	// The first pass, on an empty store, costs nothing.
	initial := n.view.Load().ring
	if alone, err := ring.New(n.cfg.Ring, []string{n.cfg.Name}); err == nil {
		initial = alone
	}
	n.wg.Add(3)
	go n.membershipLoop()
	go n.rebalanceLoop(initial)
	n.lastTick.Store(int64(n.monotonic()))
	go n.pauseLoop()
	n.started = true
	n.log.Info("node started", "data_addr", n.dataAddr, "resp_addr", n.respAddr, "gossip_addr", g.Addr(), "seeds", gcfg.Seeds)
	return nil
}

// startRESP opens the Redis-protocol listener. The node is its Backend, so
// RESP commands are routed exactly like native requests.
func (n *Node) startRESP() error {
	ln, err := net.Listen("tcp", n.cfg.RESP.Addr)
	if err != nil {
		return fmt.Errorf("node: listen for RESP on %s: %w", n.cfg.RESP.Addr, err)
	}
	rcfg := n.cfg.RESP
	rcfg.NodeName = n.cfg.Name
	rcfg.Version = Version
	rcfg.Logger = n.log.With("component", "resp")
	srv, err := resp.NewServer(rcfg, n)
	if err != nil {
		ln.Close()
		return fmt.Errorf("node: RESP server: %w", err)
	}
	n.resp = srv
	n.respAddr = advertised(ln.Addr().String(), n.cfg.Advertise)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, resp.ErrServerClosed) {
			n.log.Error("RESP server stopped", "err", err)
		}
	}()
	return nil
}

// RESPAddr returns the address of the node's RESP listener, or "" if RESP
// is disabled or the node has not started.
func (n *Node) RESPAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.respAddr
}

// advertised replaces the host of a bound address with the advertised host,
// keeping the port the listener actually got.
func advertised(bound, host string) string {
	if host == "" {
		return bound
	}
	_, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	return net.JoinHostPort(host, port)
}

// WaitJoined blocks until the node has reached at least one seed, or ctx
// ends. A node started without seeds is joined at once.
func (n *Node) WaitJoined(ctx context.Context) error {
	g, err := n.gossipOrErr()
	if err != nil {
		return err
	}
	return g.WaitJoined(ctx)
}

func (n *Node) gossipOrErr() (*gossip.Gossip, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shutdown {
		return nil, ErrShutdown
	}
	if !n.started {
		return nil, ErrNotStarted
	}
	return n.gossip, nil
}

// membershipLoop turns gossip events into new rings. Every event triggers a
// rebuild from gossip's full member list rather than an incremental edit, so
// the ring depends only on who is a member, never on the order in which
// events arrived: two nodes that see the same members build the same ring.
func (n *Node) membershipLoop() {
	defer n.wg.Done()
	events := n.gossip.Events()
	for {
		select {
		case <-n.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			n.log.Info("membership event", "event", ev.Kind.String(), "member", ev.Member.Name,
				"data_addr", ev.Member.Meta.DataAddr)
			// Coalesce a burst (a whole cluster starting) into one rebuild.
		drain:
			for {
				select {
				case ev, ok = <-events:
					if !ok {
						break drain
					}
					n.log.Info("membership event", "event", ev.Kind.String(), "member", ev.Member.Name,
						"data_addr", ev.Member.Meta.DataAddr)
				default:
					break drain
				}
			}
			n.rebuild()
		}
	}
}

// rebuild builds a ring from gossip's current member list and swaps it in.
func (n *Node) rebuild() {
	n.viewMu.Lock()
	defer n.viewMu.Unlock()
	members := n.gossip.Members()
	if n.leaving.Load() {
		// Handing off before leaving: keep routing around ourselves.
		members = slices.DeleteFunc(members, func(m gossip.Member) bool { return m.Name == n.cfg.Name })
	}
	names := make([]string, 0, len(members))
	addrs := make(map[string]string, len(members))
	for _, m := range members {
		if m.Meta.DataAddr == "" {
			// A member whose metadata we cannot read cannot be forwarded
			// to; giving it keys would turn them into errors.
			n.log.Warn("member without a data address left out of the ring", "member", m.Name)
			continue
		}
		names = append(names, m.Name)
		addrs[m.Name] = m.Meta.DataAddr
	}
	r, err := ring.New(n.cfg.Ring, names)
	if err != nil {
		n.log.Error("ring rebuild failed; keeping the previous ring", "err", err)
		return
	}
	old := n.view.Load()
	n.noteRestarts(old.members, members)
	next := &view{ring: r, addrs: addrs, members: members, prev: old.prev, changed: old.changed, settled: old.settled}
	if old.ring.Version() != r.Version() {
		next.settled = new(atomic.Bool)
		joining := isJoining(old.ring, r, n.cfg.Name)
		if joining {
			n.joinedAt = time.Now()
		}
		switch {
		case joining || (!n.joinedAt.IsZero() && time.Since(n.joinedAt) < n.cfg.HandoffGrace):
			// We are joining: the previous owners of our keys are the
			// others, as the cluster's ring had them before we arrived —
			// not the partial rings we build while we learn the members.
			if others, err := ring.New(n.cfg.Ring, slices.DeleteFunc(r.Members(), func(m string) bool { return m == n.cfg.Name })); err == nil && others.Len() > 0 {
				next.prev, next.changed = others, n.joinedAt
			}
		case old.ring.Len() == 0:
			// Our first ring, and no one else on it: nothing to hand over.
		default:
			next.prev, next.changed = old.ring, time.Now()
		}
		n.log.Info("ring rebuilt", "members", r.Len(), "version", r.Version())
	}
	n.view.Store(next)
	n.checkSettled(next)
	select {
	case n.ringChanged <- struct{}{}:
	default:
	}
}

// isJoining reports whether going from ring old to ring r is this node
// (self) meeting the cluster: before, it knew no one else — its first ring
// is either empty or itself alone, depending on whether the background
// join beat the first rebuild — and now it does. Both shapes must count:
// a node that took the whole cluster as its first ring without a hand-off
// window would answer misses from its empty store for keys on their way to
// it.
func isJoining(old, r *ring.Ring, self string) bool {
	alone := old.Len() == 0 || old.Len() == 1 && old.Contains(self)
	return alone && r.Len() > 1 && r.Contains(self)
}

// noteRestarts records members whose Boot changed between two member
// lists: they restarted too quickly for gossip to see them leave, lost
// their memory, and must be sent their keys again as if they had joined.
func (n *Node) noteRestarts(before, after []gossip.Member) {
	boots := make(map[string]uint64, len(before))
	for _, m := range before {
		boots[m.Name] = m.Meta.Boot
	}
	present := make(map[string]bool, len(after))
	n.rejoinMu.Lock()
	defer n.rejoinMu.Unlock()
	for _, m := range after {
		present[m.Name] = true
		if m.Name == n.cfg.Name {
			continue
		}
		old, seen := boots[m.Name]
		switch {
		case seen && old != 0 && old != m.Meta.Boot:
			n.log.Info("member restarted", "member", m.Name)
		case !seen && n.departed[m.Name]:
			// Back from the dead: a healed partition, a frozen process, or
			// a restart gossip saw as a failure. Either way its copies and
			// ours may have diverged while it was gone.
			n.log.Info("member is back", "member", m.Name)
		default:
			continue
		}
		delete(n.departed, m.Name)
		n.rejoined = append(n.rejoined, m.Name)
	}
	for name := range boots {
		if !present[name] && name != n.cfg.Name {
			if n.departed == nil || len(n.departed) >= maxDeparted {
				n.departed = make(map[string]bool) // forget long-gone names rather than grow
			}
			n.departed[name] = true
		}
	}
}

// maxDeparted bounds the names of departed members remembered.
const maxDeparted = 4096

func (n *Node) markReady() { n.readyOnce.Do(func() { close(n.ready) }) }

// awaitReady holds a request until the node knows its cluster, so that a
// node that is still joining never answers from an empty store for keys
// it has not been handed yet.
func (n *Node) awaitReady() {
	select {
	case <-n.ready:
		return
	default:
	}
	t := time.NewTimer(n.cfg.JoinWait)
	defer t.Stop()
	select {
	case <-n.ready:
	case <-t.C:
	case <-n.ctx.Done():
	}
}

// track registers a request goroutine, or reports false once Shutdown has
// stopped accepting them.
func (n *Node) track() bool {
	n.reqMu.RLock()
	defer n.reqMu.RUnlock()
	if n.reqClosed {
		return false
	}
	n.reqWG.Add(1)
	return true
}

// drainRequests stops new request goroutines and waits for running ones
// (each bounded by ForwardTimeout or ReplicaTimeout) until ctx ends.
func (n *Node) drainRequests(ctx context.Context) {
	n.reqMu.Lock()
	n.reqClosed = true
	n.reqMu.Unlock()
	done := make(chan struct{})
	go func() {
		n.reqWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr returns the data address clients and peers use to reach this node.
// It is empty before Start.
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dataAddr
}

// GossipAddr returns the address other nodes join through. It is empty
// before Start.
func (n *Node) GossipAddr() string {
	g, err := n.gossipOrErr()
	if err != nil {
		return ""
	}
	return g.Addr()
}

// Ring returns the ring the node currently routes by.
func (n *Node) Ring() *ring.Ring { return n.view.Load().ring }

// Members returns the members this node currently sees, sorted by name.
func (n *Node) Members() []transport.Member {
	v := n.view.Load()
	out := make([]transport.Member, 0, len(v.members))
	for _, m := range v.members {
		out = append(out, transport.Member{
			Name:       m.Name,
			GossipAddr: m.GossipAddr,
			DataAddr:   m.Meta.DataAddr,
			State:      m.State.String(),
			RespAddr:   m.Meta.RespAddr,
		})
	}
	return out
}

// LeaveRequested is closed when a client asks this node to leave the
// cluster (`starling leave`). The program running the node should then
// call Shutdown, exactly as on SIGTERM.
func (n *Node) LeaveRequested() <-chan struct{} { return n.leaveRequested }

// Store exposes the local storage engine, for stats and embedding.
func (n *Node) Store() *store.Store { return n.store }

// Shutdown leaves the cluster gracefully (others see a leave, not a crash),
// stops serving, waits for in-flight requests until ctx ends, and releases
// everything. It is safe to call more than once; later calls wait for the
// first and return its result.
func (n *Node) Shutdown(ctx context.Context) error {
	return n.stop(ctx, true)
}

// leaveAmongLeavers bounds leaving gossip when every other member is
// leaving too.
const leaveAmongLeavers = time.Second

// stop shuts the node down; without leave, peers learn of it only through
// failure detection, exactly as after a crash.
func (n *Node) stop(ctx context.Context, leave bool) error {
	n.mu.Lock()
	if n.shutdown {
		n.mu.Unlock()
		select {
		case <-n.done:
			return n.shutErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.shutdown = true
	started := n.started
	n.mu.Unlock()

	var errs []error
	switch {
	case started && leave:
		// Hand every key to its next owners while this node still answers
		// (it is still in the others' rings), then leave, then send on what
		// arrived in the meantime.
		n.handOffForLeave(ctx)
		lctx := ctx
		if n.allLeaving.Load() {
			// The whole cluster is stopping: nobody will remember how we
			// left. Gossip already skips waiting for a leave message when
			// it sees nobody staying; this bounds the rest of its leave
			// (pushing the leaving flag) in case its view lags ours.
			var cancel context.CancelFunc
			lctx, cancel = context.WithTimeout(ctx, leaveAmongLeavers)
			defer cancel()
		}
		if err := n.gossip.Leave(lctx); err != nil {
			if n.allLeaving.Load() {
				n.log.Warn("left gossip without confirmation; every other member is leaving too", "err", err)
			} else {
				errs = append(errs, fmt.Errorf("gossip leave: %w", err))
			}
		}
		n.handOffStragglers(ctx)
		if n.resp != nil {
			if err := n.resp.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("RESP shutdown: %w", err))
			}
		}
		if err := n.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("transport shutdown: %w", err))
		}
		if n.http != nil {
			if err := n.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
			}
		}
		// Acknowledged writes may still be replicating in the background:
		// let them finish before the context they run under is cancelled.
		n.drainRequests(ctx)
	case started:
		if n.resp != nil {
			_ = n.resp.Shutdown(expired())
		}
		if n.http != nil {
			_ = n.http.Shutdown(expired())
		}
		_ = n.srv.Close()
	}
	n.cancel()
	n.drainRequests(context.Background()) // everything left sees a cancelled context
	if started {
		if err := n.gossip.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("gossip shutdown: %w", err))
		}
	}
	n.wg.Wait()
	if err := n.client.Close(); err != nil {
		errs = append(errs, fmt.Errorf("transport client: %w", err))
	}
	n.store.Close()
	n.shutErr = errors.Join(errs...)
	close(n.done)
	n.log.Info("node stopped")
	return n.shutErr
}

// expired returns a context that is already done, for closing servers at
// once (a crash, or a failed start) through their graceful Shutdown.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
