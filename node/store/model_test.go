package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// TestModel runs random operations against the store and a plain map and
// checks that the store never returns anything the model would not. With
// ample memory the two must agree exactly; under memory pressure the store
// may have evicted a key (or a tombstone) but must never return a stale or
// foreign value. The model holds tombstones too, and checks what Update's
// fn is shown against it.
func TestModel(t *testing.T) {
	for _, policy := range []string{PolicyS3FIFO, PolicyLRU} {
		for _, tight := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/tight=%v", policy, tight), func(t *testing.T) {
				testModel(t, policy, tight)
			})
		}
	}
}

type modelEntry struct {
	value []byte
	exp   int64
	ver   uint64
	tomb  bool
}

func (e modelEntry) String() string {
	if e.tomb {
		return fmt.Sprintf("tomb v%d exp %d", e.ver, e.exp)
	}
	return fmt.Sprintf("%d bytes v%d exp %d", len(e.value), e.ver, e.exp)
}

// sameEntry reports whether the store's e is the model's m.
func sameEntry(e Entry, m modelEntry) bool {
	if e.Tombstone != m.tomb || e.ExpireAt != m.exp || e.Version != m.ver {
		return false
	}
	if e.Tombstone {
		return e.Value == nil
	}
	return e.Value != nil && bytes.Equal(e.Value, m.value)
}

