package resp

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/starlingcache/starling/transport"
)

// forProtocols runs f against one server with a RESP2 and a RESP3 client.
func forProtocols(t *testing.T, mutate func(*Config), f func(t *testing.T, ts *testServer, rdb *redis.Client)) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			ts := startServer(t, mutate)
			f(t, ts, ts.client(t, proto, nil))
		})
	}
}

// eq returns a checker for a go-redis (value, error) pair:
// eq(t, "GET", "v")(rdb.Get(ctx, "k").Result()).
func eq[T any](t *testing.T, what string, want T) func(T, error) {
	return func(got T, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: unexpected error: %v", what, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s = %#v, want %#v", what, got, want)
		}
	}
}

func fatalIf(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// noErr returns a checker that only fails on an error.
func noErr(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
	}
}

func wantNil(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("%s: err = %v, want redis.Nil", what, err)
	}
}

func wantErr(t *testing.T, what string, err error, text string) {
	t.Helper()
	if err == nil || err.Error() != text {
		t.Fatalf("%s: err = %v, want %q", what, err, text)
	}
}

func TestGetSetFamily(t *testing.T) {
	forProtocols(t, nil, func(t *testing.T, ts *testServer, rdb *redis.Client) {
		ctx := context.Background()
		_, err := rdb.Get(ctx, "k").Result()
		wantNil(t, "GET missing", err)
		eq(t, "SET", "OK")(rdb.Set(ctx, "k", "v1", 0).Result())
		eq(t, "GET", "v1")(rdb.Get(ctx, "k").Result())

		// SETNX
		eq(t, "SETNX existing", false)(rdb.SetNX(ctx, "k", "x", 0).Result())
		eq(t, "SETNX new", 1)(rdb.Do(ctx, "setnx", "n", "1").Int())

		// SETEX / PSETEX
		eq(t, "SETEX", "OK")(rdb.Do(ctx, "setex", "e", "10", "v").Text())
		eq(t, "TTL after SETEX", 10*time.Second)(rdb.TTL(ctx, "e").Result())
		eq(t, "PSETEX", "OK")(rdb.Do(ctx, "psetex", "p", "1500", "v").Text())
		eq(t, "PTTL after PSETEX", 1500*time.Millisecond)(rdb.PTTL(ctx, "p").Result())
		wantErr(t, "SETEX 0", rdb.Do(ctx, "setex", "e", "0", "v").Err(), "ERR invalid expire time in 'setex' command")
		wantErr(t, "SETEX x", rdb.Do(ctx, "setex", "e", "x", "v").Err(), "ERR value is not an integer or out of range")

		// GETDEL
		eq(t, "GETDEL", "v1")(rdb.GetDel(ctx, "k").Result())
		_, err = rdb.GetDel(ctx, "k").Result()
		wantNil(t, "GETDEL again", err)

		// GETSET: the old value, and the new one without the old expiry
		// (go-redis deprecates its GetSet, as Redis does the command.)
		_, err = rdb.Do(ctx, "getset", "gs", "one").Text()
		wantNil(t, "GETSET new", err)
		eq(t, "EXPIRE gs", true)(rdb.Expire(ctx, "gs", time.Minute).Result())
		eq(t, "GETSET existing", "one")(rdb.Do(ctx, "getset", "gs", "two").Text())
		eq(t, "GET after GETSET", "two")(rdb.Get(ctx, "gs").Result())
		eq(t, "TTL after GETSET", time.Duration(-1))(rdb.TTL(ctx, "gs").Result())
		wantErr(t, "GETSET arity", rdb.Do(ctx, "getset", "gs").Err(), "ERR wrong number of arguments for 'getset' command")

		// TYPE
		eq(t, "TYPE string", "string")(rdb.Type(ctx, "gs").Result())
		eq(t, "TYPE missing", "none")(rdb.Type(ctx, "missing").Result())

		// MSET / MGET
		eq(t, "MSET", "OK")(rdb.MSet(ctx, "a", "1", "b", "2", "c", "3").Result())
		eq(t, "MGET", []any{"1", nil, "3", "2"})(rdb.MGet(ctx, "a", "missing", "c", "b").Result())
		wantErr(t, "MSET odd", rdb.Do(ctx, "mset", "a", "1", "b").Err(), "ERR wrong number of arguments for 'mset' command")

		// MSETNX
		eq(t, "MSETNX with existing", false)(rdb.MSetNX(ctx, "a", "x", "z", "y").Result())
		_, err = rdb.Get(ctx, "z").Result()
		wantNil(t, "MSETNX set nothing", err)
		eq(t, "MSETNX new", true)(rdb.MSetNX(ctx, "y", "1", "z", "2").Result())
		eq(t, "MGET after MSETNX", []any{"1", "2", "1"})(rdb.MGet(ctx, "y", "z", "a").Result())

		// DEL / UNLINK / EXISTS
		eq(t, "EXISTS", int64(3))(rdb.Exists(ctx, "a", "b", "nope", "a").Result())
		eq(t, "DEL", int64(2))(rdb.Del(ctx, "a", "nope", "b").Result())
		eq(t, "UNLINK", int64(2))(rdb.Unlink(ctx, "c", "y", "c").Result())
		eq(t, "EXISTS after", int64(1))(rdb.Exists(ctx, "a", "b", "c", "y", "z").Result())

		// APPEND / STRLEN
		eq(t, "APPEND new", int64(5))(rdb.Append(ctx, "s", "hello").Result())
		eq(t, "APPEND", int64(11))(rdb.Append(ctx, "s", " world").Result())
		eq(t, "STRLEN", int64(11))(rdb.StrLen(ctx, "s").Result())
		eq(t, "STRLEN missing", int64(0))(rdb.StrLen(ctx, "nope").Result())

		// GETRANGE / SUBSTR, with Redis's answers for each index case
		for _, c := range []struct {
			start, end int64
			want       string
		}{
			{0, 4, "hello"}, {-5, -1, "world"}, {0, -1, "hello world"}, {6, 100, "world"},
			{5, 3, ""}, {-1, -5, ""}, {-100, 2, "hel"}, {10, 10, "d"}, {11, 20, ""},
			{99999999999, -99999999999, ""}, {-99999999999, 99999999999, "hello world"},
		} {
			eq(t, fmt.Sprintf("GETRANGE %d %d", c.start, c.end), c.want)(rdb.GetRange(ctx, "s", c.start, c.end).Result())
		}
		eq(t, "GETRANGE missing", "")(rdb.GetRange(ctx, "nope", 0, 10).Result())
		eq(t, "SUBSTR", "h")(rdb.Do(ctx, "substr", "s", "0", "0").Text())
		if err := rdb.Do(ctx, "getrange", "s", "x", "1").Err(); err == nil || err.Error() != "ERR value is not an integer or out of range" {
			t.Fatalf("GETRANGE with a bad index: %v", err)
		}

		// INCR family
		eq(t, "INCR new", int64(1))(rdb.Incr(ctx, "i").Result())
		eq(t, "INCRBY", int64(42))(rdb.IncrBy(ctx, "i", 41).Result())
		eq(t, "DECR", int64(41))(rdb.Decr(ctx, "i").Result())
		eq(t, "DECRBY", int64(-9))(rdb.DecrBy(ctx, "i", 50).Result())
		eq(t, "GET counter", "-9")(rdb.Get(ctx, "i").Result())
		wantErr(t, "INCR non-integer", rdb.Incr(ctx, "s").Err(), "ERR value is not an integer or out of range")
		wantErr(t, "INCRBY bad arg", rdb.Do(ctx, "incrby", "i", "1.5").Err(), "ERR value is not an integer or out of range")
		noErr(t)(rdb.Set(ctx, "big", "9223372036854775807", 0).Result())
		wantErr(t, "INCR overflow", rdb.Incr(ctx, "big").Err(), "ERR increment or decrement would overflow")
		wantErr(t, "DECRBY min", rdb.Do(ctx, "decrby", "i", "-9223372036854775808").Err(), "ERR decrement would overflow")

		// Binary-safe values.
		bin := "a\r\nb\x00c"
		noErr(t)(rdb.Set(ctx, "bin", bin, 0).Result())
		eq(t, "GET binary", bin)(rdb.Get(ctx, "bin").Result())
	})
}

