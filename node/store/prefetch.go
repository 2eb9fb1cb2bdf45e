package store

// prefetchBatch is how many keys Prefetch looks at together: enough to
// keep the CPU's outstanding cache misses busy (10-16 on current x86
// cores), few enough to keep its bookkeeping on the stack.
const prefetchBatch = 16

// Prefetch brings into the CPU caches what the lookups of keys will read
// — each key's index slot, then its entry's header and first bytes — so
// that the Get or Set of each key that follows finds them there.
//
// One lookup's reads depend on each other (the slot says where the entry
// is), so a lookup in a store larger than the caches waits for two or
// three memory accesses one after another, and on a virtual machine that
// is most of what a Get costs. Different keys' reads do not depend on
// each other: done in stages, for a whole pipeline of keys at once, their
// misses overlap. A server that has read a batch of requests calls it
// before serving them.
//
// It changes nothing and never waits: a shard locked by someone else is
// skipped (its keys are looked up as usual later).
func (s *Store) Prefetch(keys []string) {
	for len(keys) > 0 {
		n := min(len(keys), prefetchBatch)
		s.prefetch(keys[:n])
		keys = keys[n:]
	}
}

func (s *Store) prefetch(keys []string) {
	var (
		hs     [prefetchBatch]uint64
		shs    [prefetchBatch]*shard
		slots  [prefetchBatch]uint64
		locked [prefetchBatch]*shard
	)
	// Take each shard involved once. TryLock only: waiting for a busy
	// shard would cost more than the misses saved, and taking several
	// locks without an order could deadlock with another Prefetch.
	nl := 0
	for i, k := range keys {
		h := s.hash(k)
		sh := s.shardOf(h)
		held := false
		for _, l := range locked[:nl] {
			if l == sh {
				held = true
				break
			}
		}
		if !held {
			if !sh.mu.TryLock() {
				continue
			}
			locked[nl] = sh
			nl++
		}
		hs[i], shs[i] = h, sh
	}
	// Stage 1: each key's home slot. The loads are independent, so the
	// CPU issues them all before the first one returns.
	for i, sh := range shs[:len(keys)] {
		if sh != nil {
			slots[i] = sh.ix.slots[sh.ix.home(tagOf(hs[i]))]
		}
	}
	// Stage 2: find the slot with the key's tag (a short probe from the
	// home slot, now loaded, rarely past the next cache line) and read a
	// byte of each cache line of the entry's first 128 bytes: its header,
	// its key and, for a small value, all of it.
	var sum uint64
	for i, sh := range shs[:len(keys)] {
		if sh == nil || slots[i] == 0 {
			continue
		}
		tag := tagOf(hs[i])
		m := sh.ix.mask()
		j := sh.ix.home(tag)
		for range 8 {
			v := sh.ix.slots[j]
			if v == 0 {
				break
			}
			if slotTag(v) == tag {
				l := &sh.logs[slotLog(v)]
				p := l.head + ((slotPos(v) - l.head) & posMask)
				c, off := sh.chunk(l, p)
				if off < uint64(len(c)) {
					sum += uint64(c[off])
				}
				if off+127 < uint64(len(c)) {
					sum += uint64(c[off+64]) + uint64(c[off+127])
				}
				break
			}
			j = (j + 1) & m
		}
	}
	for _, sh := range locked[:nl] {
		// Keep the loads: a result nobody reads could be optimised away.
		sh.touched += sum
		sh.mu.Unlock()
	}
}
