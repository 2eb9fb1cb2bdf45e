// Package client is the Go client for a starling cluster.
//
// A Client learns the cluster from any node it is given (the member names
// and their data addresses), builds the same consistent-hash ring the nodes
// build, and sends each keyed request straight to the key's owner, marked
// as already routed, so the node serves it without a forwarding hop. Every
// reply carries the replying node's ring version; when it differs from the
// client's, the client fetches the member list again in the background.
// Reads that find the owner unreachable are retried on the key's next
// replica. GetMany, SetMany and Do split a batch by owner and send one
// pipelined round trip per owner, in parallel.
//
// With Config.Smart off the client behaves like a plain client: every
// request goes to the first configured node that answers, which routes it.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// Member is a cluster member as nodes report it: name, state, and the
// addresses of its data port, gossip and RESP listener.
type Member = transport.Member

// Stats are one node's counters (keys, bytes, requests served, forwarded,
// replicated...), as `starling stats` prints them.
type Stats = transport.Stats

// Errors callers branch on. Most are the transport's sentinels, re-exported
// so that users of this package need not import transport.
var (
	// ErrNotFound reports a key that does not exist or has expired.
	ErrNotFound = transport.ErrNotFound
	// ErrUnavailable reports that no node (or not the key's owner) could be reached.
	ErrUnavailable = transport.ErrUnavailable
	// ErrTooLarge reports a key or value over the cluster's limits.
	ErrTooLarge = transport.ErrTooLarge
	// ErrClosed reports a call on a closed Client.
	ErrClosed = transport.ErrClosed
	// ErrNotInteger reports Incr on a value that is not a 64-bit integer.
	ErrNotInteger = transport.ErrNotInteger
	// ErrOverflow reports an Incr whose result would not fit in 64 bits.
	ErrOverflow = transport.ErrOverflow
	// ErrNotFloat reports IncrByFloat on a value that is not a number.
	ErrNotFloat = transport.ErrNotFloat
	// ErrNotFinite reports an IncrByFloat whose result would be infinite.
	ErrNotFinite = transport.ErrNotFinite
	// ErrInvalidConfig reports a Config that cannot work.
	ErrInvalidConfig = errors.New("client: invalid config")
	// ErrInvalidArgument reports a call whose arguments cannot work, such
	// as a negative TTL or a response slice shorter than its requests.
	ErrInvalidArgument = errors.New("client: invalid argument")
)

// MaxReplicas is the largest Config.Replicas accepted, the same bound the
// nodes enforce.
const MaxReplicas = 7

