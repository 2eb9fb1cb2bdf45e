package store

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// lookupString renders Lookup's answer for table comparisons.
func lookupString(s *Store, key string) string {
	e, ok := s.Lookup(key)
	if !ok {
		return "absent"
	}
	if e.Tombstone {
		if e.Value != nil {
			return "tombstone with a value"
		}
		return fmt.Sprintf("tomb v%d exp%+d", e.Version, e.ExpireAt)
	}
	if e.Value == nil {
		return "live with a nil value"
	}
	return fmt.Sprintf("%q v%d exp%+d", e.Value, e.Version, e.ExpireAt)
}

// TestTombstoneInvisible checks that every ordinary operation treats a
// tombstone as an absent key, and what each leaves behind.
func TestTombstoneInvisible(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy })
		now := clk.Now()
		const forget = 1000 // the tombstone's ExpireAt, relative to now
		cases := []struct {
			name  string
			run   func(k string) string
			want  string
			after string // Lookup afterwards; "" means the tombstone is intact
		}{
			{"get", func(k string) string { _, _, ok := s.Get(k); return fmt.Sprint(ok) }, "false", ""},
			{"appendget", func(k string) string {
				out, exp, ok := s.AppendGet([]byte("pre"), k)
				return fmt.Sprintf("%s %d %v", out, exp, ok)
			}, "pre 0 false", ""},
			{"getmany", func(k string) string {
				var got string
				s.GetMany([]string{k}, func(_ int, v []byte, exp int64, ok bool) { got = fmt.Sprintf("%q %d %v", v, exp, ok) })
				return got
			}, `"" 0 false`, ""},
			{"getdel", func(k string) string { v, ok := s.GetDel(k); return fmt.Sprint(v, ok) }, "[] false", ""},
			{"ttl", func(k string) string { e, ok := s.TTL(k); return fmt.Sprint(e, ok) }, "0 false", ""},
			{"expire", func(k string) string { return fmt.Sprint(s.Expire(k, now+5)) }, "false", ""},
			{"expire past", func(k string) string { return fmt.Sprint(s.Expire(k, now-1)) }, "false", ""},
			{"version sees it", func(k string) string { v, ok := s.Version(k); return fmt.Sprint(v, ok) }, "7 true", ""},
			{"range skips it", func(k string) string {
				n := 0
				s.Range(func(key string, _ []byte, _ int64, _ uint64) bool {
					if key == k {
						n++
					}
					return true
				})
				return fmt.Sprint(n)
			}, "0", ""},
			{"ifpresent", func(k string) string {
				r, err := s.SetWith(k, []byte("x"), SetOptions{IfPresent: true, Version: 9})
				return fmt.Sprint(r.Stored, r.HadOld, err)
			}, "false false <nil>", ""},
			{"ifabsent replaces", func(k string) string {
				r, err := s.SetWith(k, []byte("x"), SetOptions{IfAbsent: true, GetOld: true, Version: 3})
				return fmt.Sprint(r.Stored, r.HadOld, r.Old == nil, err)
			}, "true false true <nil>", `"x" v3 exp+0`},
			{"keepttl ignores the tombstone's expiry", func(k string) string {
				r, err := s.SetWith(k, []byte("x"), SetOptions{KeepTTL: true, ExpireAt: now + 50})
				return fmt.Sprint(r.Stored, err)
			}, "true <nil>", fmt.Sprintf(`"x" v0 exp%+d`, now+50)},
			{"set replaces", func(k string) string { return fmt.Sprint(s.Set(k, []byte("y"), 0)) }, "<nil>", `"y" v0 exp+0`},
			{"set empty value replaces", func(k string) string { return fmt.Sprint(s.Set(k, nil, 0)) }, "<nil>", `"" v0 exp+0`},
			{"incrby starts from zero", func(k string) string { n, err := s.IncrBy(k, 5); return fmt.Sprint(n, err) }, "5 <nil>", `"5" v0 exp+0`},
			{"append starts from empty", func(k string) string { n, err := s.Append(k, []byte("ab")); return fmt.Sprint(n, err) }, "2 <nil>", `"ab" v0 exp+0`},
			{"delete removes it", func(k string) string { return fmt.Sprint(s.Delete(k)) }, "false", "absent"},
			{"cas on its version", func(k string) string {
				ok, err := s.CompareAndSwap(k, 7, []byte("c"), SetOptions{Version: 8, KeepTTL: true})
				return fmt.Sprint(ok, err)
			}, "true <nil>", `"c" v8 exp+0`},
			{"cas on version 0 fails", func(k string) string {
				ok, err := s.CompareAndSwap(k, 0, []byte("c"), SetOptions{Version: 8})
				return fmt.Sprint(ok, err)
			}, "false <nil>", ""},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				k := "tomb" + strconv.Itoa(i)
				if err := s.Set(k, []byte("old value"), 0); err != nil {
					t.Fatal(err)
				}
				r, err := s.SetWith(k, []byte("ignored"), SetOptions{Tombstone: true, Version: 7, ExpireAt: now + forget})
				if err != nil || !r.Stored || !r.HadOld {
					t.Fatalf("tombstone write: %+v %v", r, err)
				}
				tomb := fmt.Sprintf("tomb v7 exp%+d", now+forget)
				if got := lookupString(s, k); got != tomb {
					t.Fatalf("after the tombstone write Lookup = %s", got)
				}
				if got := tc.run(k); got != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				after := tc.after
				if after == "" {
					after = tomb
				}
				if got := lookupString(s, k); got != after {
					t.Fatalf("afterwards Lookup = %s, want %s", got, after)
				}
			})
		}
	})
}