func TestSetOptions(t *testing.T) {
	forProtocols(t, nil, func(t *testing.T, ts *testServer, rdb *redis.Client) {
		ctx := context.Background()
		set := func(a redis.SetArgs) (string, error) { return rdb.SetArgs(ctx, "k", "v2", a).Result() }

		_, err := set(redis.SetArgs{Mode: "XX"})
		wantNil(t, "SET XX missing", err)
		eq(t, "SET NX missing", "OK")(set(redis.SetArgs{Mode: "NX"}))
		_, err = set(redis.SetArgs{Mode: "NX"})
		wantNil(t, "SET NX existing", err)
		eq(t, "SET XX existing", "OK")(set(redis.SetArgs{Mode: "XX", TTL: 5 * time.Second}))
		eq(t, "TTL after EX", 5*time.Second)(rdb.TTL(ctx, "k").Result())

		// KEEPTTL keeps the expiry; a plain SET removes it.
		eq(t, "SET KEEPTTL", "OK")(rdb.Do(ctx, "set", "k", "v3", "keepttl").Text())
		eq(t, "TTL after KEEPTTL", 5*time.Second)(rdb.TTL(ctx, "k").Result())
		noErr(t)(rdb.Set(ctx, "k", "v4", 0).Result())
		eq(t, "TTL after plain SET", time.Duration(-1))(rdb.TTL(ctx, "k").Result())

		// GET returns the old value.
		eq(t, "SET GET", "v4")(rdb.SetArgs(ctx, "k", "v5", redis.SetArgs{Get: true}).Result())
		_, err = rdb.SetArgs(ctx, "fresh", "v", redis.SetArgs{Get: true}).Result()
		wantNil(t, "SET GET missing", err)
		eq(t, "SET NX GET existing", "v5")(rdb.Do(ctx, "set", "k", "zz", "nx", "get").Text())
		eq(t, "value unchanged", "v5")(rdb.Get(ctx, "k").Result())

		// PX, EXAT, PXAT.
		noErr(t)(rdb.Do(ctx, "set", "k", "v", "px", "2500").Text())
		eq(t, "PTTL after PX", 2500*time.Millisecond)(rdb.PTTL(ctx, "k").Result())
		at := ts.clock.Now().Add(100 * time.Second)
		noErr(t)(rdb.SetArgs(ctx, "k", "v", redis.SetArgs{ExpireAt: at}).Result())
		eq(t, "TTL after EXAT", 100*time.Second)(rdb.TTL(ctx, "k").Result())
		noErr(t)(rdb.Do(ctx, "set", "k", "v", "pxat", fmt.Sprint(ts.clock.Now().UnixMilli()+1234)).Text())
		eq(t, "PTTL after PXAT", 1234*time.Millisecond)(rdb.PTTL(ctx, "k").Result())

		// An EXAT in the past stores nothing.
		past := fmt.Sprint(ts.clock.Now().Unix() - 10)
		eq(t, "SET EXAT past", "OK")(rdb.Do(ctx, "set", "k", "v", "exat", past).Text())
		eq(t, "EXISTS after past EXAT", int64(0))(rdb.Exists(ctx, "k").Result())
		noErr(t)(rdb.Set(ctx, "k", "old", 0).Result())
		eq(t, "SET EXAT past GET", "old")(rdb.Do(ctx, "set", "k", "v", "exat", past, "get").Text())
		eq(t, "EXISTS after past EXAT GET", int64(0))(rdb.Exists(ctx, "k").Result())
		wantNil(t, "SET XX EXAT past missing", rdb.Do(ctx, "set", "k", "v", "xx", "exat", past).Err())
		eq(t, "SET NX EXAT past missing", "OK")(rdb.Do(ctx, "set", "k", "v", "nx", "exat", past).Text())

		// Errors, with Redis's texts.
		for _, args := range [][]any{
			{"set", "k", "v", "nx", "xx"},
			{"set", "k", "v", "ex", "10", "px", "10"},
			{"set", "k", "v", "ex"},
			{"set", "k", "v", "keepttl", "ex", "10"},
			{"set", "k", "v", "bogus"},
			{"set", "k", "v", "persist"},
		} {
			wantErr(t, fmt.Sprint(args), rdb.Do(ctx, args...).Err(), "ERR syntax error")
		}
		wantErr(t, "SET EX 0", rdb.Do(ctx, "set", "k", "v", "ex", "0").Err(), "ERR invalid expire time in 'set' command")
		wantErr(t, "SET EX huge", rdb.Do(ctx, "set", "k", "v", "ex", "9223372036854775807").Err(), "ERR invalid expire time in 'set' command")
		wantErr(t, "SET EX word", rdb.Do(ctx, "set", "k", "v", "EX", "ten").Err(), "ERR value is not an integer or out of range")
	})
}

