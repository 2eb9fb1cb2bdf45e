package store

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

// TestPrefetchChangesNothing: every kind of key a pipeline may name —
// present, absent, expired, deleted, duplicated, in batches longer than
// one prefetch pass — reads the same after Prefetch as before, and the
// counters (hits, misses, expirations) do not move.
func TestPrefetchChangesNothing(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy; c.Shards = 4 })
		now := clk.Now()
		var keys []string
		for i := range 100 {
			k := "key" + strconv.Itoa(i)
			keys = append(keys, k)
			exp := int64(0)
			if i%7 == 0 {
				exp = now + int64(time.Second)
			}
			if err := s.Set(k, []byte("value-"+k), exp); err != nil {
				t.Fatal(err)
			}
			if i%11 == 0 {
				s.Delete(k)
			}
		}
		clk.Advance(2 * time.Second) // every seventh key has expired
		keys = append(keys, "absent", "absent", keys[3], "", keys[50])

		type read struct {
			v  []byte
			ok bool
		}
		readAll := func() []read {
			out := make([]read, len(keys))
			for i, k := range keys {
				v, _, ok := s.AppendGet(nil, k)
				out[i] = read{v, ok}
			}
			return out
		}
		// Expired entries are reclaimed by the first read; Prefetch must
		// not do it in their place (it changes nothing), so compare the
		// counters it could have moved around a Prefetch alone.
		before := s.Stats()
		s.Prefetch(keys)
		s.Prefetch(keys[:1])
		s.Prefetch(nil)
		if after := s.Stats(); after != before {
			t.Fatalf("Prefetch changed the stats:\n before %+v\n after  %+v", before, after)
		}
		want := readAll()
		s.Prefetch(keys)
		got := readAll()
		for i := range keys {
			if got[i].ok != want[i].ok || !bytes.Equal(got[i].v, want[i].v) {
				t.Errorf("%q: after Prefetch %q/%v, before %q/%v", keys[i], got[i].v, got[i].ok, want[i].v, want[i].ok)
			}
		}
		for i, k := range keys[:100] {
			wantOK := i%7 != 0 && i%11 != 0
			if want[i].ok != wantOK {
				t.Errorf("%q: present %v, want %v", k, want[i].ok, wantOK)
			}
		}
	})
}

// TestPrefetchSkipsBusyShards: a shard another goroutine holds is passed
// over, not waited for (Prefetch is a hint, and two of them taking each
// other's shards in different orders must not deadlock).
func TestPrefetchSkipsBusyShards(t *testing.T) {
	s, _ := newTestStore(t, func(c *Config) { c.Shards = 2 })
	var keys []string
	for i := range 40 {
		k := "key" + strconv.Itoa(i)
		keys = append(keys, k)
		if err := s.Set(k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	busy := s.shardOf(s.hash(keys[0]))
	busy.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Prefetch(keys)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		busy.mu.Unlock()
		t.Fatal("Prefetch waited for a shard held elsewhere")
	}
	busy.mu.Unlock()
	if v, _, ok := s.AppendGet(nil, keys[0]); !ok || string(v) != "v" {
		t.Fatalf("after Prefetch: %q %v", v, ok)
	}
}
