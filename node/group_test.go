package node_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// rowsDB is a real SQLite table that groups load through. It counts the
// queries that reach it, per key, and lets a test hold or fail a load.
type rowsDB struct {
	db *sql.DB

	mu      sync.Mutex
	queries map[string]int

	// hook, if set, runs before each query with the loading node's index;
	// an error it returns is the load's.
	hook atomic.Pointer[func(ctx context.Context, node int, key string) error]
}

func openRows(t testing.TB) *rowsDB {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "rows.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE items (id TEXT PRIMARY KEY, value TEXT NOT NULL, ttl_ms INTEGER NOT NULL DEFAULT 0)`); err != nil {
		t.Fatal(err)
	}
	return &rowsDB{db: db, queries: map[string]int{}}
}

// put inserts or replaces a row; ttl 0 leaves the TTL to the group.
func (r *rowsDB) put(t testing.TB, id, value string, ttl time.Duration) {
	t.Helper()
	if _, err := r.db.Exec(`INSERT INTO items (id, value, ttl_ms) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET value = excluded.value, ttl_ms = excluded.ttl_ms`, id, value, ttl.Milliseconds()); err != nil {
		t.Fatal(err)
	}
}

func (r *rowsDB) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queries[key]
}

func (r *rowsDB) setHook(h func(ctx context.Context, node int, key string) error) {
	if h == nil {
		r.hook.Store(nil)
		return
	}
	r.hook.Store(&h)
}

// loader returns the Loader node i runs.
func (r *rowsDB) loader(i int) node.Loader {
	return func(ctx context.Context, key string) ([]byte, time.Duration, error) {
		r.mu.Lock()
		r.queries[key]++
		r.mu.Unlock()
		if h := r.hook.Load(); h != nil {
			if err := (*h)(ctx, i, key); err != nil {
				return nil, 0, err
			}
		}
		var (
			value string
			ttlMS int64
		)
		err := r.db.QueryRowContext(ctx, `SELECT value, ttl_ms FROM items WHERE id = $1`, key).Scan(&value, &ttlMS)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, 0, node.ErrNotFound
		}
		if err != nil {
			return nil, 0, err
		}
		return []byte(value), time.Duration(ttlMS) * time.Millisecond, nil
	}
}

// startGroupCluster starts n nodes; group(i), if not nil, is registered
// on node i (0-based) before it starts, so its first gossip metadata
// already names it.
func startGroupCluster(t testing.TB, n int, group func(i int) *node.GroupConfig) ([]*node.Node, []*node.Group) {
	t.Helper()
	nodes, gs := startGroupsCluster(t, n, func(i int) []node.GroupConfig {
		if c := group(i); c != nil {
			return []node.GroupConfig{*c}
		}
		return nil
	})
	out := make([]*node.Group, n)
	for i := range gs {
		if len(gs[i]) > 0 {
			out[i] = gs[i][0]
		}
	}
	return nodes, out
}

// startGroupsCluster is startGroupCluster with any number of groups per
// node: groups[i][j] is node i's group made from groups(i)[j].
func startGroupsCluster(t testing.TB, n int, groups func(i int) []node.GroupConfig) ([]*node.Node, [][]*node.Group) {
	t.Helper()
	nodes := make([]*node.Node, n)
	out := make([][]*node.Group, n)
	for i := range n {
		cfg := nodetest.Config(t, fmt.Sprintf("node%d", i+1))
		if i > 0 {
			cfg.Gossip.Seeds = []string{nodes[0].GossipAddr()}
		}
		// No test here waits for failure detection (a crash is noticed by
		// its broken connections), so probe slowly: a starved machine must
		// not make gossip declare a healthy member dead and move keys.
		cfg.Gossip.ProbeInterval, cfg.Gossip.ProbeTimeout, cfg.Gossip.SuspicionMult = time.Second, 500*time.Millisecond, 8
		nd, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, gc := range groups(i) {
			g, err := nd.NewGroup(gc)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = append(out[i], g)
		}
		nodes[i] = nodetest.StartNode(t, nd)
	}
	nodetest.WaitConverged(t, nodes, n)
	return nodes, out
}

