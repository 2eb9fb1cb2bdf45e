package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a fake time source for deterministic TTL tests.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() int64              { return c.ns.Load() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestStore(t testing.TB, mutate func(*Config)) (*Store, *clock) {
	t.Helper()
	clk := &clock{}
	clk.ns.Store(1_000_000_000_000)
	cfg := DefaultConfig()
	cfg.MaxMemory = 8 << 20
	cfg.SweepInterval = time.Hour // tests sweep explicitly
	cfg.Now = clk.Now
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, clk
}

func forEachPolicy(t *testing.T, fn func(t *testing.T, policy string)) {
	for _, p := range []string{PolicyS3FIFO, PolicyLRU} {
		t.Run(p, func(t *testing.T) { fn(t, p) })
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"small memory", func(c *Config) { c.MaxMemory = 1000 }, false},
		{"zero key size", func(c *Config) { c.MaxKeySize = 0 }, false},
		{"negative value size", func(c *Config) { c.MaxValueSize = -1 }, false},
		{"shards not power of two", func(c *Config) { c.Shards = 3 }, false},
		{"shards power of two", func(c *Config) { c.Shards = 8 }, true},
		{"unknown policy", func(c *Config) { c.Policy = "random" }, false},
		{"lru", func(c *Config) { c.Policy = PolicyLRU }, true},
		{"negative sweep", func(c *Config) { c.SweepInterval = -1 }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mut(&c)
			err := c.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestBasicOps(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy })
		now := clk.Now()
		type step struct {
			name string
			run  func() string
			want string
		}
		get := func(k string) string {
			v, exp, ok := s.Get(k)
			if !ok {
				return "miss"
			}
			return fmt.Sprintf("%s@%d", v, exp)
		}
		steps := []step{
			{"get absent", func() string { return get("a") }, "miss"},
			{"set", func() string { return fmt.Sprint(s.Set("a", []byte("1"), 0)) }, "<nil>"},
			{"get", func() string { return get("a") }, "1@0"},
			{"overwrite with ttl", func() string { return fmt.Sprint(s.Set("a", []byte("two"), now+100)) }, "<nil>"},
			{"get ttl", func() string { return get("a") }, fmt.Sprintf("two@%d", now+100)},
			{"ttl", func() string { e, ok := s.TTL("a"); return fmt.Sprint(e-now, ok) }, "100 true"},
			{"expire persist", func() string { return fmt.Sprint(s.Expire("a", 0)) }, "true"},
			{"ttl persisted", func() string { e, ok := s.TTL("a"); return fmt.Sprint(e, ok) }, "0 true"},
			{"expire absent", func() string { return fmt.Sprint(s.Expire("zz", now+5)) }, "false"},
			{"nx on present", func() string {
				r, err := s.SetWith("a", []byte("x"), SetOptions{IfAbsent: true})
				return fmt.Sprint(r.Stored, r.HadOld, err)
			}, "false true <nil>"},
			{"nx on absent", func() string {
				r, err := s.SetWith("b", []byte("x"), SetOptions{IfAbsent: true})
				return fmt.Sprint(r.Stored, r.HadOld, err)
			}, "true false <nil>"},
			{"xx on absent", func() string {
				r, err := s.SetWith("c", []byte("x"), SetOptions{IfPresent: true})
				return fmt.Sprint(r.Stored, r.HadOld, err)
			}, "false false <nil>"},
			{"get c", func() string { return get("c") }, "miss"},
			{"xx getold", func() string {
				r, err := s.SetWith("b", []byte("y"), SetOptions{IfPresent: true, GetOld: true})
				return fmt.Sprintf("%v %s %v %v", r.Stored, r.Old, r.HadOld, err)
			}, "true x true <nil>"},
			{"keepttl", func() string {
				_ = s.Set("k", []byte("v"), now+50)
				_, _ = s.SetWith("k", []byte("w"), SetOptions{KeepTTL: true, ExpireAt: now + 999})
				return get("k")
			}, fmt.Sprintf("w@%d", now+50)},
			{"set past expiry deletes", func() string {
				_ = s.Set("k", []byte("v"), now-1)
				return get("k")
			}, "miss"},
			{"delete", func() string { return fmt.Sprint(s.Delete("b"), s.Delete("b")) }, "true false"},
			{"getdel", func() string {
				_ = s.Set("g", []byte("gv"), 0)
				v, ok := s.GetDel("g")
				_, ok2 := s.GetDel("g")
				return fmt.Sprintf("%s %v %v", v, ok, ok2)
			}, "gv true false"},
			{"append absent", func() string { n, err := s.Append("ap", []byte("ab")); return fmt.Sprint(n, err) }, "2 <nil>"},
			{"append", func() string { n, err := s.Append("ap", []byte("cde")); return fmt.Sprint(n, err) }, "5 <nil>"},
			{"append value", func() string { return get("ap") }, "abcde@0"},
			{"appendget", func() string {
				out, _, ok := s.AppendGet([]byte("pre:"), "ap")
				return fmt.Sprintf("%s %v", out, ok)
			}, "pre:abcde true"},
			{"expire in past deletes", func() string { return fmt.Sprint(s.Expire("ap", now), " ", get("ap")) }, "true miss"},
			{"empty value", func() string { _ = s.Set("e", nil, 0); return get("e") }, "@0"},
			{"empty key", func() string { _ = s.Set("", []byte("ek"), 0); return get("") }, "ek@0"},
		}
		for _, st := range steps {
			if got := st.run(); got != st.want {
				t.Fatalf("%s: got %q, want %q", st.name, got, st.want)
			}
		}
	})
}

