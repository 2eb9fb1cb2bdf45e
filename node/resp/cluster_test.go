package resp_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
)

// startRESPCluster starts three in-process nodes with RESP enabled and
// returns one go-redis client per node (RESP3 on odd nodes, RESP2 on the
// others, so both encodings meet the real backend). replicas 0 keeps the
// node's default replication.
func startRESPCluster(t *testing.T, replicas int) ([]*node.Node, []*redis.Client) {
	t.Helper()
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) {
		c.RESP.Addr = "127.0.0.1:0"
		c.RESP.EnableFlushAll = true
		if replicas > 0 {
			c.Replicas = replicas
		}
	})
	clients := make([]*redis.Client, len(nodes))
	for i, nd := range nodes {
		addr := nd.RESPAddr()
		if addr == "" {
			t.Fatalf("%s has no RESP address", nd.Name())
		}
		rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2 + i%2, MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		clients[i] = rdb
	}
	return nodes, clients
}

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestClusterCommands(t *testing.T) {
	for _, replicas := range []int{1, 0} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) { testClusterCommands(t, replicas) })
	}
}

func testClusterCommands(t *testing.T, replicas int) {
	nodes, rdbs := startRESPCluster(t, replicas)
	ctx := context.Background()
	a, b, c := rdbs[0], rdbs[1], rdbs[2]

	// Keys spread over the owners; every node sees every write.
	keys := make([]string, 30)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
		check(t, "SET", rdbs[i%3].Set(ctx, keys[i], "v"+keys[i], 0).Err())
	}
	for _, rdb := range rdbs {
		for _, k := range keys {
			if v, err := rdb.Get(ctx, k).Result(); err != nil || v != "v"+k {
				t.Fatalf("GET %s = %q, %v", k, v, err)
			}
		}
	}
	owners := map[string]bool{}
	for _, k := range keys {
		owners[nodes[0].Ring().Owner(k)] = true
	}
	if len(owners) < 2 {
		t.Fatalf("test keys all live on %v: the test does not cross owners", owners)
	}

	// Multi-key commands across owners, in the caller's order.
	vals, err := b.MGet(ctx, keys[5], "missing", keys[1], keys[29]).Result()
	check(t, "MGET", err)
	if fmt.Sprint(vals) != fmt.Sprintf("[v%s <nil> v%s v%s]", keys[5], keys[1], keys[29]) {
		t.Fatalf("MGET = %v", vals)
	}
	check(t, "MSET", c.MSet(ctx, "m1", "1", "m2", "2", "m3", "3", "m4", "4").Err())
	if n, err := a.Exists(ctx, "m1", "m2", "m3", "m4", "m5").Result(); err != nil || n != 4 {
		t.Fatalf("EXISTS = %d, %v", n, err)
	}
	if ok, err := a.MSetNX(ctx, "m4", "x", "m5", "y").Result(); err != nil || ok {
		t.Fatalf("MSETNX over an existing key = %v, %v", ok, err)
	}
	if ok, err := a.MSetNX(ctx, "n1", "x", "n2", "y", "n3", "z").Result(); err != nil || !ok {
		t.Fatalf("MSETNX = %v, %v", ok, err)
	}
	if n, err := b.Del(ctx, "m1", "m2", "nope", "m3", "n1").Result(); err != nil || n != 4 {
		t.Fatalf("DEL = %d, %v", n, err)
	}
	if n, err := c.Unlink(ctx, "m4", "n2", "n3").Result(); err != nil || n != 3 {
		t.Fatalf("UNLINK = %d, %v", n, err)
	}

	// Conditional sets, GETs of old values, counters, APPEND, STRLEN.
	if ok, err := a.SetNX(ctx, keys[0], "other", 0).Result(); err != nil || ok {
		t.Fatalf("SETNX existing = %v, %v", ok, err)
	}
	if old, err := b.SetArgs(ctx, keys[0], "new", redis.SetArgs{Get: true}).Result(); err != nil || old != "v"+keys[0] {
		t.Fatalf("SET GET = %q, %v", old, err)
	}
	if err := c.SetArgs(ctx, "absent", "x", redis.SetArgs{Mode: "XX"}).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("SET XX absent: %v", err)
	}
	for i, rdb := range rdbs {
		if n, err := rdb.IncrBy(ctx, "counter", 10).Result(); err != nil || n != int64(10*(i+1)) {
			t.Fatalf("INCRBY via node %d = %d, %v", i+1, n, err)
		}
	}
	if n, err := a.Decr(ctx, "counter").Result(); err != nil || n != 29 {
		t.Fatalf("DECR = %d, %v", n, err)
	}
	if err := b.Incr(ctx, keys[3]).Err(); err == nil || err.Error() != "ERR value is not an integer or out of range" {
		t.Fatalf("INCR of a string: %v", err)
	}
	if n, err := c.Append(ctx, "log", "abc").Result(); err != nil || n != 3 {
		t.Fatalf("APPEND = %d, %v", n, err)
	}
	if n, err := a.StrLen(ctx, "log").Result(); err != nil || n != 3 {
		t.Fatalf("STRLEN = %d, %v", n, err)
	}
	if v, err := b.GetDel(ctx, "log").Result(); err != nil || v != "abc" {
		t.Fatalf("GETDEL = %q, %v", v, err)
	}
	// INCRBYFLOAT adds as Redis does, through any node; GETRANGE reads
	// the stored text.
	if v, err := a.IncrByFloat(ctx, "price", 0.1).Result(); err != nil || v != 0.1 {
		t.Fatalf("INCRBYFLOAT new = %v, %v", v, err)
	}
	if v, err := c.Do(ctx, "incrbyfloat", "price", "0.2").Text(); err != nil || v != "0.3" {
		t.Fatalf("INCRBYFLOAT 0.1 + 0.2 = %q, %v; want 0.3", v, err)
	}
	if v, err := b.GetRange(ctx, "price", 0, -1).Result(); err != nil || v != "0.3" {
		t.Fatalf("GETRANGE price = %q, %v", v, err)
	}
	if err := a.Do(ctx, "incrbyfloat", "price", "x").Err(); err == nil || err.Error() != "ERR value is not a valid float" {
		t.Fatalf("INCRBYFLOAT by x: %v", err)
	}
	check(t, "DEL price", a.Del(ctx, "price").Err())

	// Cluster-wide DBSIZE, INFO and FLUSHALL.
	want := int64(len(keys) + 1) // keys and the counter
	for i, rdb := range rdbs {
		if n, err := rdb.DBSize(ctx).Result(); err != nil || n != want {
			t.Fatalf("DBSIZE via node %d = %d, %v; want %d", i+1, n, err, want)
		}
	}
	// SCAN through each node walks every member's keys, whichever node
	// began the walk; KEYS and MATCH agree with it.
	all := append(slices.Clone(keys), "counter")
	slices.Sort(all)
	for i, rdb := range rdbs {
		var got []string
		iter := rdb.Scan(ctx, 0, "", 3).Iterator()
		for iter.Next(ctx) {
			got = append(got, iter.Val())
		}
		check(t, "SCAN", iter.Err())
		slices.Sort(got)
		if !slices.Equal(got, all) {
			t.Fatalf("SCAN via node %d = %q, want %q", i+1, got, all)
		}
		got, err := rdb.Keys(ctx, "*").Result()
		check(t, "KEYS", err)
		slices.Sort(got)
		if !slices.Equal(got, all) {
			t.Fatalf("KEYS via node %d = %q, want %q", i+1, got, all)
		}
	}
	cursor := uint64(0)
	var counters []string
	for first := true; first || cursor != 0; first = false {
		var page []string
		var err error
		// Each step through another node: the cursor is the cluster's.
		page, cursor, err = rdbs[int(cursor)%3].Scan(ctx, cursor, "count*", 2).Result()
		check(t, "SCAN MATCH", err)
		counters = append(counters, page...)
	}
	if !slices.Equal(counters, []string{"counter"}) {
		t.Fatalf("SCAN MATCH count* = %q", counters)
	}

	// INFO's keyspace line counts the keys with an expiry, once each
	// however many copies there are, and their average time to live.
	for _, k := range keys[:10] {
		check(t, "EXPIRE", a.Expire(ctx, k, 1000*time.Second).Err())
	}
	info, err := c.Info(ctx).Result()
	check(t, "INFO", err)
	for _, s := range []string{
		"starling_node:node3\r\n", "starling_cluster_members:3\r\n", "name=node1,", "name=node2,", "name=node3,",
		fmt.Sprintf("db0:keys=%d,expires=10,avg_ttl=", want), "used_memory:", "maxmemory:", "keyspace_hits:", "connected_clients:",
	} {
		if !strings.Contains(info, s) {
			t.Errorf("INFO lacks %q:\n%s", s, info)
		}
	}
	var avgTTL int64
	if i := strings.Index(info, "avg_ttl="); i >= 0 {
		fmt.Sscanf(info[i:], "avg_ttl=%d", &avgTTL)
	}
	if avgTTL <= 900_000 || avgTTL > 1_000_000 {
		t.Errorf("avg_ttl = %d ms, want a little under 1,000,000", avgTTL)
	}
	check(t, "FLUSHALL", b.FlushAll(ctx).Err())
	for i, rdb := range rdbs {
		if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
			t.Fatalf("DBSIZE via node %d after FLUSHALL = %d, %v", i+1, n, err)
		}
	}

	// Errors in Redis's words.
	if err := a.Do(ctx, "nosuch", "x").Err(); err == nil || err.Error() != "ERR unknown command 'nosuch', with args beginning with: 'x' " {
		t.Fatalf("unknown command: %v", err)
	}
	if err := a.Do(ctx, "get").Err(); err == nil || err.Error() != "ERR wrong number of arguments for 'get' command" {
		t.Fatalf("arity: %v", err)
	}
}