// everyNode hosts the same group on every node.
func everyNode(rows *rowsDB, cfg node.GroupConfig) func(int) *node.GroupConfig {
	return func(i int) *node.GroupConfig {
		c := cfg
		c.Loader = rows.loader(i)
		return &c
	}
}

// column returns every node's j-th group.
func column(gs [][]*node.Group, j int) []*node.Group {
	out := make([]*node.Group, len(gs))
	for i := range gs {
		out[i] = gs[i][j]
	}
	return out
}

// keyOwnedBy returns a key of group whose entry the named member owns.
func keyOwnedBy(t *testing.T, nd *node.Node, group, member, prefix string) string {
	t.Helper()
	for i := range 100000 {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if nd.Ring().Owner(node.GroupKey(group, k)) == member {
			return k
		}
	}
	t.Fatalf("no key of %s owned by %s", group, member)
	return ""
}

// getAll runs count concurrent Gets of key spread over groups and returns
// their values and errors, in call order.
func getAll(ctx context.Context, groups []*node.Group, key string, count int) ([]string, []error) {
	vals := make([]string, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() {
			v, err := groups[i%len(groups)].Get(ctx, key)
			vals[i], errs[i] = string(v), err
		})
	}
	wg.Wait()
	return vals, errs
}

func sumStats(groups []*node.Group) node.GroupStats {
	var s node.GroupStats
	for _, g := range groups {
		if g == nil {
			continue
		}
		st := g.Stats()
		s.Gets += st.Gets
		s.Hits += st.Hits
		s.StaleHits += st.StaleHits
		s.Misses += st.Misses
		s.Coalesced += st.Coalesced
		s.NotFound += st.NotFound
		s.Errors += st.Errors
		s.Loads += st.Loads
		s.LoadErrors += st.LoadErrors
		s.LoadNotFound += st.LoadNotFound
	}
	return s
}

// rings returns each node's current ring. Single flight holds per owner:
// while the ring changes, a key can briefly have two owners that each load
// it, or a new owner without the entry that must load it. A starved test
// machine can make gossip suspect a healthy member, so the tests check
// exact query counts when no node rebuilt its ring (a rebuild swaps the
// pointer, even back to the same members), and a bound when one did.
func rings(nodes []*node.Node) []*ring.Ring {
	out := make([]*ring.Ring, len(nodes))
	for i, nd := range nodes {
		out[i] = nd.Ring()
	}
	return out
}