func TestIncrBy(t *testing.T) {
	s, clk := newTestStore(t, nil)
	now := clk.Now()
	cases := []struct {
		name    string
		initial string // "" means absent
		delta   int64
		want    int64
		err     error
	}{
		{"absent", "", 5, 5, nil},
		{"positive", "10", 3, 13, nil},
		{"negative", "10", -20, -10, nil},
		{"from negative", "-7", 7, 0, nil},
		{"max", strconv.FormatInt(1<<63-2, 10), 1, 1<<63 - 1, nil},
		{"overflow", strconv.FormatInt(1<<63-1, 10), 1, 0, ErrOverflow},
		{"underflow", strconv.FormatInt(-1<<63, 10), -1, 0, ErrOverflow},
		{"not integer", "abc", 1, 0, ErrNotInteger},
		{"float", "1.5", 1, 0, ErrNotInteger},
		{"leading space", " 1", 1, 0, ErrNotInteger},
		{"leading zero", "01", 1, 0, ErrNotInteger},
		{"plus", "+1", 1, 0, ErrNotInteger},
		{"empty", "\x00", 1, 0, ErrNotInteger},
		{"too long", "1111111111111111111111", 1, 0, ErrNotInteger},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("n%d", i)
			if tc.initial != "" {
				if _, err := s.SetWith(key, []byte(tc.initial), SetOptions{ExpireAt: now + 1000, Version: 9}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.IncrBy(key, tc.delta)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("IncrBy = %d, %v; want %d, %v", got, err, tc.want, tc.err)
			}
			if tc.err != nil {
				v, _, _ := s.Get(key)
				if string(v) != tc.initial {
					t.Fatalf("failed IncrBy changed the value to %q", v)
				}
				return
			}
			v, exp, ok := s.Get(key)
			if !ok || string(v) != strconv.FormatInt(tc.want, 10) {
				t.Fatalf("stored %q, %v", v, ok)
			}
			if tc.initial != "" {
				ver, _ := s.Version(key)
				if exp != now+1000 || ver != 9 {
					t.Fatalf("IncrBy lost expiry or version: exp %d ver %d", exp, ver)
				}
			}
		})
	}
}

func TestIncrByConcurrent(t *testing.T) {
	s, _ := newTestStore(t, nil)
	const workers, per = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				d := int64(1)
				if (w+i)%2 == 1 {
					d = 2
				}
				if _, err := s.IncrBy("ctr", d); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	v, _, _ := s.Get("ctr")
	want := workers * per * 3 / 2
	if string(v) != strconv.Itoa(want) {
		t.Fatalf("counter = %s, want %d", v, want)
	}
}