func testModel(t *testing.T, policy string, tight bool) {
	s, clk := newTestStore(t, func(c *Config) {
		c.Policy = policy
		c.Shards = 2
		c.MaxValueSize = 64 << 10
		if tight {
			c.MaxMemory = 1 << 20
		} else {
			c.MaxMemory = 64 << 20
		}
	})
	seed := uint64(1)
	if v, err := strconv.ParseUint(os.Getenv("STORE_MODEL_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(policy))))
	model := map[string]modelEntry{}
	// present returns k's model state, a tombstone included, dropping it
	// once expired.
	present := func(k string) (modelEntry, bool) {
		e, ok := model[k]
		if ok && e.exp != 0 && e.exp <= clk.Now() {
			delete(model, k)
			return modelEntry{}, false
		}
		return e, ok
	}
	// lost is called when the store lacks a state the model has: fine
	// under memory pressure (eviction), a bug otherwise.
	lost := func(i int, what, k string) {
		t.Helper()
		if !tight {
			t.Fatalf("op %d: %s(%s) lost a key without memory pressure", i, what, k)
		}
		delete(model, k)
	}
	randValue := func() []byte {
		var n int
		switch rng.IntN(10) {
		case 0:
			n = rng.IntN(40000)
		case 1:
			n = 0
		default:
			n = rng.IntN(300)
		}
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(rng.IntN(256))
		}
		return v
	}
	randExp := func(now int64) int64 {
		switch rng.IntN(6) {
		case 0, 1:
			return now + int64(rng.IntN(50)) + 1
		case 2:
			return now - int64(rng.IntN(3)) // already expired: a removal
		}
		return 0
	}
	// checkCur compares what Update's fn was shown with the model; it
	// returns a problem, as fn cannot fail the test while the shard is
	// locked.
	checkCur := func(i int, k string, cur Entry, found bool) string {
		m, ok := present(k)
		switch {
		case found && !ok:
			return fmt.Sprintf("op %d: Update(%s) showed %+v, the model has nothing", i, k, cur)
		case found && !sameEntry(cur, m):
			return fmt.Sprintf("op %d: Update(%s) showed %+v, model %v", i, k, cur, m)
		case !found && ok:
			if !tight {
				return fmt.Sprintf("op %d: Update(%s) lost a key without memory pressure", i, k)
			}
			delete(model, k)
		}
		return ""
	}
	// store records a write the store reports applied.
	store := func(k string, e modelEntry) {
		if e.exp != 0 && e.exp <= clk.Now() {
			delete(model, k)
			return
		}
		model[k] = e
	}
	ops := 80000
	if testing.Short() {
		ops = 10000
	}
	nkeys := 3000
	for i := range ops {
		k := fmt.Sprintf("key-%d", rng.IntN(nkeys))
		now := clk.Now()
		switch op := rng.IntN(30); {
		case op < 6: // SetWith, sometimes conditional
			v := randValue()
			exp := int64(0)
			if rng.IntN(3) == 0 {
				exp = now + int64(rng.IntN(50)) + 1
			}
			ver := uint64(0)
			if rng.IntN(2) == 0 {
				ver = rng.Uint64N(100) + 1
			}
			opt := SetOptions{ExpireAt: exp, Version: ver, IfNewer: rng.IntN(4) == 0, IfAbsent: rng.IntN(8) == 0}
			m, ok := present(k)
			want := !(opt.IfAbsent && ok && !m.tomb) && !(opt.IfNewer && ver <= m.ver)
			r, err := s.SetWith(k, v, opt)
			if err != nil {
				t.Fatal(err)
			}
			if r.HadOld && (!ok || m.tomb) {
				t.Fatalf("op %d: SetWith(%s) had an old value the model does not (%v)", i, k, m)
			}
			if r.Stored != want || r.HadOld != (ok && !m.tomb) {
				if !r.Stored && want {
					t.Fatalf("op %d: SetWith(%s, %+v) refused, model %v", i, k, opt, m)
				}
				lost(i, "SetWith", k) // the store no longer had what refused the write
			}
			if r.Stored {
				store(k, modelEntry{value: v, exp: exp, ver: ver})
			}
		case op < 8: // tombstone write, as a replicated delete
			opt := SetOptions{Tombstone: true, Version: rng.Uint64N(100) + 1, IfNewer: rng.IntN(2) == 0, ExpireAt: randExp(now)}
			m, ok := present(k)
			want := !(opt.IfNewer && opt.Version <= m.ver)
			r, err := s.SetWith(k, []byte("ignored"), opt)
			if err != nil {
				t.Fatal(err)
			}
			if r.HadOld && (!ok || m.tomb) {
				t.Fatalf("op %d: tombstone over %s had an old value the model does not (%v)", i, k, m)
			}
			if r.Stored != want {
				if !r.Stored {
					t.Fatalf("op %d: tombstone %+v over %s refused, model %v", i, opt, k, m)
				}
				lost(i, "SetWith", k)
			}
			if r.Stored {
				store(k, modelEntry{exp: opt.ExpireAt, ver: opt.Version, tomb: true})
			}
		case op < 12:
			_, isLive := s.TTL(k)
			delta := rng.Int64N(1000) - 500
			n, err := s.IncrBy(k, delta)
			e, mok := present(k)
			if isLive && (!mok || e.tomb) {
				t.Fatalf("op %d: IncrBy(%s) found a key the model does not have", i, k)
			}
			if !isLive {
				if mok && !e.tomb {
					lost(i, "IncrBy", k)
				}
				e = modelEntry{} // a tombstone or nothing: start from 0
			}
			cur, isInt := parseInt(e.value)
			if len(e.value) == 0 {
				cur, isInt = 0, !isLive
			}
			if !isInt {
				if !errors.Is(err, ErrNotInteger) {
					t.Fatalf("op %d: IncrBy(%s) on %q = %d, %v", i, k, e.value, n, err)
				}
				break
			}
			if err != nil || n != cur+delta {
				t.Fatalf("op %d: IncrBy(%s) on %q = %d, %v; want %d", i, k, e.value, n, err, cur+delta)
			}
			e.value = strconv.AppendInt(nil, n, 10)
			model[k] = e
		case op < 13: // Get, GetEntry or AppendGetEntry
			var got []byte
			var exp int64
			var ok bool
			var ver uint64
			variant := rng.IntN(3)
			switch variant {
			case 0:
				got, exp, ok = s.Get(k)
			case 1:
				got, exp, ver, ok = s.GetEntry(k)
			default:
				got, exp, ver, ok = s.AppendGetEntry([]byte("x"), k)
				if len(got) == 0 || got[0] != 'x' {
					t.Fatalf("op %d: AppendGetEntry(%s) lost its prefix", i, k)
				}
				got = got[1:]
			}
			e, mok := present(k)
			if ok && (!mok || e.tomb) {
				t.Fatalf("op %d: Get(%s) found a value the model does not have (%v)", i, k, e)
			}
			if ok && (!bytes.Equal(got, e.value) || exp != e.exp || (variant != 0 && ver != e.ver)) {
				t.Fatalf("op %d: Get(%s) = %d bytes exp %d v%d, model %v", i, k, len(got), exp, ver, e)
			}
			if !ok && mok && !e.tomb {
				lost(i, "Get", k)
			}
		case op < 14:
			ok := s.Delete(k)
			e, mok := present(k)
			if ok && (!mok || e.tomb) {
				t.Fatalf("op %d: Delete(%s) found a key the model does not have", i, k)
			}
			if !tight && ok != (mok && !e.tomb) {
				t.Fatalf("op %d: Delete(%s) = %v, model %v", i, k, ok, e)
			}
			delete(model, k)
		case op < 15:
			exp := now + int64(rng.IntN(50))
			if rng.IntN(4) == 0 {
				exp = 0
			}
			ok := s.Expire(k, exp)
			e, mok := present(k)
			if ok && (!mok || e.tomb) {
				t.Fatalf("op %d: Expire(%s) found a key the model does not have", i, k)
			}
			if !tight && ok != (mok && !e.tomb) {
				t.Fatalf("op %d: Expire(%s) = %v, model %v", i, k, ok, e)
			}
			switch {
			case ok:
				e.exp = exp
				store(k, e)
			case mok && !e.tomb:
				delete(model, k) // evicted
			}
		case op < 16:
			add := make([]byte, rng.IntN(20))
			for j := range add {
				add[j] = byte(rng.IntN(256))
			}
			_, isLive := s.TTL(k)
			n, err := s.Append(k, add)
			if err != nil {
				t.Fatal(err)
			}
			e, mok := present(k)
			if isLive && (!mok || e.tomb) {
				t.Fatalf("op %d: Append(%s) found a key the model does not have", i, k)
			}
			if !isLive {
				if mok && !e.tomb {
					lost(i, "Append", k)
				}
				e = modelEntry{} // a tombstone or nothing: start afresh
			}
			if n != len(e.value)+len(add) {
				t.Fatalf("op %d: Append(%s) = %d, model %d+%d", i, k, n, len(e.value), len(add))
			}
			e.value = append(append([]byte(nil), e.value...), add...)
			model[k] = e
		case op < 17:
			ver, ok := s.Version(k)
			e, mok := present(k)
			if ok && (!mok || ver != e.ver) {
				t.Fatalf("op %d: Version(%s) = %d,%v model %v,%v", i, k, ver, ok, e, mok)
			}
			if !ok && mok {
				lost(i, "Version", k)
			}
		case op < 19:
			got, ok := s.Lookup(k)
			e, mok := present(k)
			if ok && (!mok || !sameEntry(got, e)) {
				t.Fatalf("op %d: Lookup(%s) = %+v, model %v,%v", i, k, got, e, mok)
			}
			if !ok && mok {
				lost(i, "Lookup", k)
			}
		case op < 20:
			for sh := range s.NumShards() {
				s.SweepShard(sh, 100)
			}
		case op < 21:
			clk.Advance(3)
		case op < 23: // CompareAndSwap on the stored version
			old, oldOK := s.Version(k)
			e, mok := present(k)
			if oldOK && (!mok || old != e.ver) {
				t.Fatalf("op %d: key %s has version %d, model %v,%v", i, k, old, e, mok)
			}
			if !oldOK {
				if mok {
					lost(i, "Version", k)
				}
				e, mok = modelEntry{}, false
			}
			v := randValue()
			swapped, err := s.CompareAndSwap(k, old, v, SetOptions{Version: old + 1, KeepTTL: true})
			if err != nil || !swapped {
				t.Fatalf("op %d: CAS(%s, %d) = %v, %v", i, k, old, swapped, err)
			}
			if !mok || e.tomb {
				e.exp = 0 // KeepTTL keeps only a live entry's expiry
			}
			model[k] = modelEntry{value: v, exp: e.exp, ver: old + 1}
		case op < 27: // Update as a replica applies a copy: last writer wins
			in := Entry{Version: rng.Uint64N(100) + 1, ExpireAt: randExp(now)}
			if rng.IntN(3) == 0 {
				in.Tombstone = true
			} else {
				in.Value = randValue()
			}
			var problem string
			fn := func(cur Entry, found bool) (Entry, bool) {
				problem = checkCur(i, k, cur, found)
				return in, !found || cur.Version < in.Version
			}
			noCopy := rng.IntN(2) == 0
			var ret Entry
			var wrote bool
			var err error
			if noCopy {
				wrote, err = s.UpdateNoCopy(k, fn)
			} else {
				ret, wrote, err = s.Update(k, fn)
			}
			if err != nil || problem != "" {
				t.Fatal(err, problem)
			}
			if wrote {
				next := modelEntry{value: in.Value, exp: in.ExpireAt, ver: in.Version, tomb: in.Tombstone}
				if in.Tombstone {
					next.value = nil
				}
				store(k, next)
			}
			if m, ok := present(k); !noCopy && ((ok && !sameEntry(ret, m)) || (!ok && (ret.Value != nil || ret.Tombstone))) {
				t.Fatalf("op %d: Update(%s) returned %+v, model %v,%v", i, k, ret, m, ok)
			}
		default: // Update deriving the next state from cur
			var problem string
			write := rng.IntN(5) != 0
			b := byte(rng.IntN(256))
			ret, wrote, err := s.Update(k, func(cur Entry, found bool) (Entry, bool) {
				problem = checkCur(i, k, cur, found)
				if !found || cur.Tombstone {
					return Entry{Value: []byte{b}, Version: cur.Version + 1}, write
				}
				cur.Value = append(cur.Value, b) // may alias cur's scratch
				cur.Version++
				return cur, write
			})
			if err != nil || problem != "" || wrote != write {
				t.Fatal(err, problem, wrote)
			}
			if wrote {
				e, ok := present(k)
				if !ok || e.tomb {
					e = modelEntry{ver: e.ver} // a tombstone's version carries on
				}
				e.value = append(append([]byte(nil), e.value...), b)
				e.ver++
				store(k, e)
			}
			if m, ok := present(k); (ok && !sameEntry(ret, m)) || (!ok && (ret.Value != nil || ret.Tombstone)) {
				t.Fatalf("op %d: Update(%s) returned %+v, model %v,%v", i, k, ret, m, ok)
			}
		}
		if i%5000 == 0 {
			st := s.Stats()
			if st.Bytes > st.MaxMemory {
				t.Fatalf("op %d: %d bytes > max %d", i, st.Bytes, st.MaxMemory)
			}
		}
	}
	// Final full comparison through RangeEntries and Range.
	seen, seenLive := 0, 0
	s.RangeEntries(func(key string, e Entry) bool {
		m, ok := present(key)
		if !ok || !sameEntry(e, m) {
			t.Fatalf("RangeEntries(%s) = %+v, model %v,%v", key, e, m, ok)
		}
		seen++
		return true
	})
	seenExpiring := 0
	s.Range(func(key string, value []byte, exp int64, ver uint64) bool {
		m, ok := present(key)
		if !ok || m.tomb || !bytes.Equal(m.value, value) || m.exp != exp || m.ver != ver {
			t.Fatalf("Range(%s) disagrees with the model", key)
		}
		seenLive++
		if exp != 0 {
			seenExpiring++
		}
		return true
	})
	keys := 0
	s.RangeKeys(func(key string, tomb bool, exp int64) bool {
		if m, ok := present(key); !ok || m.tomb != tomb || m.exp != exp {
			t.Fatalf("RangeKeys(%s) tomb=%v exp=%d, model %v,%v", key, tomb, exp, m, ok)
		}
		keys++
		return true
	})
	if keys != seen {
		t.Fatalf("RangeKeys saw %d keys, RangeEntries %d", keys, seen)
	}
	n, tombs := 0, 0
	for k := range model {
		if e, ok := present(k); ok && e.tomb {
			tombs++
		} else if ok {
			n++
		}
	}
	// Reclaim everything expired, so that the counts are exact: each call
	// finishes the log the cursor is in, then walks the other one.
	for sh := range s.NumShards() {
		s.SweepShard(sh, 1<<30)
		s.SweepShard(sh, 1<<30)
	}
	st := s.Stats()
	if s.Len() != int(st.Entries) || st.Entries > int64(n) || st.Tombstones > int64(tombs) || seen != seenLive+int(st.Tombstones) {
		t.Fatalf("Len %d, %+v; model %d entries, %d tombstones; ranges saw %d, %d", s.Len(), st, n, tombs, seen, seenLive)
	}
	// Everything expired is reclaimed, so each entry Range saw with an
	// expiry is one the store counts.
	if st.Expiring != int64(seenExpiring) {
		t.Fatalf("Stats.Expiring %d, Range saw %d entries with an expiry", st.Expiring, seenExpiring)
	}
	if !tight && (seenLive != n || st.Entries != int64(n) || st.Tombstones != int64(tombs) || st.Evictions != 0) {
		t.Fatalf("Range saw %d entries, model has %d; stats %+v, model %d tombstones", seenLive, n, st, tombs)
	}
	t.Logf("%d entries, %d tombstones; %+v", n, tombs, st)
}