// checkQueries fails t unless got is want, or, if a ring was rebuilt
// since before, at most want plus one load per extra owner.
func checkQueries(t *testing.T, nodes []*node.Node, before []*ring.Ring, got, want int, what string) {
	t.Helper()
	if slices.Equal(before, rings(nodes)) {
		if got != want {
			t.Fatalf("%s: %d queries, want %d", what, got, want)
		}
		return
	}
	t.Logf("%s: a ring was rebuilt during the test; %d queries (%d without it)", what, got, want)
	if got < want || got > want+2 {
		t.Fatalf("%s: %d queries, want %d (at most %d across a ring change)", what, got, want, want+2)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGroupColdKeyLoadsOnceClusterWideAndAgainAfterTTL(t *testing.T) {
	rows := openRows(t)
	cfg := node.GroupConfig{Name: "items", TTL: time.Hour, LoadTimeout: time.Minute}
	nodes, groups := startGroupCluster(t, 3, everyNode(rows, cfg))
	ctx := testCtx(t)

	rows.put(t, "cold", "v-cold", 0)
	before := rings(nodes)
	vals, errs := getAll(ctx, groups, "cold", 1000)
	for i := range vals {
		if errs[i] != nil || vals[i] != "v-cold" {
			t.Fatalf("get %d = %q, %v; want v-cold", i, vals[i], errs[i])
		}
	}
	checkQueries(t, nodes, before, rows.count("cold"), 1, "1000 concurrent gets of a cold key")
	s := sumStats(groups)
	if s.Gets != 1000 || s.Hits+s.Misses != 1000 || s.Loads != int64(rows.count("cold")) || s.Misses < 1 || s.Coalesced != s.Misses-s.Loads {
		t.Errorf("stats %+v: want 1000 gets = hits + misses, 1 load, misses-1 coalesced", s)
	}
	t.Logf("1000 gets: %d hits, %d misses of which %d coalesced", s.Hits, s.Misses, s.Coalesced)
	// The entry is stored like any key: on its owner and its replica.
	nk := node.GroupKey("items", "cold")
	for _, o := range nodes[0].Ring().Owners(nk, 2) {
		for _, nd := range nodes {
			if nd.Name() != o {
				continue
			}
			if _, _, ok := nd.Store().Get(nk); !ok {
				t.Errorf("owner %s does not hold the loaded entry", o)
			}
		}
	}

	// A row whose TTL is short: after it expires, one more query and only one.
	rows.put(t, "short", "v1", 300*time.Millisecond)
	if v, err := groups[1].Get(ctx, "short"); err != nil || string(v) != "v1" {
		t.Fatalf("get short = %q, %v", v, err)
	}
	rows.put(t, "short", "v2", time.Hour) // the reload must outlive the burst below
	nk = node.GroupKey("items", "short")
	nodetest.WaitFor(t, 20*time.Second, func() bool {
		for _, nd := range nodes {
			if _, _, ok := nd.Store().Get(nk); ok {
				return false
			}
		}
		return true
	}, "the short entry to expire everywhere")
	before = rings(nodes)
	vals, errs = getAll(ctx, groups, "short", 1000)
	for i := range vals {
		if errs[i] != nil || vals[i] != "v2" {
			t.Fatalf("get %d after expiry = %q, %v; want v2", i, vals[i], errs[i])
		}
	}
	checkQueries(t, nodes, before, rows.count("short"), 2, "1000 gets after the TTL")
}

func TestGroupStaleWhileRevalidateNoCallerWaits(t *testing.T) {
	rows := openRows(t)
	cfg := node.GroupConfig{Name: "items", TTL: time.Hour, SoftTTL: 200 * time.Millisecond, LoadTimeout: time.Minute}
	nodes, groups := startGroupCluster(t, 3, everyNode(rows, cfg))
	ctx := testCtx(t)

	rows.put(t, "k", "v1", 0)
	before := rings(nodes)
	if v, err := groups[0].Get(ctx, "k"); err != nil || string(v) != "v1" {
		t.Fatalf("first get = %q, %v", v, err)
	}
	rows.put(t, "k", "v2", 0)
	// From now on a load blocks until released: a caller that waited for
	// the refresh would not return.
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	rows.setHook(func(ctx context.Context, i int, _ string) error {
		t.Logf("refresh runs on node%d", i+1)
		once.Do(func() { close(entered) })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	// A get that waited for the held refresh would end at this deadline.
	bounded, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	failed := func(format string, args ...any) {
		t.Helper()
		if !slices.Equal(before, rings(nodes)) {
			t.Skipf("a ring was rebuilt mid-test (starved machine), so a new owner without the entry had to load: "+format, args...)
		}
		t.Fatalf(format, args...)
	}
	nodetest.WaitFor(t, 20*time.Second, func() bool {
		v, err := groups[2].Get(bounded, "k")
		if err != nil || string(v) != "v1" {
			failed("get while fresh or stale = %q, %v; want v1 at once", v, err)
		}
		return sumStats(groups).StaleHits > 0
	}, "the entry to go stale")
	<-entered // the one refresh is running, and held

	vals, errs := getAll(bounded, groups, "k", 1000)
	for i := range vals {
		if errs[i] != nil || vals[i] != "v1" {
			failed("get %d during the refresh = %q, %v; want the stale v1", i, vals[i], errs[i])
		}
	}
	checkQueries(t, nodes, before, rows.count("k"), 2, "stale gets with one refresh running")
	close(release)
	nodetest.WaitFor(t, 20*time.Second, func() bool {
		v, err := groups[1].Get(ctx, "k")
		return err == nil && string(v) == "v2"
	}, "the refreshed value")
	checkQueries(t, nodes, before, rows.count("k"), 2, "after the refresh")
}

func TestGroupNegativeCaching(t *testing.T) {
	rows := openRows(t)
	// neg caches "not found" for longer than the test; brief for a short
	// while; none not at all.
	neg := node.GroupConfig{Name: "neg", TTL: time.Hour, NegativeTTL: time.Hour}
	brief := node.GroupConfig{Name: "brief", TTL: time.Hour, NegativeTTL: 300 * time.Millisecond}
	none := node.GroupConfig{Name: "none", TTL: time.Hour}
	nodes, gs := startGroupsCluster(t, 3, func(i int) []node.GroupConfig {
		out := []node.GroupConfig{neg, brief, none}
		for j := range out {
			out[j].Loader = rows.loader(i)
		}
		return out
	})
	negs, briefs, nones := column(gs, 0), column(gs, 1), column(gs, 2)
	ctx := testCtx(t)

	before := rings(nodes)
	if _, err := negs[0].Get(ctx, "missing"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("get of a missing row = %v, want ErrNotFound", err)
	}
	_, errs := getAll(ctx, negs, "missing", 100)
	for i, err := range errs {
		if !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("get %d of a missing row = %v, want ErrNotFound", i, err)
		}
	}
	checkQueries(t, nodes, before, rows.count("missing"), 1, "gets of a cached not-found")
	if s := sumStats(negs); s.NotFound != 101 || s.LoadNotFound != int64(rows.count("missing")) {
		t.Errorf("stats %+v: want 101 NotFound, 1 LoadNotFound", s)
	}

	// Past the negative TTL the row is looked up again.
	if _, err := briefs[0].Get(ctx, "late"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("get of a missing row = %v, want ErrNotFound", err)
	}
	rows.put(t, "late", "found", 0)
	nk := node.GroupKey("brief", "late")
	nodetest.WaitFor(t, 20*time.Second, func() bool {
		for _, nd := range nodes {
			if _, _, ok := nd.Store().Get(nk); ok {
				return false
			}
		}
		return true
	}, "the negative entry to expire")
	if v, err := briefs[1].Get(ctx, "late"); err != nil || string(v) != "found" {
		t.Fatalf("get after the negative TTL = %q, %v; want found", v, err)
	}
	if n := rows.count("late"); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}

	// Without a NegativeTTL nothing is cached: every get asks again.
	for i := range 3 {
		if _, err := nones[i].Get(ctx, "absent"); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("get = %v, want ErrNotFound", err)
		}
	}
	if n := rows.count("absent"); n != 3 {
		t.Errorf("%d queries for an uncached not-found, want 3", n)
	}
}

func TestGroupLoaderErrorReachesEveryWaiterAndIsNotCached(t *testing.T) {
	rows := openRows(t)
	cfg := node.GroupConfig{Name: "items", TTL: time.Hour, NegativeTTL: time.Hour, LoadTimeout: time.Minute}
	nodes, groups := startGroupCluster(t, 3, everyNode(rows, cfg))
	ctx := testCtx(t)
	rows.put(t, "k", "v", 0)
	owner := ownerIndex(t, nodes, "items", "k")

	release := make(chan struct{})
	boom := errors.New("database is on fire")
	rows.setHook(func(ctx context.Context, _ int, _ string) error {
		<-release
		return boom
	})
	const callers = 200
	var (
		wg   sync.WaitGroup
		errs = make([]error, callers)
	)
	for i := range callers {
		wg.Go(func() { _, errs[i] = groups[i%3].Get(ctx, "k") })
	}
	nodetest.WaitFor(t, 30*time.Second, func() bool {
		return node.LoadWaiters(nodes[owner], "items", "k") == callers-1
	}, "every get to join the load")
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err == nil || errors.Is(err, node.ErrNotFound) {
			t.Fatalf("get %d = %v, want the loader's error", i, err)
		}
	}
	if n := rows.count("k"); n != 1 {
		t.Fatalf("%d queries for %d coalesced gets, want 1", n, callers)
	}
	t.Logf("a waiter on another node sees: %v", errs[(owner+1)%3])

	rows.setHook(nil)
	if v, err := groups[0].Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("get after the failure = %q, %v; want v (errors are not cached)", v, err)
	}
	if s := sumStats(groups); s.LoadErrors != 1 || s.Errors != callers {
		t.Errorf("stats %+v: want 1 load error, %d get errors", s, callers)
	}
}