func TestGetEx(t *testing.T) {
	forProtocols(t, nil, func(t *testing.T, ts *testServer, rdb *redis.Client) {
		ctx := context.Background()
		_, err := rdb.GetEx(ctx, "k", 0).Result()
		wantNil(t, "GETEX missing", err)
		noErr(t)(rdb.Set(ctx, "k", "v", 0).Result())
		eq(t, "GETEX EX", "v")(rdb.GetEx(ctx, "k", 30*time.Second).Result())
		eq(t, "TTL", 30*time.Second)(rdb.TTL(ctx, "k").Result())
		eq(t, "GETEX PERSIST", "v")(rdb.Do(ctx, "getex", "k", "persist").Text())
		eq(t, "TTL after PERSIST", time.Duration(-1))(rdb.TTL(ctx, "k").Result())
		eq(t, "GETEX PX", "v")(rdb.Do(ctx, "getex", "k", "px", "700").Text())
		eq(t, "PTTL", 700*time.Millisecond)(rdb.PTTL(ctx, "k").Result())
		eq(t, "GETEX plain", "v")(rdb.Do(ctx, "getex", "k").Text())
		eq(t, "PTTL unchanged", 700*time.Millisecond)(rdb.PTTL(ctx, "k").Result())
		past := fmt.Sprint(ts.clock.Now().Unix() - 1)
		eq(t, "GETEX EXAT past", "v")(rdb.Do(ctx, "getex", "k", "exat", past).Text())
		eq(t, "gone", int64(0))(rdb.Exists(ctx, "k").Result())
		wantErr(t, "GETEX conflicting", rdb.Do(ctx, "getex", "k", "ex", "1", "persist").Err(), "ERR syntax error")
		wantErr(t, "GETEX KEEPTTL", rdb.Do(ctx, "getex", "k", "keepttl").Err(), "ERR syntax error")
		wantErr(t, "GETEX EX -1", rdb.Do(ctx, "getex", "k", "ex", "-1").Err(), "ERR invalid expire time in 'getex' command")
	})
}