func TestVersions(t *testing.T) {
	s, _ := newTestStore(t, nil)
	cases := []struct {
		name    string
		value   string
		opt     SetOptions
		stored  bool
		wantVal string
		wantVer uint64
	}{
		{"ifnewer on absent with v0", "a", SetOptions{IfNewer: true}, false, "", 0},
		{"ifnewer on absent", "a", SetOptions{IfNewer: true, Version: 5}, true, "a", 5},
		{"older loses", "b", SetOptions{IfNewer: true, Version: 4}, false, "a", 5},
		{"equal loses", "b", SetOptions{IfNewer: true, Version: 5}, false, "a", 5},
		{"newer wins", "c", SetOptions{IfNewer: true, Version: 6}, true, "c", 6},
		{"unconditional", "d", SetOptions{Version: 1}, true, "d", 1},
	}
	for _, tc := range cases {
		r, err := s.SetWith("k", []byte(tc.value), tc.opt)
		if err != nil || r.Stored != tc.stored {
			t.Fatalf("%s: stored=%v err=%v", tc.name, r.Stored, err)
		}
		v, _, ok := s.Get("k")
		ver, _ := s.Version("k")
		if tc.wantVal == "" {
			if ok {
				t.Fatalf("%s: unexpected value %q", tc.name, v)
			}
			continue
		}
		if string(v) != tc.wantVal || ver != tc.wantVer {
			t.Fatalf("%s: got %q v%d, want %q v%d", tc.name, v, ver, tc.wantVal, tc.wantVer)
		}
	}
	if _, ok := s.Version("absent"); ok {
		t.Fatal("Version of absent key reported ok")
	}
}

func TestCompareAndSwap(t *testing.T) {
	s, clk := newTestStore(t, nil)
	now := clk.Now()
	cases := []struct {
		name    string
		oldVer  uint64
		value   string
		opt     SetOptions
		swapped bool
		wantVal string
		wantVer uint64
	}{
		{"create on absent with 0", 0, "a", SetOptions{Version: 1}, true, "a", 1},
		{"wrong version", 7, "b", SetOptions{Version: 2}, false, "a", 1},
		{"right version", 1, "b", SetOptions{Version: 2, ExpireAt: now + 10}, true, "b", 2},
		{"absent condition fails", 2, "c", SetOptions{Version: 3, IfAbsent: true}, false, "b", 2},
		{"keepttl", 2, "d", SetOptions{Version: 3, KeepTTL: true}, true, "d", 3},
	}
	for _, tc := range cases {
		ok, err := s.CompareAndSwap("k", tc.oldVer, []byte(tc.value), tc.opt)
		if err != nil || ok != tc.swapped {
			t.Fatalf("%s: swapped=%v err=%v", tc.name, ok, err)
		}
		v, _, _ := s.Get("k")
		ver, _ := s.Version("k")
		if string(v) != tc.wantVal || ver != tc.wantVer {
			t.Fatalf("%s: got %q v%d, want %q v%d", tc.name, v, ver, tc.wantVal, tc.wantVer)
		}
	}
	if exp, _ := s.TTL("k"); exp != now+10 {
		t.Fatalf("keepttl lost the expiry: %d", exp)
	}
	if _, err := s.CompareAndSwap("k", 3, make([]byte, 2<<20), SetOptions{}); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("oversized CAS: %v", err)
	}
}