func TestClusterPipeline(t *testing.T) {
	_, rdbs := startRESPCluster(t, 0)
	ctx := context.Background()
	for n, rdb := range rdbs {
		pipe := rdb.Pipeline()
		var gets []*redis.StringCmd
		for i := range 8 {
			pipe.Set(ctx, fmt.Sprintf("p%d-%d", n, i), fmt.Sprint(i), 0)
		}
		for i := range 8 {
			gets = append(gets, pipe.Get(ctx, fmt.Sprintf("p%d-%d", n, 7-i)))
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil || len(cmds) != 16 {
			t.Fatalf("node %d: Exec: %d replies, %v", n+1, len(cmds), err)
		}
		for i, g := range gets {
			if v, err := g.Result(); err != nil || v != fmt.Sprint(7-i) {
				t.Fatalf("node %d: GET %d = %q, %v", n+1, i, v, err)
			}
		}
	}
}

// TestClusterTTL uses real time on the real store: short TTLs, and waits
// with a deadline for expiry rather than fixed sleeps.
func TestClusterTTL(t *testing.T) {
	_, rdbs := startRESPCluster(t, 0)
	ctx := context.Background()
	a, b, c := rdbs[0], rdbs[1], rdbs[2]

	if n, err := a.Do(ctx, "ttl", "none").Int(); err != nil || n != -2 {
		t.Fatalf("TTL missing = %d, %v", n, err)
	}
	check(t, "SET", a.Set(ctx, "k", "v", 0).Err())
	if n, err := b.Do(ctx, "ttl", "k").Int(); err != nil || n != -1 {
		t.Fatalf("TTL without expiry = %d, %v", n, err)
	}
	check(t, "EXPIRE", c.Expire(ctx, "k", 100*time.Second).Err())
	if d, err := a.TTL(ctx, "k").Result(); err != nil || d < 99*time.Second || d > 100*time.Second {
		t.Fatalf("TTL = %v, %v", d, err)
	}
	if d, err := b.PTTL(ctx, "k").Result(); err != nil || d < 99*time.Second || d > 100*time.Second {
		t.Fatalf("PTTL = %v, %v", d, err)
	}
	if ok, err := c.Persist(ctx, "k").Result(); err != nil || !ok {
		t.Fatalf("PERSIST = %v, %v", ok, err)
	}
	if ok, err := c.Persist(ctx, "k").Result(); err != nil || ok {
		t.Fatalf("PERSIST again = %v, %v", ok, err)
	}
	at := time.Now().Add(time.Hour)
	check(t, "EXPIREAT", a.ExpireAt(ctx, "k", at).Err())
	if d, err := b.TTL(ctx, "k").Result(); err != nil || d < 59*time.Minute || d > time.Hour {
		t.Fatalf("TTL after EXPIREAT = %v, %v", d, err)
	}
	if ok, err := c.ExpireAt(ctx, "k", time.Now().Add(-time.Minute)).Result(); err != nil || !ok {
		t.Fatalf("EXPIREAT past = %v, %v", ok, err)
	}
	if n, err := a.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS after past EXPIREAT = %d, %v", n, err)
	}
	if v, err := b.GetEx(ctx, "missing", time.Second).Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GETEX missing = %q, %v", v, err)
	}

	// Short TTLs really expire.
	check(t, "SET PX", a.Set(ctx, "short", "v", 150*time.Millisecond).Err())
	check(t, "SETEX", b.Do(ctx, "setex", "short2", "1", "v").Err())
	check(t, "PSETEX", c.Do(ctx, "psetex", "short3", "150", "v").Err())
	check(t, "SET", a.Set(ctx, "short4", "v", 0).Err())
	check(t, "PEXPIRE", b.PExpire(ctx, "short4", 150*time.Millisecond).Err())
	check(t, "SET", a.Set(ctx, "short5", "v", 0).Err())
	if v, err := c.GetEx(ctx, "short5", 150*time.Millisecond).Result(); err != nil || v != "v" {
		t.Fatalf("GETEX = %q, %v", v, err)
	}
	nodetest.WaitFor(t, 10*time.Second, func() bool {
		n, err := c.Exists(ctx, "short", "short2", "short3", "short4", "short5").Result()
		return err == nil && n == 0
	}, "short TTLs to expire")
	if err := a.Get(ctx, "short").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET expired: %v", err)
	}
}