// Config configures a Client.
type Config struct {
	// Addrs are data addresses of cluster nodes: the client asks them for
	// the member list, and sends them what it cannot route itself (or, with
	// Smart off, everything), trying them in order.
	Addrs []string

	// Timeout bounds each call whose context has no deadline of its own,
	// retries included. It replaces Transport.CallTimeout.
	Timeout time.Duration

	// Smart makes the client route keyed requests to their owners itself,
	// by its own copy of the ring. Off, every request goes to the first
	// reachable node in Addrs, which forwards it to the owner: one more
	// hop, but nothing to learn about the cluster.
	Smart bool

	// Replicas is the cluster's replication factor (the nodes'
	// --replicas): how many owners a read may be retried on. It must match
	// the cluster's, or failover reads may go to a node that does not hold
	// the key (which then forwards them once more). In [1, MaxReplicas].
	Replicas int

	// Ring must equal the nodes' ring configuration, so that the client's
	// ring places keys exactly where theirs does. A mismatch costs a hop
	// per request (nodes reroute what they do not own), never a wrong
	// answer.
	Ring ring.Config

	// RefreshInterval is how often a smart client re-reads the member list
	// even when no reply suggested a change. 0 disables it: refreshes then
	// happen only when a reply carries a different ring version or a node
	// cannot be reached.
	RefreshInterval time.Duration

	// MinRefreshInterval spaces member-list refreshes: while nodes
	// disagree on the ring (a join in progress), replies keep announcing
	// other versions, and one refresh per interval is enough.
	MinRefreshInterval time.Duration

	// AttemptTimeout, if positive, bounds one read, or one write that is
	// safe to repeat (a plain SET, DELETE, EXPIRE), at one replica when
	// another replica remains to try, so a node that accepts connections
	// but does not answer (stopped, overloaded) costs this long rather
	// than the whole deadline. A write that timed out is not applied late:
	// it carries its attempt's deadline, and a node that reads it after
	// that refuses it. 0 lets an attempt use all the time left. A refused
	// or broken connection fails over at once either way.
	AttemptTimeout time.Duration

	// DownBackoff is how long a node that could not be reached is tried
	// last (after the key's other owners) instead of first.
	DownBackoff time.Duration

	// Transport tunes connections, frame limits and pooling.
	Transport transport.Config

	// Logger receives ring refreshes and routing trouble. Nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns a smart client's Config for a node on the default
// local address and a cluster with the nodes' default ring and replication.
func DefaultConfig() Config {
	return Config{
		Addrs:              []string{"127.0.0.1:7001"},
		Timeout:            5 * time.Second,
		Smart:              true,
		Replicas:           2,
		Ring:               ring.DefaultConfig(),
		RefreshInterval:    10 * time.Second,
		MinRefreshInterval: 250 * time.Millisecond,
		AttemptTimeout:     500 * time.Millisecond,
		DownBackoff:        time.Second,
		Transport:          transport.DefaultConfig(),
	}
}

// Validate reports a Config that cannot work.
func (c *Config) Validate() error {
	switch {
	case len(c.Addrs) == 0:
		return fmt.Errorf("%w: at least one node address is required", ErrInvalidConfig)
	case c.Timeout <= 0:
		return fmt.Errorf("%w: timeout must be positive", ErrInvalidConfig)
	case c.Replicas < 1 || c.Replicas > MaxReplicas:
		return fmt.Errorf("%w: replicas %d must be in [1, %d]", ErrInvalidConfig, c.Replicas, MaxReplicas)
	case c.RefreshInterval < 0 || c.MinRefreshInterval < 0 || c.AttemptTimeout < 0 || c.DownBackoff < 0:
		return fmt.Errorf("%w: intervals and timeouts must not be negative", ErrInvalidConfig)
	}
	for _, a := range c.Addrs {
		if a == "" {
			return fmt.Errorf("%w: empty node address", ErrInvalidConfig)
		}
	}
	if c.Smart {
		if err := c.Ring.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return c.Transport.Validate()
}

// Client sends requests to a cluster. It is safe for concurrent use.
type Client struct {
	cfg   Config
	log   *slog.Logger
	tc    *transport.Client
	seeds []*member // Config.Addrs, as routing targets

	// table is the current routing table; nil until the first refresh.
	table atomic.Pointer[table]
	// refreshSem admits one member-list refresh at a time.
	refreshSem chan struct{}
	// refreshing is set while a background refresh is scheduled or runs.
	refreshing atomic.Bool
	// lastRefresh is when the last refresh ended (unix nanoseconds).
	lastRefresh atomic.Int64
	// lastInitFail is when a first, synchronous refresh last failed, so
	// that a cluster that is down does not cost every call a refresh.
	lastInitFail atomic.Int64

	ctx    context.Context // cancelled by Close; parents background work
	cancel context.CancelFunc

	bgMu   sync.Mutex
	bg     sync.WaitGroup // background refreshes and the refresh loop
	closed bool

	// doStates holds Do's working storage (*doState) between calls.
	doStates sync.Pool
}

// New returns a Client; it connects lazily on the first request.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tcfg := cfg.Transport
	tcfg.CallTimeout = cfg.Timeout
	if tcfg.Logger == nil {
		tcfg.Logger = log
	}
	tc, err := transport.NewClient(tcfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:        cfg,
		log:        log.With("component", "client"),
		tc:         tc,
		refreshSem: make(chan struct{}, 1),
		ctx:        ctx,
		cancel:     cancel,
	}
	for _, a := range cfg.Addrs {
		c.seeds = append(c.seeds, &member{addr: a})
	}
	if cfg.Smart && cfg.RefreshInterval > 0 {
		c.bg.Add(1)
		go c.refreshLoop()
	}
	return c, nil
}

// Close stops background refreshes and releases the client's connections.
// Calls in flight fail with ErrClosed. It is safe to call more than once.
func (c *Client) Close() error {
	c.bgMu.Lock()
	c.closed = true
	c.bgMu.Unlock()
	c.cancel()
	c.bg.Wait()
	return c.tc.Close()
}

// Ring returns the ring a smart client routes by, or nil before it has
// learned the cluster (or if it is not smart). Its Version equals the
// nodes' ring version when the client is up to date.
func (c *Client) Ring() *ring.Ring {
	if t := c.table.Load(); t != nil {
		return t.ring
	}
	return nil
}

// Owns returns a function reporting whether the member serving the data
// address addr is a key's owner (its primary) on the ring of the members
// the cluster lists now: through that node, the keys it serves without
// forwarding. A benchmark through one node uses it to time those and the
// forwarded ones apart. The ring does not follow later membership changes.
func (c *Client) Owns(ctx context.Context, addr string) (func(key string) bool, error) {
	ms, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	t, err := c.build(nil, ms, 0)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	for name, m := range t.members {
		if m.addr == addr {
			r := t.ring
			return func(key string) bool { return r.Owner(key) == name }, nil
		}
	}
	return nil, fmt.Errorf("client: no member serves data at %s", addr)
}

// Get returns the value stored under key, or an error wrapping ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	req := transport.Request{Op: transport.OpGet, Key: key}
	resp, err := c.call(ctx, &req)
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	return resp.Value, nil
}