func TestTTLSemantics(t *testing.T) {
	forProtocols(t, nil, func(t *testing.T, ts *testServer, rdb *redis.Client) {
		ctx := context.Background()
		eq(t, "TTL missing", -2)(rdb.Do(ctx, "ttl", "k").Int())
		eq(t, "PTTL missing", -2)(rdb.Do(ctx, "pttl", "k").Int())
		eq(t, "EXPIRE missing", false)(rdb.Expire(ctx, "k", time.Second).Result())
		noErr(t)(rdb.Set(ctx, "k", "v", 0).Result())
		eq(t, "TTL no expiry", -1)(rdb.Do(ctx, "ttl", "k").Int())
		eq(t, "PERSIST without expiry", false)(rdb.Persist(ctx, "k").Result())

		eq(t, "EXPIRE", true)(rdb.Expire(ctx, "k", 10*time.Second).Result())
		ts.clock.Advance(2400 * time.Millisecond)
		eq(t, "TTL rounds", 8)(rdb.Do(ctx, "ttl", "k").Int())
		eq(t, "PTTL", 7600)(rdb.Do(ctx, "pttl", "k").Int())
		ts.clock.Advance(7600 * time.Millisecond)
		_, err := rdb.Get(ctx, "k").Result()
		wantNil(t, "GET after expiry", err)
		eq(t, "TTL after expiry", -2)(rdb.Do(ctx, "ttl", "k").Int())

		noErr(t)(rdb.Set(ctx, "k", "v", 0).Result())
		eq(t, "PEXPIRE", true)(rdb.PExpire(ctx, "k", 1500*time.Millisecond).Result())
		eq(t, "PTTL", 1500)(rdb.Do(ctx, "pttl", "k").Int())
		eq(t, "PERSIST", true)(rdb.Persist(ctx, "k").Result())
		eq(t, "TTL after PERSIST", -1)(rdb.Do(ctx, "ttl", "k").Int())
		eq(t, "PERSIST missing", false)(rdb.Persist(ctx, "nope").Result())

		now := ts.clock.Now()
		eq(t, "EXPIREAT", true)(rdb.ExpireAt(ctx, "k", now.Add(50*time.Second)).Result())
		eq(t, "TTL after EXPIREAT", 50)(rdb.Do(ctx, "ttl", "k").Int())
		eq(t, "PEXPIREAT", true)(rdb.PExpireAt(ctx, "k", now.Add(1234*time.Millisecond)).Result())
		eq(t, "PTTL after PEXPIREAT", 1234)(rdb.Do(ctx, "pttl", "k").Int())

		// A time in the past (or a non-positive TTL) deletes the key.
		eq(t, "EXPIREAT past", true)(rdb.ExpireAt(ctx, "k", now.Add(-time.Hour)).Result())
		eq(t, "gone", int64(0))(rdb.Exists(ctx, "k").Result())
		eq(t, "EXPIREAT past missing", false)(rdb.ExpireAt(ctx, "k", now.Add(-time.Hour)).Result())
		noErr(t)(rdb.Set(ctx, "k", "v", 0).Result())
		eq(t, "EXPIRE -1", 1)(rdb.Do(ctx, "expire", "k", "-1").Int())
		eq(t, "gone again", int64(0))(rdb.Exists(ctx, "k").Result())

		wantErr(t, "EXPIRE word", rdb.Do(ctx, "expire", "k", "soon").Err(), "ERR value is not an integer or out of range")
		wantErr(t, "EXPIRE overflow", rdb.Do(ctx, "expire", "k", "9223372036854775807").Err(), "ERR invalid expire time in 'expire' command")
	})
}