// TestTombstoneCounts checks Len, Stats and the hit/miss counters around
// tombstones.
func TestTombstoneCounts(t *testing.T) {
	s, clk := newTestStore(t, nil)
	now := clk.Now()
	for i := range 10 {
		if err := s.Set("k"+strconv.Itoa(i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		if _, err := s.SetWith("k"+strconv.Itoa(i), nil, SetOptions{Tombstone: true, Version: 2, ExpireAt: now + 100}); err != nil {
			t.Fatal(err)
		}
	}
	// A tombstone for a key that never existed is kept too: the write it
	// deletes may still be on its way.
	if r, err := s.SetWith("never", nil, SetOptions{Tombstone: true, Version: 2}); err != nil || !r.Stored || r.HadOld {
		t.Fatalf("tombstone of an absent key: %+v %v", r, err)
	}
	// Overwriting a tombstone with a tombstone keeps one.
	if _, err := s.SetWith("never", nil, SetOptions{Tombstone: true, Version: 3}); err != nil {
		t.Fatal(err)
	}
	_, _, _ = s.Get("k0") // a miss
	_, _, _ = s.Get("k9") // a hit
	_, _ = s.Lookup("k1") // neither
	_, _ = s.Lookup("k8")
	st := s.Stats()
	if s.Len() != 6 || st.Entries != 6 || st.Tombstones != 5 {
		t.Fatalf("Len %d, stats %+v; want 6 entries, 5 tombstones", s.Len(), st)
	}
	if st.Hits != 1 || st.Misses != 1 || st.Sets != 10 || st.Deletes != 6 {
		t.Fatalf("counters %+v", st)
	}
	s.Flush()
	if st := s.Stats(); st.Entries != 0 || st.Tombstones != 0 {
		t.Fatalf("after Flush: %+v", st)
	}
}

// TestTombstoneLastWriterWins plays a sequence of versioned writes, as
// replicas deliver them in any order, against one key.
func TestTombstoneLastWriterWins(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy })
		exp := clk.Now() + 1000
		tomb := func(v uint64) SetOptions {
			return SetOptions{Tombstone: true, IfNewer: true, Version: v, ExpireAt: exp}
		}
		val := func(v uint64) SetOptions { return SetOptions{IfNewer: true, Version: v} }
		tombAt := func(v uint64) string { return fmt.Sprintf("tomb v%d exp%+d", v, exp) }
		steps := []struct {
			name   string
			value  string
			opt    SetOptions
			stored bool
			want   string
		}{
			{"value v5", "a", val(5), true, `"a" v5 exp+0`},
			{"older tombstone loses", "", tomb(4), false, `"a" v5 exp+0`},
			{"equal tombstone loses", "", tomb(5), false, `"a" v5 exp+0`},
			{"newer tombstone wins", "", tomb(10), true, tombAt(10)},
			{"older value cannot resurrect", "b", val(9), false, tombAt(10)},
			{"equal value cannot resurrect", "b", val(10), false, tombAt(10)},
			{"older tombstone loses to a tombstone", "", tomb(8), false, tombAt(10)},
			{"newer tombstone replaces a tombstone", "", tomb(12), true, tombAt(12)},
			{"newer value wins", "c", val(13), true, `"c" v13 exp+0`},
			{"newer tombstone over a value", "", tomb(14), true, tombAt(14)},
			{"ifabsent+ifnewer older loses", "d", SetOptions{IfAbsent: true, IfNewer: true, Version: 13}, false, tombAt(14)},
			{"ifabsent+ifnewer newer wins", "d", SetOptions{IfAbsent: true, IfNewer: true, Version: 15}, true, `"d" v15 exp+0`},
		}
		for _, st := range steps {
			r, err := s.SetWith("k", []byte(st.value), st.opt)
			if err != nil || r.Stored != st.stored {
				t.Fatalf("%s: stored=%v err=%v, want stored=%v", st.name, r.Stored, err, st.stored)
			}
			if got := lookupString(s, "k"); got != st.want {
				t.Fatalf("%s: Lookup = %s, want %s", st.name, got, st.want)
			}
			if _, _, ok := s.Get("k"); ok == isTombState(st.want) {
				t.Fatalf("%s: Get ok=%v for state %s", st.name, ok, st.want)
			}
		}

		// The same through Update, as a replica applies an incoming copy.
		apply := func(in Entry) bool {
			_, wrote, err := s.Update("u", func(cur Entry, found bool) (Entry, bool) {
				return in, !found || cur.Version < in.Version
			})
			if err != nil {
				t.Fatal(err)
			}
			return wrote
		}
		for _, st := range []struct {
			in    Entry
			wrote bool
			want  string
		}{
			{Entry{Tombstone: true, Version: 20, ExpireAt: exp}, true, tombAt(20)},
			{Entry{Value: []byte("stale"), Version: 19}, false, tombAt(20)},
			{Entry{Value: []byte("new"), Version: 21}, true, `"new" v21 exp+0`},
			{Entry{Tombstone: true, Version: 21, ExpireAt: exp}, false, `"new" v21 exp+0`},
			{Entry{Tombstone: true, Version: 22, ExpireAt: exp, Value: []byte("dropped")}, true, tombAt(22)},
		} {
			if wrote := apply(st.in); wrote != st.wrote {
				t.Fatalf("apply %+v: wrote %v", st.in, wrote)
			}
			if got := lookupString(s, "u"); got != st.want {
				t.Fatalf("apply %+v: Lookup = %s, want %s", st.in, got, st.want)
			}
		}
	})
}

