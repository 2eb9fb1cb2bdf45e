package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// The walks (Range, RangeEntries, RangeKeys) must visit every key that is
// in the store for the whole walk, however its entry moves meanwhile. The
// tests below hold a set of "stable" keys that are written once before the
// walk and never written again: a stable key still present after the walk
// was therefore present throughout it, and must have been visited.

// walker runs one of the three walks, reporting (key, value, tombstone) to
// visit; RangeKeys reports no value.
type walker struct {
	name   string
	values bool
	walk   func(s *Store, visit func(key string, value []byte, tomb bool) bool)
}

var walkers = []walker{
	{"Range", true, func(s *Store, visit func(string, []byte, bool) bool) {
		s.Range(func(key string, value []byte, _ int64, _ uint64) bool { return visit(key, value, false) })
	}},
	{"RangeEntries", true, func(s *Store, visit func(string, []byte, bool) bool) {
		s.RangeEntries(func(key string, e Entry) bool { return visit(key, e.Value, e.Tombstone) })
	}},
	{"RangeKeys", false, func(s *Store, visit func(string, []byte, bool) bool) {
		s.RangeKeys(func(key string, tomb bool, _ int64) bool { return visit(key, nil, tomb) })
	}},
	// ScanKeys in steps of rangeSlots slots and a few hundred bytes, the
	// cursor handed back after every step as a client's SCAN resumes it.
	{"ScanKeys", false, func(s *Store, visit func(string, []byte, bool) bool) {
		var c uint64
		for {
			c = s.ScanKeys(c, s.rangeSlots, 300, func(key string) { visit(key, nil, false) })
			if c == 0 {
				return
			}
		}
	}},
}

// stableValue is stable key i's value: 100 bytes that name the key, so a
// walk that paired a key with another entry's bytes is caught.
func stableValue(key string) []byte {
	v := make([]byte, 100)
	copy(v, key)
	return v
}

// place reports where key's entry is: index slot, log and position.
func place(s *Store, key string) (slot uint64, log int, pos uint64, ok bool) {
	h := s.hash(key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.findLocked(h, key, s.now())
	return r.slot, int(r.log), r.pos, ok
}

// indexGens sums the shards' index generations, to tell that a walk saw
// the index rebuilt under it.
func indexGens(s *Store) uint64 {
	var g uint64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		g += sh.ix.gen
		sh.mu.Unlock()
	}
	return g
}

