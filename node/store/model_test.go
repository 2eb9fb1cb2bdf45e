package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// TestModel runs random operations against the store and a plain map and
// checks that the store never returns anything the model would not. With
// ample memory the two must agree exactly; under memory pressure the store
// may have evicted a key but must never return a stale or foreign value.
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
	live := func(k string) (modelEntry, bool) {
		e, ok := model[k]
		if ok && e.exp != 0 && e.exp <= clk.Now() {
			delete(model, k)
			return e, false
		}
		return e, ok
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
	ops := 60000
	if testing.Short() {
		ops = 10000
	}
	nkeys := 3000
	for i := range ops {
		k := fmt.Sprintf("key-%d", rng.IntN(nkeys))
		now := clk.Now()
		switch op := rng.IntN(20); {
		case op < 6:
			v := randValue()
			exp := int64(0)
			if rng.IntN(3) == 0 {
				exp = now + int64(rng.IntN(50)) + 1
			}
			ver := uint64(0)
			if rng.IntN(2) == 0 {
				ver = rng.Uint64N(100) + 1
			}
			if _, err := s.SetWith(k, v, SetOptions{ExpireAt: exp, Version: ver}); err != nil {
				t.Fatal(err)
			}
			model[k] = modelEntry{value: v, exp: exp, ver: ver}
		case op < 12:
			got, exp, ok := s.Get(k)
			e, mok := live(k)
			if ok && !mok {
				t.Fatalf("op %d: Get(%s) found a value the model does not have", i, k)
			}
			if ok && (!bytes.Equal(got, e.value) || exp != e.exp) {
				t.Fatalf("op %d: Get(%s) = %d bytes exp %d, model %d bytes exp %d", i, k, len(got), exp, len(e.value), e.exp)
			}
			if !ok && mok {
				if !tight {
					t.Fatalf("op %d: Get(%s) lost a key without memory pressure", i, k)
				}
				delete(model, k) // evicted
			}
		case op < 13:
			ok := s.Delete(k)
			_, mok := live(k)
			if ok && !mok {
				t.Fatalf("op %d: Delete(%s) found a key the model does not have", i, k)
			}
			if !tight && ok != mok {
				t.Fatalf("op %d: Delete(%s) = %v, model %v", i, k, ok, mok)
			}
			delete(model, k)
		case op < 14:
			exp := now + int64(rng.IntN(50))
			if rng.IntN(4) == 0 {
				exp = 0
			}
			ok := s.Expire(k, exp)
			e, mok := live(k)
			if ok && !mok {
				t.Fatalf("op %d: Expire(%s) found a key the model does not have", i, k)
			}
			if !tight && ok != mok {
				t.Fatalf("op %d: Expire(%s) = %v, model %v", i, k, ok, mok)
			}
			if ok {
				if exp != 0 && exp <= now {
					delete(model, k)
				} else {
					e.exp = exp
					model[k] = e
				}
			} else {
				delete(model, k)
			}
		case op < 15:
			add := make([]byte, rng.IntN(20))
			for j := range add {
				add[j] = byte(rng.IntN(256))
			}
			_, present := s.Version(k)
			n, err := s.Append(k, add)
			if err != nil {
				t.Fatal(err)
			}
			e, mok := live(k)
			if present && !mok {
				t.Fatalf("op %d: Append(%s) found a key the model does not have", i, k)
			}
			if !present {
				if !tight && mok {
					t.Fatalf("op %d: Append(%s) lost a key without memory pressure", i, k)
				}
				e = modelEntry{} // evicted before the append
			}
			if n != len(e.value)+len(add) {
				t.Fatalf("op %d: Append(%s) = %d, model %d+%d", i, k, n, len(e.value), len(add))
			}
			e.value = append(append([]byte(nil), e.value...), add...)
			model[k] = e
		case op < 16:
			ver, ok := s.Version(k)
			e, mok := live(k)
			if ok && (!mok || ver != e.ver) {
				t.Fatalf("op %d: Version(%s) = %d,%v model %d,%v", i, k, ver, ok, e.ver, mok)
			}
		case op < 17:
			for sh := range s.NumShards() {
				s.SweepShard(sh, 100)
			}
		case op < 18:
			clk.Advance(3)
		default:
			old, oldOK := s.Version(k)
			e, mok := live(k)
			if oldOK && !mok {
				t.Fatalf("op %d: key %s present but not in model", i, k)
			}
			if !oldOK {
				delete(model, k)
				e, mok = modelEntry{}, false
			}
			v := randValue()
			swapped, err := s.CompareAndSwap(k, old, v, SetOptions{Version: old + 1, KeepTTL: true})
			if err != nil || !swapped {
				t.Fatalf("op %d: CAS(%s, %d) = %v, %v", i, k, old, swapped, err)
			}
			if !mok {
				e.exp = 0
			}
			model[k] = modelEntry{value: v, exp: e.exp, ver: old + 1}
		}
		if i%5000 == 0 {
			st := s.Stats()
			if st.Bytes > st.MaxMemory {
				t.Fatalf("op %d: %d bytes > max %d", i, st.Bytes, st.MaxMemory)
			}
		}
	}
	// Final full comparison through Range.
	seen := 0
	s.Range(func(key string, value []byte, exp int64, ver uint64) bool {
		e, ok := live(key)
		if !ok || !bytes.Equal(e.value, value) || e.exp != exp || e.ver != ver {
			t.Fatalf("Range(%s) disagrees with the model", key)
		}
		seen++
		return true
	})
	if !tight {
		n := 0
		for k := range model {
			if _, ok := live(k); ok {
				n++
			}
		}
		if seen != n || s.Stats().Evictions != 0 {
			t.Fatalf("Range saw %d entries, model has %d (evictions %d)", seen, n, s.Stats().Evictions)
		}
	}
}
