package store

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shardState is a deep copy of everything in a shard that a read could
// change: index, logs and their bytes, ghost filter, counters.
type shardState struct {
	slots    []uint64
	logs     [2]logState
	chunks   int64
	ghostCur []uint64
	ghostOld []uint64
	ghostAdd int
	tombs    int
	stats    shardStats
}

type logState struct {
	head, tail, lo, hi uint64
	dead               int64
	n                  int
	bytes              []byte // every allocated chunk, in slot order
}

func snapshot(s *Store) []shardState {
	out := make([]shardState, len(s.shards))
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st := shardState{
			slots:    append([]uint64(nil), sh.ix.slots...),
			chunks:   sh.chunks,
			ghostCur: append([]uint64(nil), sh.gh.cur...),
			ghostOld: append([]uint64(nil), sh.gh.old...),
			ghostAdd: sh.gh.added,
			tombs:    sh.tombs,
			stats:    sh.stats,
		}
		for li := range sh.logs {
			l := &sh.logs[li]
			ls := logState{head: l.head, tail: l.tail, lo: l.lo, hi: l.hi, dead: l.dead, n: l.n}
			for _, c := range l.chunks {
				ls.bytes = append(ls.bytes, c...)
			}
			st.logs[li] = ls
		}
		sh.mu.Unlock()
		out[i] = st
	}
	return out
}

// allUnlocked fails the test if Prefetch left any shard locked.
func allUnlocked(t *testing.T, s *Store) {
	t.Helper()
	for i := range s.shards {
		if !s.shards[i].mu.TryLock() {
			t.Fatalf("shard %d is still locked after Prefetch", i)
		}
		s.shards[i].mu.Unlock()
	}
}

// TestPrefetchChangesNothing: whatever keys a pipeline names — present,
// absent, expired, deleted, duplicated, empty, values crossing chunk
// boundaries, batches longer than one prefetch pass — Prefetch leaves
// every byte of the store as it was (index, logs, S3-FIFO frequency bits
// and LRU order, ghost filter, counters, expired entries unreclaimed) and
// every shard unlocked, and reads return what they did before.
func TestPrefetchChangesNothing(t *testing.T) {
	forEachPolicy(t, func(t *testing.T, policy string) {
		// Small chunks (MaxMemory/Shards/64 = 4 KiB) so that many
		// entries straddle a chunk boundary or sit at a chunk's end.
		s, clk := newTestStore(t, func(c *Config) { c.Policy = policy; c.Shards = 4; c.MaxMemory = 1 << 20 })
		now := clk.Now()
		var keys []string
		for i := range 300 {
			k := "key" + strconv.Itoa(i)
			keys = append(keys, k)
			exp := int64(0)
			if i%7 == 0 {
				exp = now + int64(time.Second)
			}
			val := strings.Repeat(strconv.Itoa(i%10), 1+i%300) // 1..300 bytes
			if err := s.Set(k, []byte(val), exp); err != nil {
				t.Fatal(err)
			}
			if i%11 == 0 {
				s.Delete(k)
			}
		}
		for _, k := range keys[:50] { // some entries with raised frequency / moved in LRU
			s.AppendGet(nil, k)
		}
		clk.Advance(2 * time.Second) // every seventh key has expired
		keys = append(keys, "absent", "absent", keys[3], "", keys[50])

		before := snapshot(s)
		s.Prefetch(keys)
		s.Prefetch(keys[:1])
		s.Prefetch(nil)
		allUnlocked(t, s)
		if after := snapshot(s); !reflect.DeepEqual(after, before) {
			for i := range after {
				if !reflect.DeepEqual(after[i], before[i]) {
					t.Fatalf("Prefetch changed shard %d", i)
				}
			}
		}

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
		want := readAll()
		s.Prefetch(keys)
		got := readAll()
		for i := range keys {
			if got[i].ok != want[i].ok || !bytes.Equal(got[i].v, want[i].v) {
				t.Errorf("%q: after Prefetch %q/%v, before %q/%v", keys[i], got[i].v, got[i].ok, want[i].v, want[i].ok)
			}
		}
		for i, k := range keys[:300] {
			wantOK := i%7 != 0 && i%11 != 0
			if want[i].ok != wantOK {
				t.Errorf("%q: present %v, want %v", k, want[i].ok, wantOK)
			}
		}
	})
}

// TestPrefetchSkipsBusyShards: a shard another goroutine holds is passed
// over, not waited for (Prefetch is a hint, and two of them taking each
// other's shards in different orders must not deadlock), and the shards
// it did take are all given back.
func TestPrefetchSkipsBusyShards(t *testing.T) {
	s, _ := newTestStore(t, func(c *Config) { c.Shards = 4 })
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
	for i := range s.shards {
		if sh := &s.shards[i]; sh != busy {
			if !sh.mu.TryLock() {
				t.Fatalf("shard %d left locked", i)
			}
			sh.mu.Unlock()
		}
	}
	busy.mu.Unlock()
	for _, k := range keys {
		if v, _, ok := s.AppendGet(nil, k); !ok || string(v) != "v" {
			t.Fatalf("%s after Prefetch: %q %v", k, v, ok)
		}
	}
}