// TestRangeSeesMovingKeys walks the store while fn, on every visit, makes
// entries move: reads (an LRU hit moves the entry to the log's tail; an
// S3-FIFO hit earns the credit that makes eviction promote it from the
// small to the main log, or reinsert it at the main log's tail), writes of
// new keys that force those evictions and grow the index, deletions that
// leave holes and shift index slots, and sweeps that compact the holes by
// moving live entries from a log's head to its tail. Every stable key left
// at the end must have been visited, with its own value.
func TestRangeSeesMovingKeys(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		// Batches of one cluster put a batch boundary, where index
		// slots shifted by deletions could cross into the part walked,
		// after nearly every cluster.
		cases := []struct {
			w     walker
			slots int
		}{{walkers[0], rangeChunkSlots}, {walkers[1], 1}, {walkers[2], 1}, {walkers[3], 1}, {walkers[3], 64}}
		for _, tc := range cases {
			w := tc.w
			t.Run(fmt.Sprintf("%s/slots=%d", w.name, tc.slots), func(t *testing.T) {
				s, _ := newTestStore(t, func(c *Config) {
					c.Policy = policy
					c.Shards = 2
					c.MaxMemory = 2 << 20
				})
				s.rangeSlots = tc.slots
				const nStable = 2000
				stable := make([]string, nStable)
				for i := range stable {
					stable[i] = fmt.Sprintf("stable-%05d", i)
				}
				rng := rand.New(rand.NewPCG(1, 2))
				churn := make([]byte, 180)
				nextChurn := 0
				churnKey := func(back int) string { return "churn-" + strconv.Itoa(max(nextChurn-back, 1)) }
				steps := 0
				// step makes entries move: reads of stable keys (LRU moves,
				// S3-FIFO credit), new keys (evictions, so promotions and
				// reinsertions), a read of a recent key (promoted when it
				// leaves the small log) and a rewrite of an older one (a
				// ghost hit goes straight to the main log) so that the main
				// log churns too, deletions (holes that shift index slots
				// and feed compaction) and sweeps (compaction).
				step := func() {
					steps++
					for range 3 {
						_, _, _ = s.Get(stable[rng.IntN(nStable)])
					}
					for range 2 {
						nextChurn++
						if err := s.Set(churnKey(0), churn, 0); err != nil {
							t.Fatal(err)
						}
					}
					_, _, _ = s.Get(churnKey(rng.IntN(2)))
					if err := s.Set(churnKey(rng.IntN(5000)), churn[:100], 0); err != nil {
						t.Fatal(err)
					}
					s.Delete(churnKey(rng.IntN(nextChurn)))
					s.Delete(churnKey(rng.IntN(nextChurn)))
					if steps%32 == 0 {
						for sh := range s.NumShards() {
							s.SweepShard(sh, 64)
						}
					}
				}
				// Churn first, so that memory is full (every write evicts)
				// and the index has reached the size it keeps: a rebuild
				// would restart the walk and hide misses (that case is
				// TestRangeGrowsIndexUnderWalk's). The stable keys come in
				// the middle, so that the index is loaded and some land
				// away from their home slot, where a deletion shifts them.
				for range 10000 {
					step()
				}
				for _, k := range stable {
					if err := s.Set(k, stableValue(k), 0); err != nil {
						t.Fatal(err)
					}
				}
				for range 10000 {
					step()
				}
				type loc struct {
					slot, pos uint64
					log       int
				}
				before := make(map[string]loc, nStable)
				for _, k := range stable {
					if slot, log, pos, ok := place(s, k); ok {
						before[k] = loc{slot, pos, log}
					}
				}
				gen := indexGens(s)

				visits := 0
				visited := map[string]int{}
				w.walk(s, func(key string, value []byte, tomb bool) bool {
					if tomb {
						t.Fatalf("tombstone %q: none was written", key)
					}
					if _, isStable := before[key]; isStable {
						if w.values && !bytes.Equal(value, stableValue(key)) {
							t.Fatalf("%s: value %q", key, value)
						}
						visited[key]++
					} else if visits%2 == 0 {
						// As a hand-off drops what it sent: a hole right
						// where the walk is, which shifts the slots that
						// follow in the cluster back towards it.
						s.Delete(key)
					}
					visits++
					if visits > 50*nStable {
						t.Fatalf("walk did not end after %d visits", visits)
					}
					step()
					return true
				})

				survivors, moved, twice, shifted := 0, 0, 0, 0
				for k, b := range before {
					slot, log, pos, ok := place(s, k)
					if !ok {
						continue // evicted during the walk: may or may not be seen
					}
					survivors++
					if visited[k] == 0 {
						t.Errorf("%s was in the store throughout the walk but not visited", k)
					}
					if visited[k] > 1 {
						twice++
					}
					if b.log != log || b.pos != pos {
						moved++
					}
					if b.slot != slot && indexGens(s) == gen {
						shifted++ // by backward-shift deletion

					}
				}
				t.Logf("%d visits; %d of %d stable keys survived, %d of them moved in the logs, %d in the index, %d visited twice",
					visits, survivors, len(before), moved, shifted, twice)
				if g := indexGens(s) - gen; g != 0 {
					t.Fatalf("the index was rebuilt %d times during the walk", g)
				}
				// The test is only worth something if keys survived and moved.
				if survivors < nStable/10 || moved < survivors/4 || shifted == 0 {
					t.Fatalf("%d stable keys survived, %d moved in the logs, %d in the index", survivors, moved, shifted)
				}
			})
		}
	})
}

// TestRangeGrowsIndexUnderWalk inserts so many keys during the walk that
// every shard's index doubles several times: each rebuild restarts the
// shard's walk, so keys may be visited twice but none is missed.
func TestRangeGrowsIndexUnderWalk(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) { c.Policy = policy; c.Shards = 2 })
		const nStable = 200
		for i := range nStable {
			k := "stable-" + strconv.Itoa(i)
			if err := s.Set(k, stableValue(k), 0); err != nil {
				t.Fatal(err)
			}
		}
		gen := indexGens(s)
		visited := map[string]bool{}
		next := 0
		s.RangeKeys(func(key string, _ bool, _ int64) bool {
			visited[key] = true
			for range 8 {
				if next < 20000 {
					next++
					_ = s.Set("new-"+strconv.Itoa(next), nil, 0)
				}
			}
			return true
		})
		if indexGens(s)-gen < 4 {
			t.Fatalf("index rebuilt %d times, want several", indexGens(s)-gen)
		}
		for i := range nStable {
			if k := "stable-" + strconv.Itoa(i); !visited[k] {
				t.Fatalf("%s not visited", k)
			}
		}
	})
}