func TestExpireOptions(t *testing.T) {
	ts := startServer(t, nil)
	rdb := ts.client(t, 3, nil)
	ctx := context.Background()
	noErr(t)(rdb.Set(ctx, "k", "v", 0).Result())
	eq(t, "XX without TTL", false)(rdb.ExpireXX(ctx, "k", 10*time.Second).Result())
	eq(t, "GT without TTL", false)(rdb.ExpireGT(ctx, "k", 10*time.Second).Result())
	eq(t, "NX without TTL", true)(rdb.ExpireNX(ctx, "k", 10*time.Second).Result())
	eq(t, "NX with TTL", false)(rdb.ExpireNX(ctx, "k", 20*time.Second).Result())
	eq(t, "GT smaller", false)(rdb.ExpireGT(ctx, "k", 5*time.Second).Result())
	eq(t, "GT larger", true)(rdb.ExpireGT(ctx, "k", 20*time.Second).Result())
	eq(t, "LT larger", false)(rdb.ExpireLT(ctx, "k", 30*time.Second).Result())
	eq(t, "LT smaller", true)(rdb.ExpireLT(ctx, "k", 15*time.Second).Result())
	eq(t, "XX with TTL", true)(rdb.ExpireXX(ctx, "k", 12*time.Second).Result())
	eq(t, "TTL", 12*time.Second)(rdb.TTL(ctx, "k").Result())
	eq(t, "NX missing", false)(rdb.ExpireNX(ctx, "nope", time.Second).Result())
	wantErr(t, "NX XX", rdb.Do(ctx, "expire", "k", "1", "nx", "xx").Err(), "ERR NX and XX, GT or LT options at the same time are not compatible")
	wantErr(t, "GT LT", rdb.Do(ctx, "expire", "k", "1", "gt", "lt").Err(), "ERR GT and LT options at the same time are not compatible")
	wantErr(t, "bogus", rdb.Do(ctx, "expire", "k", "1", "sometimes").Err(), "ERR Unsupported option sometimes")
	// Options mixed into a pipeline keep the replies in order.
	pipe := rdb.Pipeline()
	a := pipe.Get(ctx, "k")
	b := pipe.ExpireLT(ctx, "k", time.Second)
	c := pipe.PTTL(ctx, "k")
	noErr(t)(pipe.Exec(ctx))
	eq(t, "pipelined GET", "v")(a.Result())
	eq(t, "pipelined EXPIRE LT", true)(b.Result())
	eq(t, "pipelined PTTL", time.Second)(c.Result())
}

func TestCountersAndKeyspace(t *testing.T) {
	forProtocols(t, func(c *Config) { c.EnableFlushAll = true }, func(t *testing.T, ts *testServer, rdb *redis.Client) {
		ctx := context.Background()
		eq(t, "DBSIZE empty", int64(0))(rdb.DBSize(ctx).Result())
		noErr(t)(rdb.MSet(ctx, "a", "1", "b", "2").Result())
		eq(t, "DBSIZE", int64(2))(rdb.DBSize(ctx).Result())

		// Other members' counts are summed; a member that fails is skipped.
		ts.be.mu.Lock()
		ts.be.peers = []*transport.Response{{Int: 5}, {Code: transport.CodeUnavailable, Err: "down"}}
		ts.be.mu.Unlock()
		eq(t, "DBSIZE cluster", int64(7))(rdb.DBSize(ctx).Result())
		info, err := rdb.Info(ctx, "keyspace").Result()
		fatalIf(t, err)
		if !strings.Contains(info, "db0:keys=7,expires=0,avg_ttl=0\r\n") {
			t.Fatalf("INFO keyspace = %q", info)
		}
		wantErr(t, "FLUSHALL with a failing member", rdb.FlushAll(ctx).Err(), "ERR FLUSHALL failed on 1 of 3 members: down")
		ts.be.mu.Lock()
		ts.be.peers = nil
		ts.be.mu.Unlock()

		// SCAN: the backend's cursor, its options, and Redis's errors.
		// (The FLUSHALL above emptied this member, though another failed.)
		noErr(t)(rdb.MSet(ctx, "k1", "1", "k2", "2", "k3", "3", "other", "4").Result())
		keys, cursor, err := rdb.Scan(ctx, 0, "", 2).Result()
		fatalIf(t, err)
		if !slices.Equal(keys, []string{"k1", "k2"}) || cursor != 2 {
			t.Fatalf("SCAN 0 COUNT 2 = %q, %d", keys, cursor)
		}
		eq(t, "SCAN MATCH", []string{"k1", "k2", "k3"})(rdb.Keys(ctx, "k*").Result())
		eq(t, "KEYS with the empty pattern", []string{})(rdb.Keys(ctx, "").Result())
		var all []string
		iter := rdb.Scan(ctx, 0, "*", 3).Iterator()
		for iter.Next(ctx) {
			all = append(all, iter.Val())
		}
		fatalIf(t, iter.Err())
		eq(t, "SCAN walk", []string{"k1", "k2", "k3", "other"})(all, nil)
		keys, cursor, err = rdb.ScanType(ctx, 0, "", 100, "string").Result()
		fatalIf(t, err)
		if len(keys) != 4 || cursor != 0 {
			t.Fatalf("SCAN TYPE string = %q, %d", keys, cursor)
		}
		keys, cursor, err = rdb.ScanType(ctx, 0, "", 2, "hash").Result()
		fatalIf(t, err)
		if len(keys) != 0 || cursor != 2 {
			t.Fatalf("SCAN TYPE hash = %q, %d; want nothing, and the walk going on", keys, cursor)
		}
		for _, tc := range []struct {
			args []any
			want string
		}{
			{[]any{"scan", "x"}, "ERR invalid cursor"},
			{[]any{"scan", "-1"}, "ERR invalid cursor"},
			{[]any{"scan", "0", "count", "0"}, "ERR syntax error"},
			{[]any{"scan", "0", "count", "x"}, "ERR value is not an integer or out of range"},
			{[]any{"scan", "0", "match"}, "ERR syntax error"},
			{[]any{"scan", "0", "limit", "3"}, "ERR syntax error"},
			{[]any{"keys"}, "ERR wrong number of arguments for 'keys' command"},
		} {
			wantErr(t, fmt.Sprint(tc.args...), rdb.Do(ctx, tc.args...).Err(), tc.want)
		}

		noErr(t)(rdb.MSet(ctx, "a", "1", "b", "2").Result())
		eq(t, "FLUSHALL", "OK")(rdb.FlushAll(ctx).Result())
		eq(t, "DBSIZE after", int64(0))(rdb.DBSize(ctx).Result())
		eq(t, "FLUSHDB ASYNC", "OK")(rdb.FlushDBAsync(ctx).Result())
		wantErr(t, "FLUSHALL bogus", rdb.Do(ctx, "flushall", "later").Err(), "ERR syntax error")
	})
}