func TestTTLExact(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy })
		now := clk.Now()
		for i := range 100 {
			if err := s.Set("k"+strconv.Itoa(i), []byte("v"), now+int64(i)+1); err != nil {
				t.Fatal(err)
			}
		}
		for step := range 101 {
			for i := range 100 {
				_, _, ok := s.Get("k" + strconv.Itoa(i))
				want := int64(i)+1 > int64(step)
				if ok != want {
					t.Fatalf("at +%dns key %d: ok=%v want %v", step, i, ok, want)
				}
			}
			clk.Advance(1)
		}
		// Every read path honours expiry.
		_ = s.Set("x", []byte("1"), clk.Now()+1)
		clk.Advance(1)
		if _, ok := s.TTL("x"); ok {
			t.Fatal("TTL served an expired key")
		}
		if _, ok := s.Version("x"); ok {
			t.Fatal("Version served an expired key")
		}
		if _, ok := s.GetDel("x"); ok {
			t.Fatal("GetDel served an expired key")
		}
		_ = s.Set("x", []byte("41"), clk.Now()+1)
		clk.Advance(1)
		if n, err := s.IncrBy("x", 1); n != 1 || err != nil {
			t.Fatalf("IncrBy on expired key = %d, %v", n, err)
		}
		if exp, _ := s.TTL("x"); exp != 0 {
			t.Fatalf("IncrBy on expired key inherited expiry %d", exp)
		}
		_ = s.Set("y", []byte("v"), clk.Now()+1)
		clk.Advance(1)
		r, _ := s.SetWith("y", []byte("w"), SetOptions{IfAbsent: true})
		if !r.Stored || r.HadOld {
			t.Fatalf("NX over expired key: %+v", r)
		}
		s.Range(func(key string, value []byte, exp int64, ver uint64) bool {
			if exp != 0 && exp <= clk.Now() {
				t.Fatalf("Range yielded expired %q", key)
			}
			return true
		})
	})
}

func TestSweepReclaimsIncrementally(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy; c.Shards = 4 })
		now := clk.Now()
		const n = 20000
		val := make([]byte, 100)
		for i := range n {
			exp := int64(0)
			if i%2 == 0 {
				exp = now + 10
			}
			if err := s.Set("key"+strconv.Itoa(i), val, exp); err != nil {
				t.Fatal(err)
			}
		}
		before := s.Stats()
		clk.Advance(20)
		// A small budget reclaims only part of one shard per call.
		if got := s.SweepShard(0, 10); got > 10 {
			t.Fatalf("sweep of budget 10 reclaimed %d", got)
		}
		total := 0
		// Sweeping continues until expired entries are gone and their holes
		// compacted away, each call doing a bounded amount of work.
		for round := 0; round < 1000 && (s.Len() > n/2 || s.Stats().Bytes >= before.Bytes*3/4); round++ {
			for i := range s.NumShards() {
				total += s.SweepShard(i, 64)
			}
		}
		if s.Len() != n/2 {
			t.Fatalf("after sweeping Len = %d, want %d", s.Len(), n/2)
		}
		after := s.Stats()
		if after.Bytes >= before.Bytes*3/4 {
			t.Fatalf("sweep did not reclaim memory: %d -> %d bytes", before.Bytes, after.Bytes)
		}
		if after.Expirations < n/2 {
			t.Fatalf("expirations = %d", after.Expirations)
		}
		for i := 1; i < n; i += 2 {
			if _, _, ok := s.Get("key" + strconv.Itoa(i)); !ok {
				t.Fatalf("sweep removed live key %d", i)
			}
		}
	})
}

func TestBackgroundSweeper(t *testing.T) {
	s, clk := newTestStore(t, func(c *Config) { c.SweepInterval = time.Millisecond; c.Shards = 4 })
	for i := range 100 {
		_ = s.Set(strconv.Itoa(i), []byte("v"), clk.Now()+1)
	}
	clk.Advance(2)
	deadline := time.Now().Add(10 * time.Second)
	for s.Len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sweeper left %d expired entries", s.Len())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOversized(t *testing.T) {
	s, _ := newTestStore(t, func(c *Config) { c.MaxKeySize = 8; c.MaxValueSize = 16 })
	cases := []struct {
		name string
		err  error
		run  func() error
	}{
		{"key set", ErrKeyTooLarge, func() error { return s.Set("123456789", nil, 0) }},
		{"value set", ErrValueTooLarge, func() error { return s.Set("k", make([]byte, 17), 0) }},
		{"value setwith", ErrValueTooLarge, func() error { _, err := s.SetWith("k", make([]byte, 17), SetOptions{}); return err }},
		{"key incr", ErrKeyTooLarge, func() error { _, err := s.IncrBy("123456789", 1); return err }},
		{"append grows too large", ErrValueTooLarge, func() error {
			if _, err := s.Append("a", make([]byte, 10)); err != nil {
				return err
			}
			_, err := s.Append("a", make([]byte, 10))
			return err
		}},
	}
	for _, tc := range cases {
		err := tc.run()
		if !errors.Is(err, tc.err) || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: err = %v, want %v (and ErrTooLarge)", tc.name, err, tc.err)
		}
	}
	if v, _, _ := s.Get("a"); len(v) != 10 {
		t.Fatalf("failed append changed the value to %d bytes", len(v))
	}
	if err := s.Set("12345678", make([]byte, 16), 0); err != nil {
		t.Fatalf("at-limit write refused: %v", err)
	}
}