// ownerIndex returns the index of the node owning group's entry for key.
func ownerIndex(t *testing.T, nodes []*node.Node, group, key string) int {
	t.Helper()
	o := nodes[0].Ring().Owner(node.GroupKey(group, key))
	for i, nd := range nodes {
		if nd.Name() == o {
			return i
		}
	}
	t.Fatalf("owner %s of %s/%s is not a node", o, group, key)
	return -1
}

func TestGroupWaiterLeavesLoadGoesOn(t *testing.T) {
	rows := openRows(t)
	cfg := node.GroupConfig{Name: "items", TTL: time.Hour, LoadTimeout: time.Minute}
	nodes, groups := startGroupCluster(t, 3, everyNode(rows, cfg))
	ctx := testCtx(t)
	rows.put(t, "k", "v", 0)
	owner := ownerIndex(t, nodes, "items", "k")
	release := make(chan struct{})
	rows.setHook(func(context.Context, int, string) error { <-release; return nil })

	impatient, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() {
		_, err := groups[(owner+1)%3].Get(impatient, "k")
		gone <- err
	}()
	nodetest.WaitFor(t, 20*time.Second, func() bool { return rows.count("k") == 1 }, "the load to start")
	patient := make(chan error, 1)
	go func() {
		v, err := groups[(owner+2)%3].Get(ctx, "k")
		if err == nil && string(v) != "v" {
			err = fmt.Errorf("value %q", v)
		}
		patient <- err
	}()
	nodetest.WaitFor(t, 20*time.Second, func() bool {
		return node.LoadWaiters(nodes[owner], "items", "k") == 1
	}, "the second get to join")
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled get = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-patient; err != nil {
		t.Fatalf("get that waited: %v", err)
	}
	if v, err := groups[owner].Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("get after the load = %q, %v", v, err)
	}
	if n := rows.count("k"); n != 1 {
		t.Errorf("%d queries, want 1: the load went on without its first caller", n)
	}
}