// TestRangeConcurrentMoves walks the store repeatedly while other
// goroutines read, write, delete and sweep; run it with -race. After each
// walk, every stable key still present must have been visited.
func TestRangeConcurrentMoves(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) {
			c.Policy = policy
			c.Shards = 4
			c.MaxMemory = 4 << 20
		})
		const nStable = 4000
		stable := make([]string, nStable)
		isStable := make(map[string]bool, nStable)
		for i := range stable {
			stable[i] = fmt.Sprintf("stable-%05d", i)
			isStable[stable[i]] = true
			if err := s.Set(stable[i], stableValue(stable[i]), 0); err != nil {
				t.Fatal(err)
			}
		}
		s.rangeSlots = 4 // more batch boundaries
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 3))
				churn := make([]byte, 150)
				var buf []byte
				for i := 0; !stop.Load() && i < 1_000_000; i++ {
					switch i % 8 {
					case 0, 1, 2:
						k := stable[rng.IntN(nStable)]
						var ok bool
						buf, _, _, ok = s.AppendGetEntry(buf[:0], k)
						if ok && !bytes.Equal(buf, stableValue(k)) {
							t.Errorf("%s read %q", k, buf)
							return
						}
					case 3, 4:
						// Read once, so S3-FIFO promotes it to the main log,
						// where eviction reinserts the stable keys.
						k := fmt.Sprintf("churn-%d-%d", w, rng.IntN(20000))
						_ = s.Set(k, churn[:rng.IntN(len(churn))], 0)
						_, _, _ = s.Get(k)
					case 5:
						s.Delete(fmt.Sprintf("churn-%d-%d", w, rng.IntN(20000)))
					case 6:
						_, _ = s.SetWith(fmt.Sprintf("churn-%d-%d", w, rng.IntN(20000)), nil, SetOptions{Tombstone: true, Version: 1})
					default:
						s.SweepShard(i, 32)
					}
				}
			}()
		}
		for i := range 6 {
			w := walkers[i%len(walkers)]
			visited := make(map[string]bool, nStable)
			w.walk(s, func(key string, value []byte, tomb bool) bool {
				if isStable[key] {
					if tomb || (w.values && !bytes.Equal(value, stableValue(key))) {
						t.Errorf("%s: %s saw tomb=%v value %q", w.name, key, tomb, value)
					}
					visited[key] = true
				} else if len(visited)%2 == 0 {
					s.Delete(key) // a hole where the walk is, as a hand-off leaves
				}
				return true
			})
			survivors := 0
			for _, k := range stable {
				if _, ok := s.Lookup(k); ok {
					survivors++
					if !visited[k] {
						t.Errorf("%s: %s was in the store throughout the walk but not visited", w.name, k)
					}
				}
			}
			if survivors == 0 {
				t.Fatalf("%s: no stable key survived", w.name)
			}
		}
		stop.Store(true)
		wg.Wait()
	})
}

func TestRangeKeys(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy })
		now := clk.Now()
		want := map[string]bool{} // key -> tombstone
		for i := range 3000 {
			k := "r" + strconv.Itoa(i)
			opt := SetOptions{Version: uint64(i + 1)}
			switch i % 4 {
			case 1:
				opt.ExpireAt = now + 100
			case 2:
				opt.Tombstone = true
			case 3:
				opt.ExpireAt = now + 1 // expires below
			}
			if _, err := s.SetWith(k, []byte("v"+k), opt); err != nil {
				t.Fatal(err)
			}
			if i%4 != 3 {
				want[k] = opt.Tombstone
			}
		}
		clk.Advance(1)
		got := map[string]bool{}
		s.RangeKeys(func(key string, tomb bool, _ int64) bool {
			if _, dup := got[key]; dup {
				t.Fatalf("RangeKeys yielded %q twice", key)
			}
			got[key] = tomb
			_, _ = s.Lookup(key) // calling back must not deadlock
			return true
		})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("RangeKeys yielded %d keys, want %d (or tombstone flags differ)", len(got), len(want))
		}
		n := 0
		s.RangeKeys(func(string, bool, int64) bool { n++; return n < 10 })
		if n != 10 {
			t.Fatalf("RangeKeys did not stop: %d", n)
		}
	})
}