func TestEvictionBoundsMemory(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) {
			c.Policy = policy
			c.MaxMemory = 2 << 20
			c.Shards = 4
		})
		val := make([]byte, 100)
		const n = 100_000
		for i := range n {
			if err := s.Set(fmt.Sprintf("key-%08d", i), val, 0); err != nil {
				t.Fatal(err)
			}
			if i%1000 == 0 {
				if st := s.Stats(); st.Bytes > st.MaxMemory {
					t.Fatalf("bytes %d exceed max %d", st.Bytes, st.MaxMemory)
				}
			}
		}
		st := s.Stats()
		if st.Bytes > st.MaxMemory || st.Evictions == 0 || st.Entries == 0 {
			t.Fatalf("stats after flood: %+v", st)
		}
		// A full store still holds a reasonable number of entries: at least
		// half of what raw payload would allow.
		if payload := int64(len(val) + 12); st.Entries < st.MaxMemory/payload/2 {
			t.Fatalf("only %d entries in %d bytes", st.Entries, st.MaxMemory)
		}
		// The most recent key survives.
		if _, _, ok := s.Get(fmt.Sprintf("key-%08d", n-1)); !ok {
			t.Fatal("newest key was evicted")
		}
		if s.Len() != int(st.Entries) {
			t.Fatal("Len disagrees with Stats")
		}
	})
}

func TestLargeValues(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) { c.Policy = policy; c.Shards = 4 })
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		for i := range 20 {
			big[0] = byte(i)
			if err := s.Set("big"+strconv.Itoa(i), big, 0); err != nil {
				t.Fatal(err)
			}
			v, _, ok := s.Get("big" + strconv.Itoa(i))
			if !ok || !bytes.Equal(v, big) {
				t.Fatalf("large value %d did not round-trip", i)
			}
		}
		if st := s.Stats(); st.Bytes > st.MaxMemory {
			t.Fatalf("bytes %d > max %d", st.Bytes, st.MaxMemory)
		}
	})
}

func TestRangeAndFlush(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) { c.Policy = policy })
		want := map[string]string{}
		for i := range 3000 {
			k := "r" + strconv.Itoa(i)
			v := fmt.Sprintf("value-%d", i)
			want[k] = v
			if _, err := s.SetWith(k, []byte(v), SetOptions{Version: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]string{}
		s.Range(func(key string, value []byte, exp int64, ver uint64) bool {
			if _, dup := got[key]; dup {
				t.Fatalf("Range yielded %q twice", key)
			}
			if key != "r"+strconv.FormatUint(ver, 10) {
				t.Fatalf("version %d for %q", ver, key)
			}
			got[key] = string(value)
			// Calling back into the store from fn must not deadlock.
			_, _, _ = s.Get(key)
			return true
		})
		if len(got) != len(want) {
			t.Fatalf("Range yielded %d entries, want %d", len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("Range %q = %q, want %q", k, got[k], v)
			}
		}
		n := 0
		s.Range(func(string, []byte, int64, uint64) bool { n++; return n < 10 })
		if n != 10 {
			t.Fatalf("Range did not stop: %d", n)
		}
		s.Flush()
		if s.Len() != 0 || s.Stats().Bytes > s.Stats().MaxMemory/50 {
			t.Fatalf("after Flush: %+v", s.Stats())
		}
		if _, _, ok := s.Get("r1"); ok {
			t.Fatal("Get after Flush found a key")
		}
		if err := s.Set("again", []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := s.Get("again"); string(v) != "x" {
			t.Fatal("store unusable after Flush")
		}
	})
}