// isTombState reports whether a lookupString state is a tombstone.
func isTombState(state string) bool { return len(state) >= 4 && state[:4] == "tomb" }

// TestTombstoneExpiry checks that a tombstone is forgotten at its ExpireAt,
// by readers and by the sweeper, and that its protection ends with it.
func TestTombstoneExpiry(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy; c.Shards = 4 })
		now := clk.Now()
		if _, err := s.SetWith("k", nil, SetOptions{Tombstone: true, Version: 10, ExpireAt: now + 10}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(9)
		if r, _ := s.SetWith("k", []byte("stale"), SetOptions{IfNewer: true, Version: 9}); r.Stored {
			t.Fatal("stale write beat a live tombstone")
		}
		clk.Advance(1)
		if _, ok := s.Lookup("k"); ok {
			t.Fatal("Lookup returned an expired tombstone")
		}
		if _, ok := s.Version("k"); ok {
			t.Fatal("Version returned an expired tombstone")
		}
		if st := s.Stats(); st.Tombstones != 0 || st.Expirations != 1 {
			t.Fatalf("the reader did not reclaim the tombstone: %+v", st)
		}
		if r, _ := s.SetWith("k", []byte("late"), SetOptions{IfNewer: true, Version: 9}); !r.Stored {
			t.Fatal("write refused after the tombstone expired")
		}

		// A tombstone whose ExpireAt has passed already is a plain removal.
		r, err := s.SetWith("k", nil, SetOptions{Tombstone: true, Version: 11, ExpireAt: clk.Now()})
		if err != nil || !r.Stored || !r.HadOld {
			t.Fatalf("expired tombstone write: %+v %v", r, err)
		}
		if got := lookupString(s, "k"); got != "absent" {
			t.Fatalf("expired tombstone write left %s", got)
		}

		// A tombstone without ExpireAt stays until deleted or evicted.
		_, _ = s.SetWith("forever", nil, SetOptions{Tombstone: true, Version: 1})
		clk.Advance(1 << 40)
		if _, ok := s.Lookup("forever"); !ok {
			t.Fatal("tombstone without expiry was forgotten")
		}

		// The sweeper reclaims expired tombstones and their memory.
		now = clk.Now()
		const n = 20000
		for i := range n {
			k := "t" + strconv.Itoa(i)
			if _, err := s.SetWith(k, nil, SetOptions{Tombstone: true, Version: uint64(i + 1), ExpireAt: now + 10}); err != nil {
				t.Fatal(err)
			}
		}
		before := s.Stats()
		if before.Tombstones != n+1 || before.Entries != 0 {
			t.Fatalf("before sweeping: %+v", before)
		}
		clk.Advance(10)
		for round := 0; round < 1000 && (s.Stats().Tombstones > 1 || s.Stats().Bytes >= before.Bytes*3/4); round++ {
			for i := range s.NumShards() {
				s.SweepShard(i, 64)
			}
		}
		after := s.Stats()
		if after.Tombstones != 1 || after.Entries != 0 {
			t.Fatalf("after sweeping: %+v", after)
		}
		if after.Bytes >= before.Bytes*3/4 {
			t.Fatalf("sweep did not reclaim tombstone memory: %d -> %d bytes", before.Bytes, after.Bytes)
		}
		n2 := 0
		s.RangeEntries(func(string, Entry) bool { n2++; return true })
		if n2 != 1 {
			t.Fatalf("RangeEntries saw %d entries after sweeping, want 1", n2)
		}
	})
}