func TestFlushAllDisabled(t *testing.T) {
	ts := startServer(t, nil)
	rdb := ts.client(t, 2, nil)
	ctx := context.Background()
	noErr(t)(rdb.Set(ctx, "a", "1", 0).Result())
	err := rdb.FlushAll(ctx).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "ERR FLUSHALL is disabled") {
		t.Fatalf("FLUSHALL err = %v", err)
	}
	eq(t, "key survives", int64(1))(rdb.Exists(ctx, "a").Result())
}

func TestConnectionCommands(t *testing.T) {
	forProtocols(t, nil, func(t *testing.T, ts *testServer, rdb *redis.Client) {
		ctx := context.Background()
		eq(t, "PING", "PONG")(rdb.Ping(ctx).Result())
		eq(t, "PING msg", "hi")(rdb.Do(ctx, "ping", "hi").Text())
		wantErr(t, "PING 2 args", rdb.Do(ctx, "ping", "a", "b").Err(), "ERR wrong number of arguments for 'ping' command")
		eq(t, "ECHO", "hello\r\nworld")(rdb.Echo(ctx, "hello\r\nworld").Result())
		eq(t, "SELECT 0", "OK")(rdb.Do(ctx, "select", "0").Text())
		wantErr(t, "SELECT 1", rdb.Do(ctx, "select", "1").Err(), "ERR DB index is out of range")
		wantErr(t, "SELECT x", rdb.Do(ctx, "select", "x").Err(), "ERR value is not an integer or out of range")

		// CLIENT works per connection: use a dedicated one.
		conn := rdb.Conn()
		defer conn.Close()
		_, err := conn.ClientGetName(ctx).Result()
		wantNil(t, "CLIENT GETNAME unset", err)
		eq(t, "CLIENT SETNAME", true)(conn.ClientSetName(ctx, "worker-1").Result())
		eq(t, "CLIENT GETNAME", "worker-1")(conn.ClientGetName(ctx).Result())
		wantErr(t, "CLIENT SETNAME space", conn.Do(ctx, "client", "setname", "a b").Err(), "ERR Client names cannot contain spaces, newlines or special characters.")
		id, err := conn.ClientID(ctx).Result()
		fatalIf(t, err)
		if id <= 0 {
			t.Fatalf("CLIENT ID = %d", id)
		}
		if s, err := conn.Do(ctx, "client", "info").Text(); err != nil || !strings.Contains(s, "name=worker-1") {
			t.Fatalf("CLIENT INFO = %q", s)
		}
		if s, err := rdb.ClientList(ctx).Result(); err != nil || !strings.Contains(s, "name=worker-1 ") || strings.Count(s, "\n") < 2 {
			t.Fatalf("CLIENT LIST = %q, %v", s, err)
		}
		wantErr(t, "CLIENT BOGUS", conn.Do(ctx, "client", "bogus").Err(), "ERR unknown subcommand 'bogus'. Try CLIENT HELP.")
		wantErr(t, "CLIENT GETNAME extra", conn.Do(ctx, "client", "getname", "x").Err(), "ERR wrong number of arguments for 'client|getname' command")

		// COMMAND in the shape go-redis parses.
		infos, err := rdb.Command(ctx).Result()
		fatalIf(t, err)
		if g := infos["get"]; g == nil || g.Arity != 2 || g.FirstKeyPos != 1 || !g.ReadOnly {
			t.Fatalf("COMMAND get = %+v", g)
		}
		if len(infos) < 30 {
			t.Fatalf("COMMAND lists %d commands", len(infos))
		}
		eq(t, "COMMAND COUNT", len(infos))(rdb.Do(ctx, "command", "count").Int())
		if _, err := rdb.Do(ctx, "command", "docs").Result(); err != nil {
			t.Fatalf("COMMAND DOCS: %v", err)
		}
		eq(t, "CONFIG GET save", map[string]string{"save": ""})(rdb.ConfigGet(ctx, "save").Result())
		cfg, err := rdb.ConfigGet(ctx, "max*").Result()
		fatalIf(t, err)
		if cfg["maxclients"] != "10000" || cfg["maxmemory"] != "1048576" {
			t.Fatalf("CONFIG GET max* = %v", cfg)
		}
	})
}