func TestGetMany(t *testing.T) {
	s, _ := newTestStore(t, nil)
	_ = s.Set("a", []byte("1"), 0)
	_ = s.Set("c", []byte("3"), 1<<62)
	keys := []string{"a", "b", "c"}
	var got []string
	s.GetMany(keys, func(i int, v []byte, exp int64, ok bool) {
		got = append(got, fmt.Sprintf("%d:%s:%d:%v", i, v, exp, ok))
	})
	want := fmt.Sprintf("[0:1:0:true 1::0:false 2:3:%d:true]", int64(1<<62))
	if fmt.Sprint(got) != want {
		t.Fatalf("GetMany = %v, want %v", got, want)
	}
}

func TestStats(t *testing.T) {
	s, _ := newTestStore(t, nil)
	_ = s.Set("a", []byte("1"), 0)
	_, _, _ = s.Get("a")
	_, _, _ = s.Get("b")
	s.Delete("a")
	st := s.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.Sets != 1 || st.Deletes != 1 || st.Entries != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestCloseIdempotent(t *testing.T) {
	s, _ := newTestStore(t, nil)
	s.Close()
	s.Close()
	if err := s.Set("a", []byte("b"), 0); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentStress(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) {
			c.Policy = policy
			c.MaxMemory = 2 << 20
			c.Shards = 8
		})
		const workers = 8
		iters := 20000
		if testing.Short() {
			iters = 2000
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for i := range iters {
					k := "k" + strconv.Itoa((i*7+w*13)%5000)
					switch i % 11 {
					case 0, 1, 2:
						val := []byte(k + "=" + strconv.Itoa(i))
						if err := s.Set(k, val, clk.Now()+int64(i%3)); err != nil {
							t.Error(err)
							return
						}
					case 3:
						s.Delete(k)
					case 4:
						_, _ = s.IncrBy("ctr"+strconv.Itoa(w), 1)
					case 5:
						_, _ = s.Append(k, []byte("+"))
					case 6:
						s.Expire(k, clk.Now()+100)
					case 7:
						if i%1100 == 7 {
							n := 0
							s.Range(func(string, []byte, int64, uint64) bool { n++; return n < 100 })
						}
						s.SweepShard(i, 16)
					case 8:
						// Prefetch reads under the shards' locks while
						// others write: -race checks it takes them.
						var ks [20]string
						for j := range ks {
							ks[j] = "k" + strconv.Itoa((i+j*31)%5000)
						}
						s.Prefetch(ks[:])
					default:
						var ok bool
						buf, _, ok = s.AppendGet(buf[:0], k)
						if ok && !bytes.HasPrefix(buf, []byte(k+"=")) && !bytes.HasPrefix(buf, []byte("+")) {
							t.Errorf("key %s read foreign value %q", k, buf)
							return
						}
					}
					if i%500 == 0 {
						clk.Advance(1)
					}
				}
			}()
		}
		wg.Wait()
		if st := s.Stats(); st.Bytes > st.MaxMemory {
			t.Fatalf("bytes %d > max %d", st.Bytes, st.MaxMemory)
		}
	})
}