// Set stores value under key. A ttl of 0 keeps it until it is deleted or
// evicted.
func (c *Client) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ms, err := ttlMillis(ttl)
	if err != nil {
		return err
	}
	req := transport.Request{Op: transport.OpSet, Key: key, Value: value, TTL: ms}
	resp, err := c.call(ctx, &req)
	if err != nil {
		return err
	}
	return resp.Error()
}

// Incr adds delta (negative to subtract) to the integer stored under key,
// an absent key counting as 0, and returns the result. A value that is not
// a 64-bit integer gets an error wrapping ErrNotInteger, and one the sum
// would overflow, ErrOverflow; neither changes the value. The key's TTL
// is kept.
//
// An increment is never applied twice by a retry: it goes to another
// replica only if it could not reach its owner at all. If the owner timed
// out or its connection broke with the increment in flight, the error
// wraps ErrUnavailable and the increment may or may not have been applied,
// as with any store after a timeout.
func (c *Client) Incr(ctx context.Context, key string, delta int64) (int64, error) {
	req := transport.Request{Op: transport.OpIncr, Key: key, Delta: delta}
	resp, err := c.call(ctx, &req)
	if err != nil {
		return 0, err
	}
	if err := resp.Error(); err != nil {
		return 0, err
	}
	return resp.Int, nil
}