func TestHello(t *testing.T) {
	ts := startServer(t, nil)
	rc := ts.raw(t)
	rc.send(cmd("HELLO", "3"))
	rc.expect("%7", "$6", "server", "$5", "redis", "$7", "version", "$5", "7.2.0", "$5", "proto", ":3", "$2", "id")
	rc.line() // the id
	rc.expect("$4", "mode", "$10", "standalone", "$4", "role", "$6", "master", "$7", "modules", "*0")
	rc.send(cmd("GET", "nope") + cmd("HELLO", "2") + cmd("GET", "nope"))
	rc.expect("_", "*14")
	for range 14 {
		if l := rc.line(); l[0] == '$' {
			rc.line()
		}
	}
	rc.expect("$-1")
	rc.send(cmd("HELLO", "4") + cmd("HELLO", "x") + cmd("HELLO", "2", "bogus"))
	rc.expect("-NOPROTO unsupported protocol version",
		"-ERR Protocol version is not an integer or out of range",
		"-ERR Syntax error in HELLO option 'bogus'")
}

func TestInfo(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Version = "1.2.3" })
	rdb := ts.client(t, 3, nil)
	ctx := context.Background()
	noErr(t)(rdb.Set(ctx, "a", "1", 0).Result())
	info, err := rdb.Info(ctx).Result()
	fatalIf(t, err)
	for _, want := range []string{
		"# Server\r\n", "redis_version:7.2.0\r\n", "starling_version:1.2.3\r\n", "starling_node:test-node\r\n",
		"# Clients\r\n", "connected_clients:1\r\n",
		"# Memory\r\n", "used_memory:1536\r\n", "used_memory_human:1.50K\r\n", "maxmemory:1048576\r\n",
		"# Stats\r\n", "evicted_keys:2\r\n", "expired_keys:1\r\n", "keyspace_hits:7\r\n", "keyspace_misses:3\r\n",
		"# Keyspace\r\n", "db0:keys=1,expires=0,avg_ttl=0\r\n",
		"# Cluster\r\n", "cluster_enabled:0\r\n", "member0:name=fake,data_addr=127.0.0.1:1,gossip_addr=127.0.0.1:2,state=alive\r\n",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	one, err := rdb.Info(ctx, "memory").Result()
	fatalIf(t, err)
	if strings.Contains(one, "# Server") || !strings.Contains(one, "used_memory:") {
		t.Fatalf("INFO memory = %q", one)
	}
	two, err := rdb.Info(ctx, "CLUSTER", "clients").Result()
	fatalIf(t, err)
	if !strings.HasPrefix(two, "# Clients\r\n") || !strings.Contains(two, "# Cluster") {
		t.Fatalf("INFO cluster clients = %q", two)
	}

	// The keyspace line sums the members' counts and weighs each one's
	// average time to live by its expiring keys: a member that could not
	// estimate its average (-1) counts its keys but not in the average,
	// and TTLs near the 100-year limit over millions of keys do not
	// overflow.
	ts.be.mu.Lock()
	ts.be.peers = []*transport.Response{
		{Int: 3_000_000, Version: 3_000_000, TTL: 3_100_000_000_000},
		{Int: 1_000_000, Version: 1_000_000, TTL: 1_100_000_000_000},
		{Int: 100, Version: 10, TTL: -1},
	}
	ts.be.mu.Unlock()
	ks, err := rdb.Info(ctx, "keyspace").Result()
	fatalIf(t, err)
	if want := "db0:keys=4000101,expires=4000010,avg_ttl=2600000000000\r\n"; !strings.Contains(ks, want) {
		t.Fatalf("INFO keyspace = %q, want %q", ks, want)
	}
}