func TestGetEntry(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy })
		now := clk.Now()
		_, _ = s.SetWith("v", []byte("value"), SetOptions{Version: 7, ExpireAt: now + 50})
		_ = s.Set("plain", []byte{}, 0)
		_, _ = s.SetWith("tomb", nil, SetOptions{Tombstone: true, Version: 9})
		_, _ = s.SetWith("gone", []byte("x"), SetOptions{Version: 3, ExpireAt: now + 1})
		clk.Advance(1)
		cases := []struct{ key, want string }{
			{"v", fmt.Sprintf("value exp%+d v7", now+50)},
			{"plain", "exp+0 v0"},
			{"tomb", "miss"},
			{"gone", "miss"},
			{"absent", "miss"},
		}
		render := func(v []byte, exp int64, ver uint64, ok bool) string {
			if !ok {
				if v != nil || exp != 0 || ver != 0 {
					return "miss with data"
				}
				return "miss"
			}
			return strings.TrimSpace(fmt.Sprintf("%s exp%+d v%d", v, exp, ver))
		}
		before := s.Stats()
		buf := []byte("prefix:")
		for _, tc := range cases {
			if got := render(s.GetEntry(tc.key)); got != tc.want {
				t.Errorf("GetEntry(%s) = %s, want %s", tc.key, got, tc.want)
			}
			out, exp, ver, ok := s.AppendGetEntry(buf, tc.key)
			if !bytes.HasPrefix(out, buf) || len(out) > len(buf) && !ok {
				t.Errorf("AppendGetEntry(%s) returned %q", tc.key, out)
			}
			var v []byte
			if ok {
				v = out[len(buf):]
			}
			if got := render(v, exp, ver, ok); got != tc.want {
				t.Errorf("AppendGetEntry(%s) = %s, want %s", tc.key, got, tc.want)
			}
		}
		// Counted like Get: two reads of each key, two of them live.
		after := s.Stats()
		if after.Hits-before.Hits != 4 || after.Misses-before.Misses != 6 {
			t.Errorf("hits %d misses %d, want 4 and 6", after.Hits-before.Hits, after.Misses-before.Misses)
		}
		// A copy the caller owns; an empty value is non-nil.
		v, _, _, _ := s.GetEntry("v")
		v[0] = 'X'
		if got, _, _ := s.Get("v"); string(got) != "value" {
			t.Fatal("GetEntry's value aliases the store")
		}
		if v, _, _, ok := s.GetEntry("plain"); !ok || v == nil {
			t.Fatal("GetEntry of an empty value returned nil")
		}
		// The read path does not allocate with a reused buffer.
		buf = make([]byte, 0, 64)
		if n := testing.AllocsPerRun(100, func() { buf, _, _, _ = s.AppendGetEntry(buf[:0], "v") }); n != 0 {
			t.Fatalf("AppendGetEntry allocates %.1f times per call", n)
		}
	})
}

// TestGetEntryVersionPairing reads while another goroutine rewrites the key
// with values that name their version: GetEntry must never pair a value
// with another write's version.
func TestGetEntryVersionPairing(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) { c.Policy = policy })
		const writes = 5000
		done := make(chan struct{})
		go func() {
			defer close(done)
			for v := uint64(1); v <= writes; v++ {
				// Sizes vary, so that some writes move the entry.
				val := strconv.FormatUint(v, 10) + strings.Repeat(".", int(v%7))
				if _, err := s.SetWith("k", []byte(val), SetOptions{Version: v}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		var buf []byte
		for reads := 0; ; reads++ {
			select {
			case <-done:
				return
			default:
			}
			var ver uint64
			var ok bool
			buf, _, ver, ok = s.AppendGetEntry(buf[:0], "k")
			if !ok {
				continue
			}
			if got := strings.TrimRight(string(buf), "."); got != strconv.FormatUint(ver, 10) {
				t.Fatalf("value %q read with version %d", buf, ver)
			}
		}
	})
}

