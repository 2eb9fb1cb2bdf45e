package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// refreshAttemptTimeout bounds asking one node for the member list, so a
// node that accepts connections but does not answer cannot use a whole
// refresh's time.
const refreshAttemptTimeout = time.Second

// table is an immutable routing snapshot: the ring built from one node's
// member list and where to reach each member. Requests load it without
// locking; a refresh swaps in a new one.
type table struct {
	ring    *ring.Ring
	version uint64             // ring.Version(), cached
	basis   uint64             // the ring version the node that gave us the list reported
	members map[string]*member // by member name
	// byIndex holds the members in ring.Members() order, for
	// ring.AppendOwnerIndexes: routing a key then hashes only the key.
	byIndex []*member
	// fwd are the nodes to send what the client does not route itself:
	// the configured addresses first, then every other member.
	fwd []*member
}

// member is one node as a routing target. Its health outlives the table
// it was built for: a refresh carries it over while name and address stay.
type member struct {
	name string // "" for a configured address not (yet) matched to a member
	addr string
	// downUntil is when the node stops being tried last (unix nanoseconds).
	downUntil atomic.Int64
	// unreachedUntil is downUntil if the failure that marked the node
	// was that it could not be reached at all (transport.Unreached), zero
	// otherwise: only such a mark moves a write that must not be applied
	// twice past the node (see plan).
	unreachedUntil atomic.Int64
}

func (m *member) down(now int64) bool { return m.downUntil.Load() > now }

// unreached reports whether m is down because it could not be reached.
func (m *member) unreached(now int64) bool { return m.unreachedUntil.Load() > now }

// tableFor returns the routing table for a smart call, fetching the member
// list first if the client has none yet. It returns nil if the client is
// not smart or the list cannot be had: the call then goes through
// Config.Addrs as a plain client's would.
func (c *Client) tableFor(ctx context.Context) *table {
	if !c.cfg.Smart {
		return nil
	}
	if t := c.table.Load(); t != nil {
		return t
	}
	if last := c.lastInitFail.Load(); last != 0 && time.Since(time.Unix(0, last)) < c.cfg.MinRefreshInterval {
		return nil
	}
	select {
	case c.refreshSem <- struct{}{}:
	case <-ctx.Done():
		return nil
	case <-c.ctx.Done():
		return nil
	}
	defer func() { <-c.refreshSem }()
	if t := c.table.Load(); t != nil {
		return t // fetched while we waited
	}
	rctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.refresh(rctx, ""); err != nil {
		c.lastInitFail.Store(time.Now().UnixNano())
		c.log.Debug("no member list; sending through the configured nodes", "err", err)
		return nil
	}
	return c.table.Load()
}

// noteVersion schedules a refresh if a node at addr replied with a ring
// version that is neither the client's nor the one its list came with.
func (c *Client) noteVersion(rv uint64, addr string) {
	if rv == 0 {
		return
	}
	t := c.table.Load()
	if t == nil || rv == t.version || rv == t.basis {
		return
	}
	c.kick(addr)
}

// kick schedules one background refresh, preferring the node at hint,
// unless one is already scheduled or running. Refreshes are spaced by
// MinRefreshInterval.
func (c *Client) kick(hint string) {
	if !c.cfg.Smart || !c.refreshing.CompareAndSwap(false, true) {
		return
	}
	c.bgMu.Lock()
	if c.closed {
		c.bgMu.Unlock()
		c.refreshing.Store(false)
		return
	}
	c.bg.Add(1)
	c.bgMu.Unlock()
	go func() {
		defer c.bg.Done()
		defer c.refreshing.Store(false)
		if wait := c.cfg.MinRefreshInterval - time.Since(time.Unix(0, c.lastRefresh.Load())); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return
			}
		}
		c.refreshNow(hint)
	}()
}

// refreshLoop re-reads the member list every RefreshInterval once the
// client has a table, until Close.
func (c *Client) refreshLoop() {
	defer c.bg.Done()
	tick := time.NewTicker(c.cfg.RefreshInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
		if c.table.Load() == nil {
			continue // unused so far: stay off the network
		}
		if time.Since(time.Unix(0, c.lastRefresh.Load())) >= c.cfg.RefreshInterval/2 {
			c.refreshNow("")
		}
	}
}