func TestErrors(t *testing.T) {
	ts := startServer(t, nil)
	rdb := ts.client(t, 2, nil)
	ctx := context.Background()
	wantErr(t, "unknown", rdb.Do(ctx, "FOO", "a", "b").Err(), "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
	wantErr(t, "unknown no args", rdb.Do(ctx, "foo").Err(), "ERR unknown command 'foo', with args beginning with: ")
	wantErr(t, "arity GET", rdb.Do(ctx, "get").Err(), "ERR wrong number of arguments for 'get' command")
	wantErr(t, "arity GET 2", rdb.Do(ctx, "GET", "a", "b").Err(), "ERR wrong number of arguments for 'get' command")
	wantErr(t, "arity SET", rdb.Do(ctx, "set", "a").Err(), "ERR wrong number of arguments for 'set' command")
	wantErr(t, "arity DEL", rdb.Do(ctx, "del").Err(), "ERR wrong number of arguments for 'del' command")

	// Backend failures become Redis errors; an unreachable owner inside an
	// MGET fails the whole command rather than passing for a miss.
	ts.be.mu.Lock()
	ts.be.fail = func(r *transport.Request) *transport.Response {
		if r.Key == "down" {
			return &transport.Response{Code: transport.CodeUnavailable, Err: "unavailable: owner node3 unreachable"}
		}
		return nil
	}
	ts.be.mu.Unlock()
	wantErr(t, "GET down", rdb.Get(ctx, "down").Err(), "ERR unavailable: owner node3 unreachable")
	wantErr(t, "MGET down", rdb.MGet(ctx, "a", "down").Err(), "ERR unavailable: owner node3 unreachable")
	wantErr(t, "DEL down", rdb.Del(ctx, "a", "down").Err(), "ERR unavailable: owner node3 unreachable")
	eq(t, "connection still usable", "PONG")(rdb.Ping(ctx).Result())
}

func TestAuth(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.RequirePass = "s3cret" })
	ctx := context.Background()

	rc := ts.raw(t)
	rc.send(cmd("GET", "a") + cmd("PING") + cmd("HELLO", "3") + cmd("AUTH", "wrong") + cmd("AUTH", "other", "s3cret"))
	rc.expect("-NOAUTH Authentication required.", "-NOAUTH Authentication required.",
		"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
		"-WRONGPASS invalid username-password pair or user is disabled.",
		"-WRONGPASS invalid username-password pair or user is disabled.")
	rc.send(cmd("FOO") + cmd("GET") + cmd("AUTH", "s3cret") + cmd("GET", "a") + cmd("AUTH", "default", "s3cret") + cmd("QUIT"))
	rc.expect("-ERR unknown command 'FOO', with args beginning with: ", "-ERR wrong number of arguments for 'get' command",
		"+OK", "$-1", "+OK", "+OK")
	rc.expectClosed()

	// Unauthenticated clients get Redis's tight request limits.
	rc = ts.raw(t)
	rc.send("*11\r\n")
	rc.expect("-ERR Protocol error: invalid multibulk length")
	rc.expectClosed()
	rc = ts.raw(t)
	rc.send("*2\r\n$4\r\nAUTH\r\n$16385\r\n")
	rc.expect("-ERR Protocol error: invalid bulk length")
	rc.expectClosed()

	// go-redis authenticates with HELLO 3 AUTH, or AUTH in RESP2.
	for _, proto := range []int{2, 3} {
		rdb := ts.client(t, proto, func(o *redis.Options) { o.Password = "s3cret" })
		noErr(t)(rdb.Set(ctx, "k", "v", 0).Result())
		eq(t, "GET authed", "v")(rdb.Get(ctx, "k").Result())
	}
	bad := ts.client(t, 3, func(o *redis.Options) { o.Password = "nope" })
	if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("PING with a wrong password: %v", err)
	}
	anon := ts.client(t, 3, nil)
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without a password: %v", err)
	}
}

func TestAuthWithoutPassword(t *testing.T) {
	ts := startServer(t, nil)
	rc := ts.raw(t)
	rc.send(cmd("AUTH", "x") + cmd("AUTH", "default", "x") + cmd("AUTH", "bob", "x"))
	rc.expect("-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
		"+OK", "-WRONGPASS invalid username-password pair or user is disabled.")
}

// TestAuthErrorTexts: the exact error texts of Redis 7 for a wrong
// password (AUTH with one or two arguments, HELLO ... AUTH, go-redis) and
// for every kind of command before authentication (queued, run on its own,
// inline); a failed AUTH after a successful one does not log the client
// out, as in Redis.
func TestAuthErrorTexts(t *testing.T) {
	const noAuth, wrongPass = "-NOAUTH Authentication required.", "-WRONGPASS invalid username-password pair or user is disabled."
	ts := startServer(t, func(c *Config) { c.RequirePass = "s3cret" })
	rc := ts.raw(t)
	rc.send(cmd("SET", "k", "v") + cmd("MGET", "a", "b") + cmd("DBSIZE") + cmd("INFO") + cmd("CLIENT", "ID") + cmd("SELECT", "0") + "GET k\r\n")
	rc.expect(noAuth, noAuth, noAuth, noAuth, noAuth, noAuth, noAuth)
	rc.send(cmd("AUTH", "nope") + cmd("AUTH", "default", "nope") + cmd("HELLO", "3", "AUTH", "default", "nope") + "AUTH nope\r\n" + cmd("GET", "k"))
	rc.expect(wrongPass, wrongPass, wrongPass, wrongPass, noAuth)
	rc.send(cmd("AUTH", "s3cret") + cmd("AUTH", "nope") + cmd("GET", "k"))
	rc.expect("+OK", wrongPass, "$-1")

	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		bad := ts.client(t, proto, func(o *redis.Options) { o.Password = "nope" })
		wantErr(t, fmt.Sprintf("RESP%d wrong password", proto), bad.Ping(ctx).Err(), wrongPass[1:])
	}
	anon := ts.client(t, 2, nil)
	wantErr(t, "no password", anon.Get(ctx, "k").Err(), noAuth[1:])
}