func TestGroupLoadTimeoutEndsTheLoad(t *testing.T) {
	rows := openRows(t)
	cfg := node.GroupConfig{Name: "items", TTL: time.Hour, LoadTimeout: 300 * time.Millisecond}
	_, groups := startGroupCluster(t, 3, everyNode(rows, cfg))
	ctx := testCtx(t)
	rows.put(t, "k", "v", 0)
	rows.setHook(func(ctx context.Context, _ int, _ string) error { <-ctx.Done(); return ctx.Err() })
	_, errs := getAll(ctx, groups, "k", 30)
	for i, err := range errs {
		if err == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("get %d of a load that never ends = %v, want the load's timeout", i, err)
		}
	}
	rows.setHook(nil)
	if v, err := groups[0].Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("get after the timeout = %q, %v", v, err)
	}
}

func TestGroupOwnerCrashDuringLoadDoesNotHangWaiters(t *testing.T) {
	rows := openRows(t)
	cfg := node.GroupConfig{Name: "items", TTL: time.Hour, LoadTimeout: time.Minute}
	nodes, groups := startGroupCluster(t, 3, everyNode(rows, cfg))
	ctx := testCtx(t)
	key := keyOwnedBy(t, nodes[0], "items", "node3", "crash")
	rows.put(t, key, "v", 0)
	// node3's load never finishes on its own; the others' loads do.
	rows.setHook(func(ctx context.Context, i int, _ string) error {
		if i == 2 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	const callers = 100
	var (
		wg   sync.WaitGroup
		vals = make([]string, callers)
		errs = make([]error, callers)
	)
	for i := range callers {
		wg.Go(func() {
			v, err := groups[i%2].Get(ctx, key)
			vals[i], errs[i] = string(v), err
		})
	}
	nodetest.WaitFor(t, 30*time.Second, func() bool {
		return node.LoadWaiters(nodes[2], "items", key) == callers-1
	}, "every get to wait on node3's load")
	crashed := time.Now()
	node.Crash(nodes[2])
	wg.Wait() // a hang fails the test at its deadline
	t.Logf("waiters returned %v after the crash", time.Since(crashed).Round(time.Millisecond))
	ok := 0
	for i := range callers {
		switch {
		case errors.Is(errs[i], context.DeadlineExceeded) && ctx.Err() != nil:
			t.Fatalf("get %d hung until the test's deadline", i)
		case errs[i] == nil && vals[i] != "v":
			t.Fatalf("get %d = %q, want v", i, vals[i])
		case errs[i] == nil:
			ok++
		}
	}
	t.Logf("%d of %d waiters got the value from a retry on the next owner; the others an error", ok, callers)
	v, err := groups[0].Get(ctx, key)
	if err != nil || string(v) != "v" {
		t.Fatalf("get after the crash = %q, %v; want v", v, err)
	}
}

func TestGroupStandaloneNodesForwardLoadsToAHost(t *testing.T) {
	rows := openRows(t)
	// Only node1 embeds the group; node2 and node3 run without it.
	nodes, groups := startGroupCluster(t, 3, func(i int) *node.GroupConfig {
		if i != 0 {
			return nil
		}
		return &node.GroupConfig{Name: "items", Loader: rows.loader(0), TTL: time.Hour}
	})
	ctx := testCtx(t)
	key := keyOwnedBy(t, nodes[0], "items", "node2", "standalone")
	rows.put(t, key, "v", 0)

	// A plain client asks node3 (no loader) for a key owned by node2 (no
	// loader): node3 routes to node2, which has node1 load it.
	tc, err := transport.NewClient(transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	load := &transport.Request{Op: transport.OpLoad, Key: key, Value: []byte("items")}
	for i := range 20 {
		resp, err := tc.Call(ctx, nodes[2].Addr(), load)
		if err != nil || resp.Error() != nil || string(resp.Value) != "v" {
			t.Fatalf("OpLoad via node3 = %+v, %v", resp, err)
		}
		// Int says how it was answered: 2 loaded for this request, 0 a hit.
		if want := map[bool]int64{true: 2, false: 0}[i == 0]; resp.Int != want {
			t.Errorf("OpLoad %d answered with outcome %d, want %d", i, resp.Int, want)
		}
	}
	if n := rows.count(key); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
	if _, _, ok := nodes[1].Store().Get(node.GroupKey("items", key)); !ok {
		t.Error("the owner, node2, does not hold the value its host loaded")
	}
	if s := groups[0].Stats(); s.Loads != 1 {
		t.Errorf("node1 ran %d loads, want 1", s.Loads)
	}
	// Through the Group on node1 too: one hop to the owner, a hit.
	if v, err := groups[0].Get(ctx, key); err != nil || string(v) != "v" {
		t.Fatalf("Get via node1 = %q, %v", v, err)
	}
	if s := groups[0].Stats(); s.Hits != 1 {
		t.Errorf("stats %+v: want 1 hit", s)
	}

	// A group no member hosts: a clear error, not a hang.
	resp, err := tc.Call(ctx, nodes[2].Addr(), &transport.Request{Op: transport.OpLoad, Key: key, Value: []byte("nosuch")})
	if err != nil || !errors.Is(resp.Error(), transport.ErrUnavailable) {
		t.Fatalf("OpLoad of an unhosted group = %+v, %v; want ErrUnavailable", resp, err)
	}
	t.Logf("unhosted group: %v", resp.Error())
}

func TestGroupRegisteredAfterStartIsPublished(t *testing.T) {
	rows := openRows(t)
	nodes := nodetest.StartCluster(t, 3, nil)
	ctx := testCtx(t)
	g, err := nodes[0].NewGroup(node.GroupConfig{Name: "late", Loader: rows.loader(0), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	key := keyOwnedBy(t, nodes[0], "late", "node2", "late")
	rows.put(t, key, "v", 0)
	// node2 learns through gossip that node1 hosts the group; until then
	// the load is refused as unhosted.
	nodetest.WaitFor(t, 20*time.Second, func() bool {
		v, err := g.Get(ctx, key)
		if err != nil && !errors.Is(err, transport.ErrUnavailable) {
			t.Fatalf("Get = %v", err)
		}
		return err == nil && string(v) == "v"
	}, "node2 to hear of the group")
}

func TestGroupRejectsBadConfigAndRequests(t *testing.T) {
	ld := func(context.Context, string) ([]byte, time.Duration, error) { return nil, 0, nil }
	cfg := nodetest.Config(t, "alone")
	nd, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, gc := range map[string]node.GroupConfig{
		"no name":        {Loader: ld},
		"colon":          {Name: "a:b", Loader: ld},
		"long name":      {Name: string(make([]byte, 65)), Loader: ld},
		"no loader":      {Name: "g"},
		"negative TTL":   {Name: "g", Loader: ld, TTL: -1},
		"soft >= hard":   {Name: "g", Loader: ld, TTL: time.Second, SoftTTL: time.Second},
		"huge timeout":   {Name: "g", Loader: ld, LoadTimeout: time.Hour},
		"negative soft":  {Name: "g", Loader: ld, SoftTTL: -time.Second},
		"negative neg":   {Name: "g", Loader: ld, NegativeTTL: -time.Second},
		"non-ascii name": {Name: "grüße", Loader: ld},
	} {
		if _, err := nd.NewGroup(gc); !errors.Is(err, node.ErrInvalidConfig) {
			t.Errorf("%s: NewGroup = %v, want ErrInvalidConfig", name, err)
		}
	}
	g, err := nd.NewGroup(node.GroupConfig{Name: "g", Loader: ld})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nd.NewGroup(node.GroupConfig{Name: "g", Loader: ld}); !errors.Is(err, node.ErrGroupExists) {
		t.Errorf("second NewGroup(g) = %v, want ErrGroupExists", err)
	}
	if _, err := g.Get(context.Background(), "k"); !errors.Is(err, node.ErrNotStarted) {
		t.Errorf("Get before Start = %v, want ErrNotStarted", err)
	}
	nodetest.StartNode(t, nd)

	tc, err := transport.NewClient(transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx := testCtx(t)
	for name, c := range map[string]struct {
		req  transport.Request
		want error
	}{
		"empty group":  {transport.Request{Op: transport.OpLoad, Key: "k"}, transport.ErrBadRequest},
		"bad group":    {transport.Request{Op: transport.OpLoad, Key: "k", Value: []byte("a:b")}, transport.ErrBadRequest},
		"huge key":     {transport.Request{Op: transport.OpLoad, Key: string(make([]byte, cfg.Store.MaxKeySize)), Value: []byte("g")}, transport.ErrTooLarge},
		"not a loader": {transport.Request{Op: transport.OpLoad, Flags: transport.FlagForwarded | transport.FlagLocalOnly, Key: "k", Value: []byte("other")}, transport.ErrUnavailable},
	} {
		resp, err := tc.Call(ctx, nd.Addr(), &c.req)
		if err != nil || !errors.Is(resp.Error(), c.want) {
			t.Errorf("%s: %+v, %v; want %v", name, resp, err, c.want)
		}
	}

	// Bytes that are not an entry, written under a group key by a client,
	// are a miss: the next Get loads and overwrites them.
	set := &transport.Request{Op: transport.OpSet, Key: node.GroupKey("g", "k"), Value: []byte("garbage")}
	if resp, err := tc.Call(ctx, nd.Addr(), set); err != nil || resp.Error() != nil {
		t.Fatalf("set = %+v, %v", resp, err)
	}
	if v, err := g.Get(ctx, "k"); err != nil || len(v) != 0 {
		t.Fatalf("Get over garbage = %q, %v; want the loader's empty value", v, err)
	}
	if s := g.Stats(); s.Loads != 1 {
		t.Errorf("%d loads, want 1", s.Loads)
	}
}

func TestGroupLoaderPanicFailsCallersNotTheNode(t *testing.T) {
	cfg := nodetest.Config(t, "alone")
	nd, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g, err := nd.NewGroup(node.GroupConfig{Name: "g", Loader: func(context.Context, string) ([]byte, time.Duration, error) {
		panic("bug in the loader")
	}})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.StartNode(t, nd)
	if _, err := g.Get(testCtx(t), "k"); err == nil {
		t.Fatal("Get through a panicking loader succeeded")
	}
	if s := g.Stats(); s.LoadErrors != 1 {
		t.Errorf("%d load errors, want 1", s.LoadErrors)
	}
}

// An owner asks a loader host to load a key for it within the group's
// wait, a bound this node sets itself, not a caller's deadline: a host
// that hangs past it is marked, and the next load goes to another host
// instead of spending its wait on the hung one again.
func TestHungLoadHostIsMarked(t *testing.T) {
	rows := openRows(t)
	stall := &stallNetwork{}
	nodes := make([]*node.Node, 3)
	for i := range nodes {
		cfg := nodetest.Config(t, fmt.Sprintf("node%d", i+1))
		if i > 0 {
			cfg.Gossip.Seeds = []string{nodes[0].GossipAddr()}
		}
		cfg.Gossip.ProbeInterval, cfg.Gossip.ProbeTimeout, cfg.Gossip.SuspicionMult = time.Second, 500*time.Millisecond, 8
		cfg.PeerBackoff = time.Minute
		if i == 0 {
			cfg.Transport.Network = stall // node1 hosts no loader
		}
		nd, err := node.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if _, err := nd.NewGroup(node.GroupConfig{Name: "items", Loader: rows.loader(i), TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		nodes[i] = nodetest.StartNode(t, nd)
	}
	nodetest.WaitConverged(t, nodes, 3)
	owner, host := nodes[0], nodes[1]
	var keys []string
	for i := 0; len(keys) < 2; i++ {
		if i == 100000 {
			t.Fatal("no keys owned by node1 whose first loader host is node2")
		}
		k := fmt.Sprintf("hk-%d", i)
		if owner.Ring().Owner(node.GroupKey("items", k)) == "node1" && node.FirstHost(owner, "items", k) == "node2" {
			keys = append(keys, k)
			rows.put(t, k, "v", 0)
		}
	}
	addr := host.Addr()
	stall.target.Store(&addr)
	stall.stalled.Store(true)
	load := func(k string) *transport.Response {
		return owner.Handle(context.Background(), &transport.Request{Op: transport.OpLoad, Key: k, Value: []byte("items"), TTL: 300})
	}
	if r := load(keys[0]); r.Code == transport.CodeOK {
		t.Fatalf("a load from a hung host answered %+v", r)
	}
	if !node.Marked(owner, host) {
		t.Fatal("a host that hung past the owner's own bound was not marked down")
	}
	// Had it asked the hung host first, the load would have spent its
	// whole wait there and failed.
	if r := load(keys[1]); r.Code != transport.CodeOK || string(r.Value) != "v" {
		t.Fatalf("the next load = %+v, want v from the other host", r)
	}
}