// TestTombstoneEviction checks that tombstones are evictable like any entry
// and that memory stays bounded when they flood the store.
func TestTombstoneEviction(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) { c.Policy = policy; c.MaxMemory = 1 << 20; c.Shards = 2 })
		for i := range 100_000 {
			if _, err := s.SetWith(fmt.Sprintf("key-%08d", i), nil, SetOptions{Tombstone: true, Version: uint64(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		st := s.Stats()
		if st.Bytes > st.MaxMemory || st.Evictions == 0 || st.Tombstones == 0 || st.Entries != 0 {
			t.Fatalf("stats after a tombstone flood: %+v", st)
		}
		if _, ok := s.Lookup(fmt.Sprintf("key-%08d", 100_000-1)); !ok {
			t.Fatal("newest tombstone was evicted")
		}
	})
}

func TestUpdate(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy; c.MaxValueSize = 64 })
		now := clk.Now()
		cases := []struct {
			name  string
			setup func(k string)
			fn    func(cur Entry, found bool) (Entry, bool)
			ret   string // the returned Entry, rendered like lookupString
			wrote bool
			err   error
			after string
		}{
			{"absent, no write", nil,
				func(Entry, bool) (Entry, bool) { return Entry{}, false },
				"zero", false, nil, "absent"},
			{"absent, create", nil,
				func(Entry, bool) (Entry, bool) { return Entry{Value: []byte("v"), Version: 3}, true },
				`"v" v3 exp+0`, true, nil, `"v" v3 exp+0`},
			{"live, no write returns it", func(k string) { _, _ = s.SetWith(k, []byte("v"), SetOptions{Version: 2}) },
				func(Entry, bool) (Entry, bool) { return Entry{}, false },
				`"v" v2 exp+0`, false, nil, `"v" v2 exp+0`},
			{"live, derive from cur (aliasing)", func(k string) { _, _ = s.SetWith(k, []byte("abc"), SetOptions{Version: 2, ExpireAt: now + 9}) },
				func(cur Entry, _ bool) (Entry, bool) {
					cur.Value = append(cur.Value[:1], 'X') // writes into cur.Value's memory
					cur.Version++
					return cur, true
				},
				fmt.Sprintf(`"aX" v3 exp%+d`, now+9), true, nil, fmt.Sprintf(`"aX" v3 exp%+d`, now+9)},
			{"live, same layout in place", func(k string) { _, _ = s.SetWith(k, []byte("abc"), SetOptions{Version: 2}) },
				func(cur Entry, _ bool) (Entry, bool) {
					cur.Value[0] = 'z'
					cur.Version = 4
					return cur, true
				},
				`"zbc" v4 exp+0`, true, nil, `"zbc" v4 exp+0`},
			{"scribbling on cur without writing changes nothing", func(k string) { _ = s.Set(k, []byte("abc"), 0) },
				func(cur Entry, _ bool) (Entry, bool) {
					cur.Value[0] = 'z'
					return Entry{}, false
				},
				`"abc" v0 exp+0`, false, nil, `"abc" v0 exp+0`},
			{"live, to tombstone", func(k string) { _ = s.Set(k, []byte("v"), 0) },
				func(cur Entry, _ bool) (Entry, bool) {
					return Entry{Tombstone: true, Value: cur.Value, Version: 5, ExpireAt: now + 100}, true
				},
				fmt.Sprintf("tomb v5 exp%+d", now+100), true, nil, fmt.Sprintf("tomb v5 exp%+d", now+100)},
			{"tombstone seen", func(k string) { _, _ = s.SetWith(k, nil, SetOptions{Tombstone: true, Version: 6}) },
				func(Entry, bool) (Entry, bool) { return Entry{}, false },
				"tomb v6 exp+0", false, nil, "tomb v6 exp+0"},
			{"tombstone replaced", func(k string) { _, _ = s.SetWith(k, nil, SetOptions{Tombstone: true, Version: 6}) },
				func(cur Entry, _ bool) (Entry, bool) { return Entry{Value: []byte{}, Version: cur.Version + 1}, true },
				`"" v7 exp+0`, true, nil, `"" v7 exp+0`},
			{"expired entry is not found", func(k string) { _ = s.Set(k, []byte("v"), now+1); clk.Advance(1) },
				func(_ Entry, found bool) (Entry, bool) { return Entry{Value: []byte(fmt.Sprint(found))}, true },
				`"false" v0 exp+0`, true, nil, `"false" v0 exp+0`},
			{"expired next removes", func(k string) { _ = s.Set(k, []byte("v"), 0) },
				func(Entry, bool) (Entry, bool) { return Entry{Value: []byte("w"), ExpireAt: 1}, true },
				"zero", true, nil, "absent"},
			{"expired tombstone removes", func(k string) { _ = s.Set(k, []byte("v"), 0) },
				func(Entry, bool) (Entry, bool) { return Entry{Tombstone: true, Version: 9, ExpireAt: 1}, true },
				"zero", true, nil, "absent"},
			{"oversized value", func(k string) { _ = s.Set(k, []byte("v"), 0) },
				func(Entry, bool) (Entry, bool) { return Entry{Value: make([]byte, 65)}, true },
				"zero", false, ErrValueTooLarge, `"v" v0 exp+0`},
			{"oversized value in a tombstone is ignored", nil,
				func(Entry, bool) (Entry, bool) {
					return Entry{Tombstone: true, Value: make([]byte, 65), Version: 1}, true
				},
				"tomb v1 exp+0", true, nil, "tomb v1 exp+0"},
		}
		for i, tc := range cases {
			// UpdateNoCopy must do the same, only return no entry.
			t.Run(tc.name+"/UpdateNoCopy", func(t *testing.T) {
				k := "n" + strconv.Itoa(i)
				if tc.setup != nil {
					tc.setup(k)
				}
				wrote, err := s.UpdateNoCopy(k, tc.fn)
				if !errors.Is(err, tc.err) || wrote != tc.wrote {
					t.Fatalf("UpdateNoCopy: wrote=%v err=%v; want %v %v", wrote, err, tc.wrote, tc.err)
				}
				if got := lookupString(s, k); got != tc.after {
					t.Fatalf("afterwards %s, want %s", got, tc.after)
				}
			})
			t.Run(tc.name, func(t *testing.T) {
				k := "u" + strconv.Itoa(i)
				if tc.setup != nil {
					tc.setup(k)
				}
				called := false
				ret, wrote, err := s.Update(k, func(cur Entry, found bool) (Entry, bool) {
					called = true
					if found != (cur.Value != nil || cur.Tombstone) {
						t.Errorf("found=%v with cur %+v", found, cur)
					}
					return tc.fn(cur, found)
				})
				if !errors.Is(err, tc.err) || wrote != tc.wrote || !called {
					t.Fatalf("Update: wrote=%v err=%v called=%v; want %v %v", wrote, err, called, tc.wrote, tc.err)
				}
				got := "zero"
				if ret.Value != nil || ret.Tombstone || ret.Version != 0 || ret.ExpireAt != 0 {
					got = entryString(ret)
				}
				if got != tc.ret {
					t.Fatalf("returned %s, want %s", got, tc.ret)
				}
				if got := lookupString(s, k); got != tc.after {
					t.Fatalf("afterwards %s, want %s", got, tc.after)
				}
				if len(ret.Value) > 0 {
					ret.Value[0] ^= 0xff // the caller owns the copy
					if got := lookupString(s, k); got != tc.after {
						t.Fatal("the returned value aliases the store")
					}
				}
			})
		}
		_, _, err := s.Update(string(make([]byte, s.Config().MaxKeySize+1)), func(Entry, bool) (Entry, bool) {
			t.Fatal("fn called for an oversized key")
			return Entry{}, false
		})
		if !errors.Is(err, ErrKeyTooLarge) || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("oversized key: %v", err)
		}
	})
}