// refreshNow runs one refresh in the background's context, waiting for any
// other refresh to finish first.
func (c *Client) refreshNow(hint string) {
	select {
	case c.refreshSem <- struct{}{}:
	case <-c.ctx.Done():
		return
	}
	defer func() { <-c.refreshSem }()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	defer cancel()
	if err := c.refresh(ctx, hint); err != nil && c.ctx.Err() == nil {
		c.log.Warn("member list refresh failed; keeping the previous ring", "err", err)
	}
}

// refresh asks one node after another for the member list and installs a
// table built from the first answer: hint first (it announced the change),
// then the known members, then Config.Addrs. The caller holds refreshSem.
func (c *Client) refresh(ctx context.Context, hint string) error {
	defer func() { c.lastRefresh.Store(time.Now().UnixNano()) }()
	old := c.table.Load()
	var sources []*member
	seen := map[string]bool{}
	add := func(m *member) {
		if m != nil && !seen[m.addr] {
			seen[m.addr] = true
			sources = append(sources, m)
		}
	}
	if hint != "" {
		add(&member{addr: hint})
	}
	if old != nil {
		now := time.Now().UnixNano()
		for _, m := range old.fwd[len(c.seeds):] { // healthy members first
			if !m.down(now) {
				add(m)
			}
		}
		for _, m := range old.fwd[len(c.seeds):] {
			add(m)
		}
	}
	for _, m := range c.seeds {
		add(m)
	}
	var errs []error
	for _, src := range sources {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		actx, cancel := context.WithTimeout(ctx, refreshAttemptTimeout)
		resp, err := c.tc.Call(actx, src.addr, &transport.Request{Op: transport.OpMembers})
		cancel()
		if err == nil {
			err = resp.Error()
		}
		if err == nil {
			var t *table
			if t, err = c.build(old, resp.Members, resp.RingVersion); err == nil {
				c.table.Store(t)
				if old == nil || old.version != t.version {
					c.log.Debug("ring refreshed", "from", src.addr, "members", t.ring.Len(),
						"version", t.version, "node_version", t.basis)
				}
				return nil
			}
		}
		if errors.Is(err, transport.ErrUnreachable) {
			c.markDown(src, transport.Unreached(err, 0, 1))
		}
		errs = append(errs, fmt.Errorf("%s: %w", src.addr, err))
	}
	return fmt.Errorf("%w: no node gave a member list: %w", ErrUnavailable, errors.Join(errs...))
}

// build makes a routing table from a member list, keeping the health of
// members that old already knew at the same address. Like a node, it
// leaves out members without a data address.
func (c *Client) build(old *table, ms []transport.Member, basis uint64) (*table, error) {
	names := make([]string, 0, len(ms))
	t := &table{basis: basis, members: make(map[string]*member, len(ms))}
	byAddr := make(map[string]*member, len(ms))
	for _, m := range ms {
		if m.DataAddr == "" || m.Name == "" {
			continue
		}
		nm := &member{name: m.Name, addr: m.DataAddr}
		if old != nil {
			if prev := old.members[m.Name]; prev != nil && prev.addr == m.DataAddr {
				nm = prev
			}
		}
		names = append(names, m.Name)
		t.members[m.Name] = nm
		byAddr[m.DataAddr] = nm
	}
	if len(names) == 0 {
		return nil, errors.New("the member list names no member with a data address")
	}
	r, err := ring.New(c.cfg.Ring, names)
	if err != nil {
		return nil, err
	}
	t.ring, t.version = r, r.Version()
	for _, name := range r.Members() {
		t.byIndex = append(t.byIndex, t.members[name])
	}
	// Configured addresses first, as themselves (a member's health is
	// shared when the address is a member's), then the other members.
	for _, s := range c.seeds {
		if m := byAddr[s.addr]; m != nil {
			t.fwd = append(t.fwd, m)
			delete(byAddr, s.addr)
		} else {
			t.fwd = append(t.fwd, s)
		}
	}
	for _, name := range r.Members() {
		if m := t.members[name]; byAddr[m.addr] == m {
			t.fwd = append(t.fwd, m)
		}
	}
	return t, nil
}

// markDown makes m a last resort for DownBackoff, after it failed a call;
// unreached says it could not be reached at all (transport.Unreached).
func (c *Client) markDown(m *member, unreached bool) {
	if c.cfg.DownBackoff > 0 {
		until := time.Now().Add(c.cfg.DownBackoff).UnixNano()
		m.downUntil.Store(until)
		if !unreached {
			until = 0 // it may only have been slow
		}
		m.unreachedUntil.Store(until)
	}
}
