package node

// Read-through groups.
//
// A program that embeds a node registers a named Group with a Loader; a Get
// that misses is routed to the owner of the key, which alone runs the load,
// so concurrent misses anywhere in the cluster wait for one call.
//
// Keys. A group's entry for key lives in the ordinary store under
// groupKeyPrefix + group + ":" + key ("\x00grp:users:42"). Group names may
// not contain ':', so the namespaced key is unambiguous. It is routed,
// written (OpSet, HLC-versioned), replicated, expired and handed off like
// any other key: nothing in the cluster treats it specially except OpLoad.
// The leading NUL keeps it out of the way of keys people type; a client of
// the RESP or msgpack front ends can still write such a key, and a value
// that is not a valid loader.Entry is treated as a miss and overwritten by
// the next load.
//
// Values. The stored value is a loader.Entry: a 10-byte header (format,
// kind: value or "not found", soft expiry in Unix ns) then the value. The
// hard expiry is the entry's TTL.
//
// OpLoad on the wire: Key is the caller's key (not the namespaced one),
// Value the group name, TTL a hint of how long the caller will wait for a
// load, in ms (0: DefaultLoadTimeout). OpLoad is deliberately not a keyed
// operation (transport.Op.Keyed): keyed requests are routed by their Key,
// and this one must be routed by the namespaced key; nor do its failure
// rules match (a load that times out on its owner must not be retried on a
// replica, which would load a second time). Its flags say where it is:
//
//	none                        from a client: route to the owner of the namespaced key
//	FlagForwarded               to the owner: answer from the store, or load once
//	FlagForwarded|FlagLocalOnly to a member that hosts the loader: call it once, store the result
//
// Ownership changes. The owner stores a loaded value with a routed write,
// so if the ring changes while it loads the value lands on the new owner
// (and its replicas), and the waiters on the old owner still get it. A
// new owner that misses during HandoffGrace first fetches the entry from
// the previous owners, as ordinary reads do; if the old owner's load has
// not finished yet, the new owner starts one of its own: at most one extra
// load per key per ring change. A crashed owner breaks its callers'
// connections; they retry on the next owner, which loads again. An owner
// that is slow is not replaced: its callers wait, up to the load timeout.
//
// Stale-while-revalidate. The soft expiry is wall-clock time on the node
// that ran the load, compared with the owner's clock: skew between them
// shifts it. A refresh that fails leaves the stale entry in place; the
// next stale read starts another, so a failing source sees at most one
// refresh at a time per key, not one per read.
//
// Waiting. Loads a node runs as owner or host are request goroutines: a
// graceful Shutdown waits for them (each bounded by its load timeout), and
// the loader's context is cancelled when the node stops. A loaded value is
// stored with the cluster's write acknowledgement (WriteAck) before the
// waiters get it, so a miss costs a replicated write as well as a load.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starlingcache/starling/node/loader"
	"github.com/starlingcache/starling/transport"
)

// Loader loads the value for key from the source of truth: a database, a
// service. It returns the value and how long to cache it (0: the group's
// TTL), ErrNotFound (or an error wrapping it) if key does not exist, or
// any other error, which is returned to every caller waiting for the load
// and not cached. ctx ends at the group's LoadTimeout or at shutdown, not
// when the caller that started the load gives up.
type Loader func(ctx context.Context, key string) (value []byte, ttl time.Duration, err error)

// GroupConfig configures a read-through group.
type GroupConfig struct {
	// Name identifies the group cluster-wide: 1 to 64 bytes of letters,
	// digits, '.', '_' and '-'. Every node that hosts the group must use
	// the same Name and the same Loader semantics.
	Name string

	// Loader loads a missing key. Required.
	Loader Loader

	// TTL is how long a loaded value is cached when the Loader returns no
	// TTL of its own; past it the value is gone and the next Get loads
	// again. 0 keeps values until they are evicted.
	TTL time.Duration

	// SoftTTL, if positive and shorter than the value's TTL, turns on
	// stale-while-revalidate: past SoftTTL a value is still served at once,
	// and one background load refreshes it; past the TTL it is a miss.
	SoftTTL time.Duration

	// NegativeTTL is how long a "not found" from the Loader is cached, so a
	// burst of lookups of a missing key costs one load. 0 caches nothing.
	NegativeTTL time.Duration

	// LoadTimeout bounds one call of the Loader, whoever waits for it: a
	// caller whose context ends returns, and the load goes on for the others
	// until it finishes or LoadTimeout passes. 0 means DefaultLoadTimeout.
	LoadTimeout time.Duration
}