// entryString renders an Entry like lookupString.
func entryString(e Entry) string {
	if e.Tombstone {
		if e.Value != nil {
			return "tombstone with a value"
		}
		return fmt.Sprintf("tomb v%d exp%+d", e.Version, e.ExpireAt)
	}
	if e.Value == nil {
		return "live with a nil value"
	}
	return fmt.Sprintf("%q v%d exp%+d", e.Value, e.Version, e.ExpireAt)
}

// TestUpdateConcurrent increments counters through Update from many
// goroutines: no increment may be lost, and each write's version is the
// one fn derived from what it read.
func TestUpdateConcurrent(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) { c.Policy = policy; c.Shards = 4 })
		const workers, per, keys = 8, 400, 3
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					k := "ctr" + strconv.Itoa((w+i)%keys)
					ret, wrote, err := s.Update(k, func(cur Entry, found bool) (Entry, bool) {
						n := 0
						if found && !cur.Tombstone {
							n, _ = strconv.Atoi(string(cur.Value))
						}
						return Entry{Value: strconv.AppendInt(cur.Value[:0], int64(n+1), 10), Version: cur.Version + 1}, true
					})
					if err != nil || !wrote {
						t.Errorf("Update: %v %v", wrote, err)
						return
					}
					if string(ret.Value) != strconv.FormatUint(ret.Version, 10) {
						t.Errorf("Update stored %q at version %d", ret.Value, ret.Version)
						return
					}
				}
			}()
		}
		wg.Wait()
		total := 0
		for k := range keys {
			e, ok := s.Lookup("ctr" + strconv.Itoa(k))
			n, _ := strconv.Atoi(string(e.Value))
			if !ok || uint64(n) != e.Version {
				t.Fatalf("counter %d = %q at version %d", k, e.Value, e.Version)
			}
			total += n
		}
		if total != workers*per {
			t.Fatalf("counters sum to %d, want %d", total, workers*per)
		}
	})
}