// TestLRUReadsDoNotEvict reads a store a third full over and over with no
// sweeper: every LRU hit moves its entry and leaves a hole, and eviction
// must compact those holes rather than drop live keys.
func TestLRUReadsDoNotEvict(t *testing.T) {
	s, _ := newTestStore(t, func(c *Config) { c.Policy = PolicyLRU; c.MaxMemory = 2 << 20; c.Shards = 2 })
	const n = 5000
	val := make([]byte, 100)
	for i := range n {
		if err := s.Set("k"+strconv.Itoa(i), val, 0); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var buf []byte
	for i := range 20 * n {
		var ok bool
		if buf, _, ok = s.AppendGet(buf[:0], "k"+strconv.Itoa(rng.IntN(n))); !ok {
			t.Fatalf("read %d missed; %+v", i, s.Stats())
		}
	}
	if st := s.Stats(); st.Evictions != 0 || st.Entries != n || st.Bytes > st.MaxMemory {
		t.Fatalf("after reads only: %+v", st)
	}
}

// TestNoClockReadWithoutExpiry: reading and overwriting keys that have no
// expiry never reads the clock (it is read only when an expiry makes it
// matter), and keys with one still expire on time.
func TestNoClockReadWithoutExpiry(t *testing.T) {
	var reads atomic.Int64
	clk := &clock{}
	clk.ns.Store(1_000_000_000_000)
	s, _ := newTestStore(t, func(c *Config) {
		c.Now = func() int64 { reads.Add(1); return clk.Now() }
	})
	if err := s.Set("plain", []byte("v1"), 0); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Set("plain", []byte("v2"), 0); err != nil {
			t.Fatal(err)
		}
		if v, _, ok := s.AppendGet(nil, "plain"); !ok || string(v) != "v2" {
			t.Fatalf("get: %q %v", v, ok)
		}
		s.AppendGet(nil, "absent")
	}
	if n := reads.Load(); n != 0 {
		t.Fatalf("the clock was read %d times for keys without expiry", n)
	}
	if err := s.Set("ttl", []byte("x"), clk.Now()+int64(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.AppendGet(nil, "ttl"); !ok {
		t.Fatal("key with expiry gone early")
	}
	clk.Advance(time.Second)
	if _, _, ok := s.AppendGet(nil, "ttl"); ok {
		t.Fatal("key with expiry still there at its expiry")
	}
	if err := s.Set("plain", []byte("v3"), clk.Now()); err != nil { // an expiry of now deletes
		t.Fatal(err)
	}
	if _, _, ok := s.AppendGet(nil, "plain"); ok {
		t.Fatal("a write expiring now left the key")
	}
}

// Stats.Expiring counts live entries with an expiry through every way an
// expiry comes and goes, persisted entries (whose expiry field stays,
// zeroed) and tombstones (whose expiry is not a value's) included.
func TestExpiringCount(t *testing.T) {
	for _, policy := range []string{PolicyS3FIFO, PolicyLRU} {
		t.Run(policy, func(t *testing.T) {
			s, clk := newTestStore(t, func(c *Config) { c.Policy = policy })
			now := clk.Now()
			later := now + int64(time.Hour)
			expect := func(step string, want int64) {
				t.Helper()
				if got := s.Stats().Expiring; got != want {
					t.Fatalf("%s: Expiring = %d, want %d", step, got, want)
				}
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(s.Set("a", []byte("v1"), later))
			must(s.Set("b", []byte("v1"), 0))
			expect("one of two with an expiry", 1)
			must(s.Set("a", []byte("v2"), later+1)) // same layout, in place
			expect("overwritten with an expiry", 1)
			s.Expire("a", 0)
			expect("persisted", 0)
			must(s.Set("a", []byte("v3"), later)) // same layout as the persisted entry
			expect("a persisted entry overwritten with an expiry", 1)
			s.Expire("a", 0)
			s.Expire("a", later)
			expect("persisted, then given an expiry again", 1)
			s.Expire("b", later) // grows a field: the entry moves
			expect("an expiry added to an entry without one", 2)
			must(s.Set("b", []byte("a longer value"), 0))
			expect("rewritten without an expiry", 1)
			_, err := s.SetWith("c", nil, SetOptions{Tombstone: true, Version: 5, ExpireAt: later})
			must(err)
			expect("a tombstone with an expiry", 1)
			s.Delete("a")
			expect("deleted", 0)
			must(s.Set("d", []byte("v"), now+int64(time.Second)))
			expect("a short expiry", 1)
			clk.Advance(2 * time.Second)
			for sh := range s.NumShards() {
				s.SweepShard(sh, 1<<30)
				s.SweepShard(sh, 1<<30)
			}
			expect("expired and swept", 0)
			must(s.Set("e", []byte("v"), later))
			s.Flush()
			expect("flushed", 0)
		})
	}
}