// DefaultLoadTimeout bounds a load when GroupConfig.LoadTimeout is 0, and
// is how long a node waits for a load a client asked for without a hint.
const DefaultLoadTimeout = 10 * time.Second

// maxLoadTimeout caps LoadTimeout and the wait hint an OpLoad carries, so
// a request from the network cannot pin a goroutine for long.
const maxLoadTimeout = 5 * time.Minute

// DefaultGroupConfig returns a configuration with a 5-minute TTL, "not
// found" cached for 10 seconds and DefaultLoadTimeout. Set Name and Loader.
func DefaultGroupConfig() GroupConfig {
	return GroupConfig{TTL: 5 * time.Minute, NegativeTTL: 10 * time.Second, LoadTimeout: DefaultLoadTimeout}
}

// Validate reports the first problem that would make the group misbehave.
func (c *GroupConfig) Validate() error {
	if err := checkGroupName(c.Name); err != nil {
		return fmt.Errorf("%w: group: %w", ErrInvalidConfig, err)
	}
	if c.Loader == nil {
		return fmt.Errorf("%w: group %q: a loader is required", ErrInvalidConfig, c.Name)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TTL", c.TTL}, {"soft TTL", c.SoftTTL}, {"negative TTL", c.NegativeTTL}, {"load timeout", c.LoadTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%w: group %q: %s must not be negative", ErrInvalidConfig, c.Name, d.name)
		}
		if d.v > maxTTLMillis*time.Millisecond {
			return fmt.Errorf("%w: group %q: %s over 100 years", ErrInvalidConfig, c.Name, d.name)
		}
	}
	if c.LoadTimeout > maxLoadTimeout {
		return fmt.Errorf("%w: group %q: load timeout %v over %v", ErrInvalidConfig, c.Name, c.LoadTimeout, maxLoadTimeout)
	}
	if c.SoftTTL > 0 && c.TTL > 0 && c.SoftTTL >= c.TTL {
		return fmt.Errorf("%w: group %q: soft TTL %v must be shorter than TTL %v", ErrInvalidConfig, c.Name, c.SoftTTL, c.TTL)
	}
	return nil
}

// maxGroupName bounds a group's name; all the names a node hosts travel in
// its gossip metadata, bounded by maxGroupNames.
const (
	maxGroupName  = 64
	maxGroupNames = 256
)