// TestUpdateUnderEviction rewrites entries through Update, deriving next
// from cur, in a full store where every relocation evicts: the data fn
// read must not be overwritten by the eviction its own write causes. The
// oldest entries go first, so the chunk under cur is released and reused,
// and values are large enough that many straddle chunks.
func TestUpdateUnderEviction(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) { c.Policy = policy; c.MaxMemory = 1 << 20; c.Shards = 2 })
		value := func(i int) []byte {
			v := make([]byte, 500+i%2000)
			for j := range v {
				v[j] = byte(i + j*7)
			}
			return v
		}
		const n = 5000
		for i := range n {
			if err := s.Set("k"+strconv.Itoa(i), value(i), 0); err != nil {
				t.Fatal(err)
			}
		}
		rewritten := 0
		for round := range 3 {
			for i := range n {
				ret, wrote, err := s.Update("k"+strconv.Itoa(i), func(cur Entry, found bool) (Entry, bool) {
					// A change of expiry flag changes the layout, so the
					// entry moves (and the store evicts to make room) while
					// next.Value is cur's.
					cur.ExpireAt = int64(1<<62) * int64(1-round%2)
					cur.Version = uint64(i + 1)
					return cur, found
				})
				if err != nil {
					t.Fatal(err)
				}
				if !wrote {
					continue // evicted already
				}
				rewritten++
				if !bytes.Equal(ret.Value, value(i)) {
					t.Fatalf("key %d: Update returned a corrupted value", i)
				}
				if v, _, ok := s.Get("k" + strconv.Itoa(i)); ok && !bytes.Equal(v, value(i)) {
					t.Fatalf("key %d: stored value corrupted", i)
				}
			}
		}
		if rewritten < 100 || s.Stats().Evictions == 0 {
			t.Fatalf("rewrote %d entries with %d evictions: the test did not exercise eviction", rewritten, s.Stats().Evictions)
		}
		s.RangeEntries(func(key string, e Entry) bool {
			i, _ := strconv.Atoi(key[1:])
			if !bytes.Equal(e.Value, value(i)) || (e.Version != 0 && e.Version != uint64(i+1)) {
				t.Fatalf("key %s: value or version corrupted", key)
			}
			return true
		})
	})
}

