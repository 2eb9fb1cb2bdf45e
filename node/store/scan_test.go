package store

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scanAll walks s with ScanKeys in steps of slots and maxBytes, counting
// each key's visits and the bytes each call returned.
func scanAll(t *testing.T, s *Store, slots, maxBytes int, between func()) (seen map[string]int, calls int, most int) {
	t.Helper()
	seen = map[string]int{}
	var c uint64
	for calls = 1; ; calls++ {
		n := 0
		c = s.ScanKeys(c, slots, maxBytes, func(key string) {
			seen[key]++
			n += len(key)
		})
		most = max(most, n)
		if c == 0 {
			return seen, calls, most
		}
		if c>>ScanCursorBits != 0 {
			t.Fatalf("cursor %#x uses bits above ScanCursorBits", c)
		}
		if between != nil {
			between()
		}
		if calls > 1_000_000 {
			t.Fatal("the walk does not end")
		}
	}
}

// With nothing changing in between, a walk in small steps lists every key
// once, skips expired ones, and takes about as many steps as the index
// has slots divided by the step.
func TestScanKeysListsEveryKeyOnce(t *testing.T) {
	s, clk := newTestStore(t, func(c *Config) { c.Shards = 4 })
	const n = 3000
	for i := range n {
		if err := s.Set("k"+strconv.Itoa(i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	expiring := clk.Now() + int64(time.Second)
	for i := range 100 {
		if err := s.Set("gone"+strconv.Itoa(i), []byte("v"), expiring); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Second)
	slots := 0
	for i := range s.shards {
		slots += len(s.shards[i].ix.slots)
	}
	seen, calls, _ := scanAll(t, s, 10, 1<<20, nil)
	for i := range n {
		if k := "k" + strconv.Itoa(i); seen[k] != 1 {
			t.Fatalf("%s listed %d times, want once", k, seen[k])
		}
	}
	if len(seen) != n {
		t.Fatalf("listed %d keys, want %d (no expired ones)", len(seen), n)
	}
	// A step ends after an empty slot, so it may run past its budget by
	// a cluster of full ones, never stop short of it but at a shard's end.
	if calls > slots/10+len(s.shards) || calls < slots/40 {
		t.Errorf("%d steps of 10 slots over %d slots", calls, slots)
	}
}

// A step stops at a batch boundary once its keys reach maxBytes, so an
// answer stays near that size however long the keys are.
func TestScanKeysBoundsBytes(t *testing.T) {
	s, _ := newTestStore(t, func(c *Config) { c.Shards = 2; c.MaxMemory = 16 << 20 })
	const n = 400
	long := strings.Repeat("x", 1000)
	for i := range n {
		if err := s.Set(fmt.Sprint(long, i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	seen, calls, most := scanAll(t, s, 1<<30, 4096, nil)
	if len(seen) != n {
		t.Fatalf("listed %d keys, want %d", len(seen), n)
	}
	// A batch ends only where no key can shift into the part walked, so a
	// step passes maxBytes by the keys up to the next such place: up to a
	// cluster of full slots, tens of keys at worst here, not a shard.
	if calls < n*1000/(16<<10) || most > 128<<10 {
		t.Errorf("%d steps, the largest %d bytes, for %d bytes of keys in steps of 4096", calls, most, n*1000)
	}
}

// Keys that stay are listed while the index is rebuilt between steps, as
// when a SCAN's client pauses while writes grow the store.
func TestScanKeysAcrossRebuilds(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, _ := newTestStore(t, func(c *Config) { c.Policy = policy; c.Shards = 2 })
		const nStable = 500
		for i := range nStable {
			if err := s.Set("stable-"+strconv.Itoa(i), nil, 0); err != nil {
				t.Fatal(err)
			}
		}
		gen := indexGens(s)
		next := 0
		seen, _, _ := scanAll(t, s, 16, 1<<20, func() {
			for range 40 {
				if next < 20000 { // then the walk catches up
					next++
					_ = s.Set("new-"+strconv.Itoa(next), nil, 0)
				}
			}
		})
		if indexGens(s)-gen < 4 {
			t.Fatalf("index rebuilt %d times, want several", indexGens(s)-gen)
		}
		for i := range nStable {
			if k := "stable-" + strconv.Itoa(i); seen[k] == 0 {
				t.Fatalf("%s not listed", k)
			}
		}
	})
}

// A cursor ScanKeys did not make (bits above ScanCursorBits) starts the
// walk over rather than skip keys.
func TestScanKeysForeignCursor(t *testing.T) {
	s, _ := newTestStore(t, func(c *Config) { c.Shards = 2 })
	for i := range 50 {
		if err := s.Set("k"+strconv.Itoa(i), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	var fresh, foreign []string
	c1 := s.ScanKeys(0, 1<<30, 1<<20, func(k string) { fresh = append(fresh, k) })
	c2 := s.ScanKeys(1<<62|12345, 1<<30, 1<<20, func(k string) { foreign = append(foreign, k) })
	if c1 != 0 || c2 != 0 || len(fresh) != 50 || len(foreign) != 50 {
		t.Fatalf("fresh walk %d keys (cursor %#x), foreign cursor %d keys (cursor %#x); want all 50 and done", len(fresh), c1, len(foreign), c2)
	}
}