// IncrByFloat adds delta to the number stored under key, an absent key
// counting as 0, as Redis's INCRBYFLOAT does (the sum is computed, and
// stored as text, at a C long double's precision, so 0.1 + 0.2 is stored
// as "0.3"), and returns the result. A value that is not a number gets an
// error wrapping ErrNotFloat, and a sum that would be infinite,
// ErrNotFinite; neither changes the value. The key's TTL is kept. Like
// Incr's, an increment is never applied twice by a retry. A stored sum
// beyond float64's range (a long double reaches 1.19e4932) comes back as
// ±Inf, or 0 if too small, with no error; Get returns its exact text.
func (c *Client) IncrByFloat(ctx context.Context, key string, delta float64) (float64, error) {
	if math.IsNaN(delta) || math.IsInf(delta, 0) {
		return 0, fmt.Errorf("%w: increment %v", ErrInvalidArgument, delta)
	}
	req := transport.Request{Op: transport.OpIncrFloat, Key: key, Value: strconv.AppendFloat(nil, delta, 'g', -1, 64)}
	resp, err := c.call(ctx, &req)
	if err != nil {
		return 0, err
	}
	if err := resp.Error(); err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(string(resp.Value), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("client: node answered %q for IncrByFloat: %w", resp.Value, err)
	}
	return v, nil
}

// ttlMillis converts a TTL to the wire's milliseconds, rounding a positive
// TTL below 1 ms up so that it still expires rather than living forever.
func ttlMillis(ttl time.Duration) (int64, error) {
	switch {
	case ttl < 0:
		return 0, fmt.Errorf("%w: negative ttl %v", ErrInvalidArgument, ttl)
	case ttl == 0:
		return 0, nil
	}
	return max(1, ttl.Milliseconds()), nil
}

// Delete removes key. It returns an error wrapping ErrNotFound if the key
// did not exist. If the connection to the key's owner breaks with the
// delete in flight, it is resent to a replica, and may then report
// ErrNotFound although this call is what removed the key.
func (c *Client) Delete(ctx context.Context, key string) error {
	req := transport.Request{Op: transport.OpDelete, Key: key}
	resp, err := c.call(ctx, &req)
	if err != nil {
		return err
	}
	return resp.Error()
}

// Members returns the cluster members as the contacted node (the first
// reachable one of Config.Addrs) sees them.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.call(ctx, &transport.Request{Op: transport.OpMembers})
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// Scan runs one step of a walk over every key in the cluster, as a node's
// SCAN does: from cursor (0 starts a walk) it returns some of the keys
// that match the Redis glob match ("*" for every key), about count looked
// at, and the cursor to go on from, 0 once the walk is done. Cursors are
// the nodes' own, so a walk may go on through the Redis protocol or
// another client. Each step asks the contacted node for the members and
// then the member whose turn it is, directly; a member that cannot be
// reached fails the step, which may be tried again with the same cursor.
// A key stored for the whole walk is listed at least once (it may be
// listed twice) while the members stay the same.
func (c *Client) Scan(ctx context.Context, cursor uint64, match string, count int) (keys []string, next uint64, err error) {
	view, err := c.RingView(ctx)
	if err != nil {
		return nil, cursor, err
	}
	names := view.Ring.Members() // the nodes' order: sorted
	if len(names) > transport.MaxScanMembers {
		return nil, cursor, fmt.Errorf("%w: a walk covers at most %d members, the ring has %d", ErrUnavailable, transport.MaxScanMembers, len(names))
	}
	i, own := transport.SplitScanCursor(cursor)
	if i >= uint64(len(names)) {
		return nil, 0, nil // the ring shrank under a finished member: done
	}
	addr := ""
	for _, m := range view.Members {
		if m.Name == names[i] {
			addr = m.DataAddr
		}
	}
	req := &transport.Request{Op: transport.OpScan, Key: match, Delta: int64(min(max(count, 1), 1<<15) * 2), Version: own}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	resp, err := c.tc.Call(ctx, addr, req)
	if err != nil {
		return nil, cursor, fmt.Errorf("%w: %s: %w", ErrUnavailable, addr, err)
	}
	if err := resp.Error(); err != nil {
		return nil, cursor, err
	}
	return resp.Keys, transport.NextScanCursor(i, len(names), resp.Version), nil
}