func TestRangeEntries(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy })
		now := clk.Now()
		want := map[string]string{}
		for i := range 3000 {
			k := "r" + strconv.Itoa(i)
			var e Entry
			switch i % 4 {
			case 0:
				e = Entry{Value: []byte("v" + k), Version: uint64(i)}
			case 1:
				e = Entry{Value: []byte{}, Version: uint64(i), ExpireAt: now + 100}
			case 2:
				e = Entry{Tombstone: true, Version: uint64(i), ExpireAt: now + 100}
			case 3:
				e = Entry{Tombstone: true, Version: uint64(i), ExpireAt: now + 1} // expires below
			}
			if _, err := s.SetWith(k, e.Value, SetOptions{Tombstone: e.Tombstone, Version: e.Version, ExpireAt: e.ExpireAt}); err != nil {
				t.Fatal(err)
			}
			if i%4 != 3 {
				want[k] = entryString(e)
			}
		}
		clk.Advance(1)
		got := map[string]string{}
		s.RangeEntries(func(key string, e Entry) bool {
			if _, dup := got[key]; dup {
				t.Fatalf("RangeEntries yielded %q twice", key)
			}
			got[key] = entryString(e)
			// Calling back into the store from fn must not deadlock.
			_, _ = s.Lookup(key)
			return true
		})
		if len(got) != len(want) {
			t.Fatalf("RangeEntries yielded %d entries, want %d", len(got), len(want))
		}
		for k, w := range want {
			if got[k] != w {
				t.Fatalf("RangeEntries %q = %s, want %s", k, got[k], w)
			}
		}
		live := 0
		s.Range(func(key string, _ []byte, _ int64, ver uint64) bool {
			if ver%4 >= 2 {
				t.Fatalf("Range yielded tombstone %q", key)
			}
			live++
			return true
		})
		if live != 1500 {
			t.Fatalf("Range yielded %d live entries, want 1500", live)
		}
		n := 0
		s.RangeEntries(func(string, Entry) bool { n++; return n < 10 })
		if n != 10 {
			t.Fatalf("RangeEntries did not stop: %d", n)
		}
	})
}