func checkGroupName(name string) error {
	if name == "" || len(name) > maxGroupName {
		return fmt.Errorf("name %q must be 1 to %d bytes", name, maxGroupName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q: only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

// groupKeyPrefix starts the store key of every group entry.
const groupKeyPrefix = "\x00grp:"

// groupKey is the store key of group's entry for key.
func groupKey(group, key string) string {
	return groupKeyPrefix + group + ":" + key
}

// Errors of read-through groups.
var (
	// ErrNotFound is returned by Group.Get when the loader reported that
	// the key does not exist, now or in a cached "not found". A Loader
	// returns it to report absence. It is transport.ErrNotFound, so it
	// keeps its meaning across nodes.
	ErrNotFound = transport.ErrNotFound
	// ErrNoLoader reports a load that no live member can run: none
	// publishes the group. It travels as transport.ErrUnavailable.
	ErrNoLoader = errors.New("no member hosts the group's loader")
	// ErrGroupExists is returned by NewGroup for a name already registered
	// on this node.
	ErrGroupExists = errors.New("group already registered")
)

// Group is a read-through cache over one Loader, registered on a node with
// NewGroup. Its methods are safe for concurrent use.
type Group struct {
	n   *Node
	cfg GroupConfig

	stats groupCounters
}

// How an OpLoad was answered, in Response.Int.
const (
	outcomeHit    = 0 // a fresh entry, value or "not found"
	outcomeStale  = 1 // an entry past its soft TTL; a refresh runs
	outcomeLoaded = 2 // this request started the load it waited for
	outcomeShared = 3 // this request waited for a load another started
)

// NewGroup registers a read-through group on n and starts publishing, in
// n's gossip metadata, that n runs its loader. Registering before Start
// publishes it with the node's first metadata; later, the update reaches
// the others within a gossip round, and until then they treat the group
// as hosted elsewhere.
func (n *Node) NewGroup(cfg GroupConfig) (*Group, error) {
	if cfg.LoadTimeout == 0 {
		cfg.LoadTimeout = DefaultLoadTimeout
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rt := n.readThrough()
	rt.mu.Lock()
	if _, ok := rt.groups[cfg.Name]; ok {
		rt.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrGroupExists, cfg.Name)
	}
	size := len(cfg.Name) + 1
	for name := range rt.groups {
		size += len(name) + 1
	}
	if size > maxGroupNames {
		rt.mu.Unlock()
		return nil, fmt.Errorf("%w: group %q: the names of a node's groups must fit in %d bytes", ErrInvalidConfig, cfg.Name, maxGroupNames)
	}
	g := &Group{n: n, cfg: cfg}
	rt.groups[cfg.Name] = g
	rt.mu.Unlock()

	n.mu.Lock()
	running := n.started && !n.shutdown
	n.mu.Unlock()
	if running {
		n.goTracked(n.publishGroups)
	}
	return g, nil
}

// Name returns the group's name.
func (g *Group) Name() string { return g.cfg.Name }

// Get returns key's value: from the cache if present, else from the
// group's Loader, called once on the key's owner however many callers miss
// at once, anywhere in the cluster. It returns ErrNotFound if the Loader
// reported the key absent, the Loader's error if it failed (not cached),
// and ctx's error if ctx ends first (the load goes on for the others). The
// returned slice belongs to the caller.
func (g *Group) Get(ctx context.Context, key string) ([]byte, error) {
	n := g.n
	g.stats.gets.Add(1)
	if _, err := n.gossipOrErr(); err != nil {
		g.stats.errors.Add(1)
		return nil, err
	}
	n.awaitReady()
	req := &transport.Request{Op: transport.OpLoad, Key: key, Value: []byte(g.cfg.Name), TTL: g.cfg.LoadTimeout.Milliseconds()}
	e, outcome, err := n.load(ctx, req)
	if err != nil {
		g.stats.errors.Add(1)
		return nil, fmt.Errorf("node: group %s: get %q: %w", g.cfg.Name, key, err)
	}
	switch outcome {
	case outcomeHit:
		g.stats.hits.Add(1)
	case outcomeStale:
		g.stats.staleHits.Add(1)
	case outcomeLoaded:
		g.stats.misses.Add(1)
	case outcomeShared:
		g.stats.misses.Add(1)
		g.stats.coalesced.Add(1)
	}
	if e.NotFound {
		g.stats.notFound.Add(1)
		return nil, fmt.Errorf("node: group %s: get %q: %w", g.cfg.Name, key, ErrNotFound)
	}
	return bytes.Clone(e.Value), nil
}

// GroupStats are a group's counters on one node. The Get counters count
// Gets made through this Group value, wherever their keys' owners are; the
// load counters count this node's calls of the Loader, whoever asked.
type GroupStats struct {
	// Gets is every call of Get; each ends as exactly one of Hits,
	// StaleHits, Misses or Errors.
	Gets int64
	// Hits were answered from a fresh cached entry ("not found" included).
	Hits int64
	// StaleHits were answered from an entry past its soft TTL, at once,
	// while one background load refreshed it.
	StaleHits int64
	// Misses waited for a load.
	Misses int64
	// Coalesced is the part of Misses that waited for a load another
	// caller had started: the loads single flight saved.
	Coalesced int64
	// NotFound counts Gets that returned ErrNotFound.
	NotFound int64
	// Errors counts Gets that returned any other error.
	Errors int64

	// Loads counts calls of this node's Loader, background refreshes
	// included; LoadErrors those that failed (ErrNotFound is not a
	// failure) and LoadNotFound those that reported the key absent.
	Loads        int64
	LoadErrors   int64
	LoadNotFound int64
	// LoadTime is the total time spent in the Loader; LoadTime/Loads is
	// the mean latency.
	LoadTime time.Duration
	// LoadLatency counts loads by duration: LoadLatency[i] those that took
	// at most LoadLatencyBounds()[i] (and more than the bound before it);
	// the last element counts those slower than every bound.
	LoadLatency [len(loadBounds) + 1]int64
	// StoreErrors counts loaded results that could not be cached (too
	// large, no memory): the callers got the value, the next Get loads
	// again.
	StoreErrors int64
}

var loadBounds = [...]time.Duration{
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond, time.Second, 5 * time.Second,
}

// LoadLatencyBounds returns the upper bounds of GroupStats.LoadLatency's
// buckets, for exporting them as a histogram.
func LoadLatencyBounds() []time.Duration { return slices.Clone(loadBounds[:]) }

type groupCounters struct {
	gets, hits, staleHits, misses, coalesced, notFound, errors atomic.Int64
	loads, loadErrors, loadNotFound, loadNanos, storeErrors    atomic.Int64
	latency                                                    [len(loadBounds) + 1]atomic.Int64
}

// Stats returns the group's counters on this node.
func (g *Group) Stats() GroupStats {
	c := &g.stats
	s := GroupStats{
		Gets: c.gets.Load(), Hits: c.hits.Load(), StaleHits: c.staleHits.Load(), Misses: c.misses.Load(),
		Coalesced: c.coalesced.Load(), NotFound: c.notFound.Load(), Errors: c.errors.Load(),
		Loads: c.loads.Load(), LoadErrors: c.loadErrors.Load(), LoadNotFound: c.loadNotFound.Load(),
		LoadTime: time.Duration(c.loadNanos.Load()), StoreErrors: c.storeErrors.Load(),
	}
	for i := range c.latency {
		s.LoadLatency[i] = c.latency[i].Load()
	}
	return s
}

func (c *groupCounters) observe(d time.Duration, err error) {
	c.loads.Add(1)
	c.loadNanos.Add(int64(d))
	switch {
	case errors.Is(err, ErrNotFound):
		c.loadNotFound.Add(1)
	case err != nil:
		c.loadErrors.Add(1)
	}
	i, _ := slices.BinarySearch(loadBounds[:], d)
	c.latency[i].Add(1)
}

// readThrough is a node's read-through state: the groups it hosts and the
// loads in flight. Set up on first use, so a node that never uses groups
// pays nothing.
type readThrough struct {
	once sync.Once

	mu     sync.RWMutex
	groups map[string]*Group

	// owner coalesces, by namespaced key, the misses this node answers as
	// the key's owner; host coalesces the Loader calls it runs for owners.
	// They are apart so an owner that hosts the group can go through both.
	owner loader.Flight[ownerResult]
	host  loader.Flight[loader.Entry]

	metaMu sync.Mutex // one metadata publication at a time
}

// ownerResult is what an owner's load produced: the entry, and whether it
// came from a Loader (or from the store, filled in meanwhile).
type ownerResult struct {
	e      loader.Entry
	loaded bool
}

func (n *Node) readThrough() *readThrough {
	rt := &n.rt
	rt.once.Do(func() {
		rt.groups = map[string]*Group{}
		rt.owner.Go = n.goTracked
		rt.host.Go = n.goTracked
	})
	return rt
}

// goTracked runs fn as a request goroutine, which Shutdown waits for, or
// reports false once Shutdown has begun.
func (n *Node) goTracked(fn func()) bool {
	if !n.track() {
		return false
	}
	go func() {
		defer n.reqWG.Done()
		fn()
	}()
	return true
}

// group returns the group registered under name on this node, or nil.
func (n *Node) group(name string) *Group {
	rt := n.readThrough()
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.groups[name]
}

// groupNames lists the groups this node hosts, sorted, for its gossip
// metadata.
func (n *Node) groupNames() []string {
	rt := n.readThrough()
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if len(rt.groups) == 0 {
		return nil
	}
	names := make([]string, 0, len(rt.groups))
	for name := range rt.groups {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// publishGroups republishes this node's metadata with its current groups.
func (n *Node) publishGroups() {
	g, err := n.gossipOrErr()
	if err != nil {
		return
	}
	rt := n.readThrough()
	rt.metaMu.Lock()
	defer rt.metaMu.Unlock()
	m := g.LocalMember().Meta
	m.Groups = n.groupNames()
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	if err := g.UpdateMeta(ctx, m); err != nil && n.ctx.Err() == nil {
		n.log.Warn("publishing read-through groups", "groups", m.Groups, "err", err)
	}
}

// serveLoad answers an OpLoad that arrived on the wire or in a pipeline.
func (n *Node) serveLoad(ctx context.Context, req *transport.Request) *transport.Response {
	e, outcome, err := n.load(ctx, req)
	switch {
	case err != nil:
		return errResponse(err)
	case e.NotFound:
		return &transport.Response{Code: transport.CodeNotFound, Int: int64(outcome)}
	}
	return &transport.Response{Value: e.Value, Int: int64(outcome)}
}

// load is OpLoad's one path, for Group.Get and the wire alike: it checks
// the request, then acts as the entry point, the owner or the loader's
// host, according to its flags.
func (n *Node) load(ctx context.Context, req *transport.Request) (loader.Entry, int, error) {
	group := string(req.Value)
	if err := checkGroupName(group); err != nil {
		return loader.Entry{}, 0, fmt.Errorf("%w: group %w", transport.ErrBadRequest, err)
	}
	nk := groupKey(group, req.Key)
	if len(nk) > n.cfg.Store.MaxKeySize {
		return loader.Entry{}, 0, fmt.Errorf("%w: key is %d bytes with its group prefix, limit %d", transport.ErrTooLarge, len(nk), n.cfg.Store.MaxKeySize)
	}
	wait := DefaultLoadTimeout
	if req.TTL > 0 {
		wait = min(time.Duration(req.TTL)*time.Millisecond, maxLoadTimeout)
	}
	const toHost = transport.FlagForwarded | transport.FlagLocalOnly
	switch {
	case req.Flags&toHost == toHost:
		return n.loadAsHost(ctx, group, req.Key, nk)
	case req.Flags&transport.FlagForwarded != 0:
		return n.loadAsOwner(ctx, group, req.Key, nk, wait)
	}
	return n.routeLoad(ctx, req, nk, wait)
}

// routeLoad sends a load to the owner of its namespaced key, or serves it
// here if this node is the owner. An owner that cannot be reached (or
// whose connection breaks mid-load: it crashed) is replaced by the next
// one; an owner that is merely slow is not, since the next one would load
// a second time.
func (n *Node) routeLoad(ctx context.Context, req *transport.Request, nk string, wait time.Duration) (loader.Entry, int, error) {
	group := string(req.Value)
	v := n.view.Load()
	var buf [maxReplicas]string
	owners := v.ring.AppendOwners(buf[:0], nk, n.cfg.Replicas)
	if len(owners) == 0 || owners[0] == n.cfg.Name {
		return n.loadAsOwner(ctx, group, req.Key, nk, wait)
	}
	fwd := transport.Request{Op: transport.OpLoad, Flags: transport.FlagForwarded, Key: req.Key, Value: req.Value, TTL: wait.Milliseconds()}
	err := fmt.Errorf("%w: no owner reachable", transport.ErrUnavailable)
	for i, o := range owners {
		if o == n.cfg.Name {
			// The owners before us could not be reached: stand in.
			return n.loadAsOwner(ctx, group, req.Key, nk, wait)
		}
		addr, ok := v.addrs[o]
		if !ok || (i < len(owners)-1 && n.peers.down(addr)) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, wait+n.cfg.ForwardTimeout)
		fwd.Deadline = 0 // this attempt's own, not the last one's
		resp, cerr := n.client.Call(cctx, addr, &fwd)
		cancel()
		if cerr == nil {
			n.stats.forwarded.Add(1)
			return fromLoadResponse(resp)
		}
		n.callFailed(ctx, addr, cerr)
		err = fmt.Errorf("%w: node %s: %w", transport.ErrUnavailable, addr, cerr)
		if !errors.Is(cerr, transport.ErrUnreachable) || ctx.Err() != nil {
			break
		}
	}
	return loader.Entry{}, 0, err
}

// fromLoadResponse turns an OpLoad's answer back into load's results.
func fromLoadResponse(resp *transport.Response) (loader.Entry, int, error) {
	outcome := int(resp.Int)
	switch resp.Code {
	case transport.CodeOK:
		return loader.Entry{Value: resp.Value}, outcome, nil
	case transport.CodeNotFound:
		return loader.Entry{NotFound: true}, outcome, nil
	}
	return loader.Entry{}, 0, resp.Error()
}

// loadAsOwner answers from this node's store, or waits for the one load of
// the key this node runs as its owner. A stale entry is answered at once
// and refreshed in the background.
func (n *Node) loadAsOwner(ctx context.Context, group, key, nk string, wait time.Duration) (loader.Entry, int, error) {
	rt := n.readThrough()
	load := func() (ownerResult, error) { return n.ownerLoad(group, key, nk, wait) }
	if n.resyncing() {
		// After a pause our entry may be older than the other owners'
		// (reloaded, or deleted, while we slept): read through them first,
		// as for any key (see pause.go).
		n.refetch(ctx, n.view.Load(), nk, true)
		if err := ctx.Err(); err != nil {
			return loader.Entry{}, 0, err // not our own copy, unchecked
		}
	}
	if e, ok := n.readEntry(nk); ok {
		if !e.Stale(time.Now().UnixNano()) {
			return e, outcomeHit, nil
		}
		rt.owner.Start(nk, load)
		return e, outcomeStale, nil
	}
	res, shared, err := rt.owner.Do(ctx, nk, load)
	switch {
	case err != nil:
		return loader.Entry{}, 0, flightError(err)
	case !res.loaded:
		return res.e, outcomeHit, nil
	case shared:
		return res.e, outcomeShared, nil
	}
	return res.e, outcomeLoaded, nil
}

// flightError turns a load a shutting-down node refused to start into the
// error every other request gets then.
func flightError(err error) error {
	if errors.Is(err, loader.ErrNotStarted) {
		return fmt.Errorf("%w: %w", transport.ErrUnavailable, ErrShutdown)
	}
	return err
}

// readEntry returns the group entry stored under nk here, if any. Bytes
// that are not an entry (a client wrote the key) count as a miss.
func (n *Node) readEntry(nk string) (loader.Entry, bool) {
	val, _, _, ok := n.store.GetEntry(nk)
	if !ok {
		return loader.Entry{}, false
	}
	e, err := loader.Decode(val)
	if err != nil {
		n.log.Debug("group entry unreadable; loading it again", "key", nk, "err", err)
		return loader.Entry{}, false
	}
	return e, true
}

// ownerLoad is the owner's one load of nk, run by the owner flight under
// its own context. It first looks once more for the entry (a previous
// load may have stored it after the caller's miss, or a previous owner
// may still hold it), then runs the Loader here if this node hosts the
// group, or has a member that hosts it run it.
func (n *Node) ownerLoad(group, key, nk string, wait time.Duration) (ownerResult, error) {
	if v := n.view.Load(); n.inHandoff(v) && !n.ownedBefore(v, nk) && !n.holds(nk) {
		n.refetch(n.ctx, v, nk, false) // each call bounded by ReplicaTimeout
	}
	if e, ok := n.readEntry(nk); ok && !e.Stale(time.Now().UnixNano()) {
		return ownerResult{e: e}, nil
	}
	if n.group(group) != nil {
		// The host flight bounds the load by the group's LoadTimeout; a
		// deadline of our own, started earlier, would give up on it first.
		e, _, err := n.loadAsHost(n.ctx, group, key, nk)
		return ownerResult{e: e, loaded: true}, err
	}
	ctx, cancel := context.WithTimeout(n.ctx, wait)
	defer cancel()
	e, err := n.loadOnHost(ctx, group, key, wait)
	return ownerResult{e: e, loaded: true}, err
}

// loadOnHost has a member that hosts group run the load: the first one
// clockwise from nk on the ring, so that owners that disagree about the
// ring still pick the same host and its single flight holds. A host that
// cannot be reached is replaced by the next.
func (n *Node) loadOnHost(ctx context.Context, group, key string, wait time.Duration) (loader.Entry, error) {
	v := n.view.Load()
	hosts := n.groupHosts(v, group, groupKey(group, key))
	if len(hosts) == 0 {
		return loader.Entry{}, fmt.Errorf("%w: %w: group %q", transport.ErrUnavailable, ErrNoLoader, group)
	}
	req := transport.Request{Op: transport.OpLoad, Flags: transport.FlagForwarded | transport.FlagLocalOnly,
		Key: key, Value: []byte(group), TTL: wait.Milliseconds()}
	var err error
	for i, h := range hosts {
		addr := v.addrs[h]
		if i < len(hosts)-1 && n.peers.down(addr) {
			continue
		}
		resp, cerr := n.client.Call(ctx, addr, &req)
		if cerr == nil {
			e, _, err := fromLoadResponse(resp)
			return e, err
		}
		// ctx is this node's own bound (ownerLoad's wait), not a
		// caller's: a host that used it up is marked.
		n.peers.failed(addr, cerr)
		err = fmt.Errorf("%w: node %s: %w", transport.ErrUnavailable, addr, cerr)
		if !errors.Is(cerr, transport.ErrUnreachable) || ctx.Err() != nil {
			break
		}
	}
	return loader.Entry{}, err
}

// groupHosts lists the other members that publish group, in ring order
// clockwise from nk.
func (n *Node) groupHosts(v *view, group, nk string) []string {
	hosting := map[string]bool{}
	for _, m := range v.members {
		if m.Name != n.cfg.Name && slices.Contains(m.Meta.Groups, group) {
			hosting[m.Name] = true
		}
	}
	if len(hosting) == 0 {
		return nil
	}
	var hosts []string
	for _, o := range v.ring.AppendOwners(nil, nk, v.ring.Len()) {
		if _, ok := v.addrs[o]; ok && hosting[o] {
			hosts = append(hosts, o)
		}
	}
	return hosts
}

// loadAsHost runs group's Loader for key on this node, once however many
// owners ask at once.
func (n *Node) loadAsHost(ctx context.Context, group, key, nk string) (loader.Entry, int, error) {
	g := n.group(group)
	if g == nil {
		return loader.Entry{}, 0, fmt.Errorf("%w: %w: node %s does not host group %q", transport.ErrUnavailable, ErrNoLoader, n.cfg.Name, group)
	}
	e, shared, err := n.readThrough().host.Do(ctx, nk, func() (loader.Entry, error) { return g.loadAndStore(key, nk) })
	err = flightError(err)
	if shared {
		return e, outcomeShared, err
	}
	return e, outcomeLoaded, err
}

// loadAndStore calls the Loader under the group's own timeout (not any
// caller's context) and caches the result through the ordinary routed
// write, so it reaches the key's current owner and replicas with a fresh
// version, whichever node ran the load.
func (g *Group) loadAndStore(key, nk string) (loader.Entry, error) {
	n := g.n
	ctx, cancel := context.WithTimeout(n.ctx, g.cfg.LoadTimeout)
	defer cancel()
	start := time.Now()
	val, ttl, err := g.callLoader(ctx, key)
	g.stats.observe(time.Since(start), err)
	switch {
	case errors.Is(err, ErrNotFound):
		e := loader.Entry{NotFound: true}
		if g.cfg.NegativeTTL > 0 {
			g.store(ctx, nk, e, g.cfg.NegativeTTL)
		}
		return e, nil
	case err != nil:
		return loader.Entry{}, fmt.Errorf("load %q in group %s: %w", key, g.cfg.Name, err)
	}
	if ttl <= 0 {
		ttl = g.cfg.TTL
	}
	e := loader.Entry{Value: val}
	if g.cfg.SoftTTL > 0 && (ttl <= 0 || g.cfg.SoftTTL < ttl) {
		e.SoftExpireAt = time.Now().Add(g.cfg.SoftTTL).UnixNano()
	}
	g.store(ctx, nk, e, ttl)
	return e, nil
}

// callLoader calls the Loader, turning a panic into an error so that a
// buggy loader fails its callers instead of the node.
func (g *Group) callLoader(ctx context.Context, key string) (val []byte, ttl time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("loader panicked: %v", r)
		}
	}()
	return g.cfg.Loader(ctx, key)
}

// store caches e under nk for ttl (0: no expiry). A failure is counted and
// logged, not returned: the callers still get the value they waited for.
func (g *Group) store(ctx context.Context, nk string, e loader.Entry, ttl time.Duration) {
	n := g.n
	ms := int64(0)
	if ttl > 0 {
		ms = min((int64(ttl)+int64(time.Millisecond)-1)/int64(time.Millisecond), maxTTLMillis)
	}
	req := &transport.Request{Op: transport.OpSet, Key: nk, Value: e.Append(make([]byte, 0, loader.HeaderSize+len(e.Value))), TTL: ms}
	resps := make([]*transport.Response, 1)
	n.Do(ctx, []*transport.Request{req}, resps)
	if err := resps[0].Error(); err != nil {
		g.stats.storeErrors.Add(1)
		n.log.Warn("caching a loaded value failed", "group", g.cfg.Name, "key", nk[len(groupKeyPrefix)+len(g.cfg.Name)+1:], "err", err)
	}
}