// ScanAll walks every key of the cluster that matches match with Scan,
// calling fn for each, until the walk is done, fn returns an error (which
// ScanAll returns), or a step fails. As with Scan, fn may see a key twice.
func (c *Client) ScanAll(ctx context.Context, match string, count int, fn func(key string) error) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, match, count)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := fn(k); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// Ping checks that a node answers.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.call(ctx, &transport.Request{Op: transport.OpPing})
	if err != nil {
		return err
	}
	return resp.Error()
}

// GetMany reads keys with one pipelined round trip per owner, owners in
// parallel. The map holds the keys that exist; absent or expired keys are
// left out. If some keys could not be read, the error says how many and
// wraps the first failure (usually ErrUnavailable); the map still holds
// what was read.
func (c *Client) GetMany(ctx context.Context, keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	reqs := make([]transport.Request, len(keys))
	ptrs := make([]*transport.Request, len(keys))
	for i, k := range keys {
		reqs[i] = transport.Request{Op: transport.OpGet, Key: k}
		ptrs[i] = &reqs[i]
	}
	resps := make([]*transport.Response, len(keys))
	_ = c.Do(ctx, ptrs, resps) // per-request outcomes are in resps
	var failed int
	var first error
	for i, r := range resps {
		switch err := r.Error(); {
		case err == nil:
			out[keys[i]] = r.Value
		case errors.Is(err, ErrNotFound):
		default:
			failed++
			if first == nil {
				first = fmt.Errorf("get %q: %w", keys[i], err)
			}
		}
	}
	if failed > 0 {
		return out, fmt.Errorf("client: %d of %d keys not read: %w", failed, len(keys), first)
	}
	return out, nil
}

// SetMany stores every item with the same ttl (0: no expiry), with one
// pipelined round trip per owner, owners in parallel. If some keys could
// not be stored, the error says how many and wraps the first failure; the
// others are stored.
func (c *Client) SetMany(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	ms, err := ttlMillis(ttl)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	reqs := make([]transport.Request, 0, len(items))
	for k, v := range items {
		reqs = append(reqs, transport.Request{Op: transport.OpSet, Key: k, Value: v, TTL: ms})
	}
	ptrs := make([]*transport.Request, len(reqs))
	for i := range reqs {
		ptrs[i] = &reqs[i]
	}
	resps := make([]*transport.Response, len(reqs))
	_ = c.Do(ctx, ptrs, resps)
	var failed int
	var first error
	for i, r := range resps {
		if err := r.Error(); err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("set %q: %w", reqs[i].Key, err)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("client: %d of %d keys not stored: %w", failed, len(reqs), first)
	}
	return nil
}

// NodeStats is one node's counters, or why they could not be read.
type NodeStats struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Stats Stats  `json:"stats"`
	Err   string `json:"error,omitempty"`
}

// Stats asks every member the contacted node knows of for its counters,
// in parallel. A node that does not answer is listed with Err set.
func (c *Client) Stats(ctx context.Context) ([]NodeStats, error) {
	members, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	out := make([]NodeStats, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i] = NodeStats{Name: m.Name, Addr: m.DataAddr}
		wg.Go(func() {
			resp, err := c.tc.Call(ctx, m.DataAddr, &transport.Request{Op: transport.OpStats})
			switch {
			case err != nil:
				out[i].Err = err.Error()
			case resp.Error() != nil:
				out[i].Err = resp.Error().Error()
			case resp.Stats != nil:
				out[i].Stats = *resp.Stats
			}
		})
	}
	wg.Wait()
	return out, nil
}

// Leave asks the node at addr to hand its keys to their next owners,
// leave the cluster and stop, as SIGTERM would.
func (c *Client) Leave(ctx context.Context, addr string) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	resp, err := c.tc.Call(ctx, addr, &transport.Request{Op: transport.OpLeave})
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, addr, err)
	}
	return resp.Error()
}

// bound gives ctx the client's Timeout if it has no deadline.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}
