package store

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"sync"
)

// Entry layout in a log (little endian, no alignment):
//
//	value length u32 | key length u24 | flags u8 | [expireAt i64] | [version u64] | key | value
//
// expireAt is present only with flagExp and version only with flagVer, so an
// entry without TTL or version costs 8 header bytes. A tombstone (flagTomb)
// is an entry with no value: it records that key was deleted at version, and
// expireAt is when it may be forgotten.
const (
	hdrSize   = 8
	flagDead  = 1 << 0 // the entry was deleted, replaced, moved or evicted
	flagExp   = 1 << 1
	flagVer   = 1 << 2
	freqShift = 3 // two bits of access frequency (S3-FIFO), saturating at 3
	freqMask  = 3 << freqShift
	maxFreq   = 3
	flagTomb  = 1 << 5 // a deletion marker; the value is empty

	// layoutFlags are the flags that change what an entry's bytes mean: an
	// entry may be overwritten in place only by one with the same ones.
	layoutFlags = flagExp | flagVer | flagTomb
)

// Log numbers. LRU uses only logSmall.
const (
	logSmall = 0 // S3-FIFO's small probationary FIFO
	logMain  = 1 // S3-FIFO's main FIFO
)

// An LRU hit moves the entry to the log's tail and leaves a hole, and the
// head reaches holes only in LRU order, so under a read-heavy load most of
// the log would be holes and eviction would drop live entries with the
// memory far from full of them. When eviction finds at least
// lruCompactN/lruCompactD of the log dead, it moves the head entry to the
// tail instead of evicting it: the head passes the holes behind it, at the
// cost of keeping that least recently used entry for another round. After
// lruDenseMax such moves in a row that passed no hole it evicts one entry,
// which bounds the work a write can do when the holes lie far from the
// head.
const (
	lruCompactN = 1
	lruCompactD = 2
	lruDenseMax = 16
)

// promoteFreq is the access count at which an entry leaving the small queue
// is promoted to the main queue rather than evicted.
const promoteFreq = 1

// smallPercent is the small queue's share of the logs' bytes.
const smallPercent = 10

// flog is an append-only byte log made of fixed-size chunks. Positions grow
// forever; the chunk holding position p is chunks[(p>>shift)&mask]. Live
// data lies in [head, tail); chunks wholly below head are released.
type flog struct {
	chunks [][]byte
	head   uint64
	tail   uint64
	lo, hi uint64 // chunk numbers [lo, hi) are allocated
	dead   int64  // bytes of dead entries in [head, tail)
	n      int    // live entries

	compacting bool // see compactLocked
}

func (l *flog) span() int64 { return int64(l.tail - l.head) }

// ref locates a live entry found under the shard lock. It is valid until
// the next change to the shard.
type ref struct {
	slot  uint64 // index slot
	pos   uint64 // full log position
	log   uint8
	flags uint8
	klen  uint32
	vlen  uint32
}

func extraSize(flags uint8) uint64 {
	return uint64(flags>>1&1)*8 + uint64(flags>>2&1)*8
}

func (r *ref) size() uint64   { return hdrSize + extraSize(r.flags) + uint64(r.klen) + uint64(r.vlen) }
func (r *ref) keyPos() uint64 { return r.pos + hdrSize + extraSize(r.flags) }
func (r *ref) valPos() uint64 { return r.keyPos() + uint64(r.klen) }
func (r *ref) freq() int      { return int(r.flags&freqMask) >> freqShift }
func (r *ref) tomb() bool     { return r.flags&flagTomb != 0 }

func entryFlags(exp int64, ver uint64, tomb bool) uint8 {
	var f uint8
	if exp != 0 {
		f |= flagExp
	}
	if ver != 0 {
		f |= flagVer
	}
	if tomb {
		f |= flagTomb
	}
	return f
}

// shard is one independently locked partition: an index, two logs, a ghost
// filter and the counters. Everything it allocates is pointer-free except
// the chunk table, so the GC's work does not grow with the entry count.
type shard struct {
	mu sync.Mutex

	lru        bool
	seed       maphash.Seed
	clock      func() int64 // the store's clock, for findLocked's nowLazy
	budget     int64        // bytes this shard may use
	chunkShift uint
	chunkSize  int64
	slotMask   uint64

	ix     index
	logs   [2]flog
	gh     ghost
	chunks int64  // chunks allocated, including spare
	spare  []byte // one released chunk kept for reuse

	view  []byte // scratch for values that straddle chunks
	build []byte // scratch for composed values (Append)
	move  []byte // scratch for relocating entries (eviction, compaction)
	hit   []byte // scratch for an entry an LRU hit moves

	sweepLog int
	sweepPos uint64

	tombs int // tombstones among the logs' entries (counted in flog.n)
	exps  int // live entries with an expiry (see expiresLocked)

	lruDense int // LRU compaction moves in a row that passed no hole

	touched uint64 // sink for Prefetch's loads, so that they are kept

	stats shardStats
	_     [64]byte // keep neighbouring shards' locks off one cache line
}

func (sh *shard) init(cfg *Config, seed maphash.Seed, budget int64, clock func() int64) {
	sh.clock = clock
	sh.lru = cfg.Policy == PolicyLRU
	sh.seed = seed
	sh.budget = budget
	cs := budget / 64
	cs = max(min(cs, 1<<20), 4<<10)
	sh.chunkShift = uint(bits.Len64(uint64(cs)) - 1)
	sh.chunkSize = 1 << sh.chunkShift
	nslots := budget/sh.chunkSize + 4
	nslots = 1 << bits.Len64(uint64(nslots-1))
	sh.slotMask = uint64(nslots - 1)
	for i := range sh.logs {
		sh.logs[i] = flog{chunks: make([][]byte, nslots)}
	}
	sh.ix.init(minIndexBits)
	sh.gh.reset(0)
}

// usedLocked is the memory charged to the shard.
func (sh *shard) usedLocked() int64 {
	return sh.chunks*sh.chunkSize + sh.ix.bytes() + sh.gh.bytes()
}

func (sh *shard) bytesLocked() int64 { return sh.usedLocked() }

func (sh *shard) lenLocked() int { return sh.logs[0].n + sh.logs[1].n - sh.tombs }

// expiresLocked reports whether the entry of flags fl at pos in l counts
// in exps: a value, not a tombstone, with an expiry. PERSIST leaves an
// entry's expiry field in place, zeroed (setExpireLocked), so the flag
// alone does not tell.
func (sh *shard) expiresLocked(l *flog, pos uint64, fl uint8) bool {
	return fl&(flagExp|flagTomb) == flagExp && sh.u64At(l, pos+hdrSize) != 0
}

// ---- raw log access -------------------------------------------------------

func (sh *shard) chunk(l *flog, p uint64) ([]byte, uint64) {
	return l.chunks[(p>>sh.chunkShift)&sh.slotMask], p & uint64(sh.chunkSize-1)
}

func (sh *shard) readAt(l *flog, p uint64, dst []byte) {
	for len(dst) > 0 {
		c, off := sh.chunk(l, p)
		n := copy(dst, c[off:])
		dst = dst[n:]
		p += uint64(n)
	}
}

func (sh *shard) writeAt(l *flog, p uint64, src []byte) {
	for len(src) > 0 {
		c, off := sh.chunk(l, p)
		n := copy(c[off:], src)
		src = src[n:]
		p += uint64(n)
	}
}

// bytesAt returns n bytes at p: a slice of the chunk when they do not
// straddle a boundary, else a copy in scratch.
func (sh *shard) bytesAt(l *flog, p uint64, n int, scratch *[]byte) []byte {
	c, off := sh.chunk(l, p)
	if int(off)+n <= len(c) {
		return c[off : int(off)+n : int(off)+n]
	}
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	b := (*scratch)[:n]
	sh.readAt(l, p, b)
	return b
}

func (sh *shard) u64At(l *flog, p uint64) uint64 {
	c, off := sh.chunk(l, p)
	if off+8 <= uint64(len(c)) {
		return binary.LittleEndian.Uint64(c[off:])
	}
	var b [8]byte
	sh.readAt(l, p, b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func (sh *shard) putU64At(l *flog, p uint64, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	sh.writeAt(l, p, b[:])
}

// header decodes the entry header at p.
func (sh *shard) header(l *flog, p uint64) (vlen, klen uint32, flags uint8) {
	w := sh.u64At(l, p)
	return uint32(w), uint32(w>>32) & (1<<24 - 1), uint8(w >> 56)
}

func (sh *shard) setFlags(l *flog, p uint64, flags uint8) {
	c, off := sh.chunk(l, p+7)
	c[off] = flags
}

func (sh *shard) keyEqual(l *flog, p uint64, key string) bool {
	for len(key) > 0 {
		c, off := sh.chunk(l, p)
		n := min(len(key), len(c)-int(off))
		if string(c[off:int(off)+n]) != key[:n] {
			return false
		}
		key = key[n:]
		p += uint64(n)
	}
	return true
}

// refAt builds a ref for the live entry at (li, p), finding its index slot.
func (sh *shard) refAt(li int, p uint64) (ref, uint64) {
	l := &sh.logs[li]
	vlen, klen, fl := sh.header(l, p)
	r := ref{pos: p, log: uint8(li), flags: fl, klen: klen, vlen: vlen}
	h := maphash.Bytes(sh.seed, sh.bytesAt(l, r.keyPos(), int(klen), &sh.view))
	r.slot = sh.ix.find(packSlot(tagOf(h), li, p))
	return r, h
}

// ---- chunk management -----------------------------------------------------

func (sh *shard) newChunk() []byte {
	if c := sh.spare; c != nil {
		sh.spare = nil
		return c
	}
	sh.chunks++
	return make([]byte, sh.chunkSize)
}

func (sh *shard) releaseChunk(c []byte) {
	if sh.spare == nil {
		sh.spare = c
		return
	}
	sh.chunks--
}

// chunksNeeded is how many chunks appending n bytes to l would allocate.
func (sh *shard) chunksNeeded(l *flog, n uint64) int64 {
	end := (l.tail+n-1)>>sh.chunkShift + 1
	if end <= l.hi {
		return 0
	}
	return int64(end - max(l.hi, l.tail>>sh.chunkShift))
}

// appendLocked reserves n bytes at l's tail, allocating chunks without
// checking the budget (callers do that), and returns their position.
func (sh *shard) appendLocked(l *flog, n uint64) uint64 {
	if l.head == l.tail && l.lo == l.hi {
		l.lo = l.tail >> sh.chunkShift
		l.hi = l.lo
	}
	end := (l.tail+n-1)>>sh.chunkShift + 1
	for l.hi < end {
		l.chunks[l.hi&sh.slotMask] = sh.newChunk()
		l.hi++
	}
	p := l.tail
	l.tail += n
	return p
}

// advanceHeadLocked skips dead entries at l's head and releases chunks the
// head has left.
func (sh *shard) advanceHeadLocked(l *flog) {
	for l.head < l.tail {
		vlen, klen, fl := sh.header(l, l.head)
		if fl&flagDead == 0 {
			break
		}
		sz := hdrSize + extraSize(fl) + uint64(klen) + uint64(vlen)
		l.head += sz
		l.dead -= int64(sz)
	}
	limit := l.head >> sh.chunkShift
	if l.head == l.tail && l.head&uint64(sh.chunkSize-1) == 0 {
		limit = l.head >> sh.chunkShift // tail chunk not yet written: release all
	}
	for l.lo < limit && l.lo < l.hi {
		i := l.lo & sh.slotMask
		sh.releaseChunk(l.chunks[i])
		l.chunks[i] = nil
		l.lo++
	}
}

// ---- entry operations -----------------------------------------------------

// nowLazy, passed as a time, has the clock read only if an entry with an
// expiry makes it matter: most reads and writes meet none, and reading the
// clock can cost as much as the lookup itself (~50 ns on some virtual
// machines).
const nowLazy = math.MinInt64

// findLocked looks key up, a tombstone included (callers check r.tomb());
// an expired entry or tombstone is reclaimed and reported absent. now may
// be nowLazy.
func (sh *shard) findLocked(h uint64, key string, now int64) (ref, bool) {
	tag := tagOf(h)
	m := sh.ix.mask()
	for i := sh.ix.home(tag); ; i = (i + 1) & m {
		v := sh.ix.slots[i]
		if v == 0 {
			return ref{}, false
		}
		if slotTag(v) != tag {
			continue
		}
		li := slotLog(v)
		l := &sh.logs[li]
		p := l.head + ((slotPos(v) - l.head) & posMask)
		vlen, klen, fl := sh.header(l, p)
		if int(klen) != len(key) {
			continue
		}
		r := ref{slot: i, pos: p, log: uint8(li), flags: fl, klen: klen, vlen: vlen}
		if !sh.keyEqual(l, r.keyPos(), key) {
			continue
		}
		if fl&flagExp != 0 {
			if now == nowLazy {
				now = sh.clock()
			}
			if exp := int64(sh.u64At(l, p+hdrSize)); exp != 0 && exp <= now {
				sh.killLocked(&r)
				sh.stats.expirations++
				return ref{}, false
			}
		}
		return r, true
	}
}

// killLocked marks r dead and removes it from the index.
func (sh *shard) killLocked(r *ref) {
	sh.detachLocked(r)
	sh.ix.remove(r.slot)
}

// detachLocked marks r dead in its log but leaves its index slot, so that
// the key can be moved to a new position without its slot moving (see
// reattachLocked). Until then the slot points at a dead entry: the caller
// must reattach or remove it before releasing the shard lock.
func (sh *shard) detachLocked(r *ref) {
	l := &sh.logs[r.log]
	if sh.expiresLocked(l, r.pos, r.flags) {
		sh.exps--
	}
	sh.setFlags(l, r.pos, r.flags|flagDead)
	l.dead += int64(r.size())
	l.n--
	if r.tomb() {
		sh.tombs--
	}
	if r.pos == l.head {
		sh.advanceHeadLocked(l)
	}
}

// reattachLocked points the index slot i of a detached entry at its new
// position p in log li, an entry of flags fl already written there.
//
// Moving an entry in place of its slot, rather than removing the slot and
// inserting a new one, is what lets a walk by slot (collectLocked) see
// every key that stays in the store: a reinsertion could land the key in
// a part of the table the walk has already passed.
func (sh *shard) reattachLocked(i uint64, li int, p uint64, fl uint8) {
	sh.ix.slots[i] = packSlot(slotTag(sh.ix.slots[i]), li, p)
	sh.logs[li].n++
	if fl&flagTomb != 0 {
		sh.tombs++
	}
	if sh.expiresLocked(&sh.logs[li], p, fl) {
		sh.exps++
	}
}

func (sh *shard) removeLocked(_ uint64, _ string, r ref) { sh.killLocked(&r) }

func (sh *shard) metaLocked(r ref) (exp int64, ver uint64) {
	l := &sh.logs[r.log]
	p := r.pos + hdrSize
	if r.flags&flagExp != 0 {
		exp = int64(sh.u64At(l, p))
		p += 8
	}
	if r.flags&flagVer != 0 {
		ver = sh.u64At(l, p)
	}
	return exp, ver
}

func (sh *shard) valueLocked(r ref) []byte {
	return sh.bytesAt(&sh.logs[r.log], r.valPos(), int(r.vlen), &sh.view)
}

// hitLocked records a read of r. S3-FIFO bumps a two-bit counter in place;
// LRU moves the entry to the log's tail. r is invalid afterwards.
func (sh *shard) hitLocked(r ref) {
	l := &sh.logs[r.log]
	if !sh.lru {
		if f := r.freq(); f < maxFreq {
			sh.setFlags(l, r.pos, r.flags&^freqMask|uint8(f+1)<<freqShift)
		}
		return
	}
	if r.pos+r.size() == l.tail {
		return // already most recent
	}
	old := sh.ix.slots[r.slot]
	raw := sh.copyEntry(&r, &sh.hit)
	sh.detachLocked(&r)
	// Evicting others may shift the slot (backward-shift deletion), so it
	// is found again afterwards.
	err := sh.ensureSpaceLocked(l, uint64(len(raw)), false)
	i := sh.ix.find(old)
	if err != nil {
		sh.ix.remove(i)
		return
	}
	p := sh.appendLocked(l, uint64(len(raw)))
	sh.writeAt(l, p, raw)
	sh.reattachLocked(i, logSmall, p, raw[7])
}

// copyEntry copies r's bytes (header included) into scratch.
func (sh *shard) copyEntry(r *ref, scratch *[]byte) []byte {
	n := int(r.size())
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	b := (*scratch)[:n]
	sh.readAt(&sh.logs[r.log], r.pos, b)
	return b
}

// relocateLocked moves r to the tail of log li with the given frequency,
// without eviction (used by eviction and compaction themselves, so the
// caller accepts a transient overshoot). The key keeps its index slot.
func (sh *shard) relocateLocked(r *ref, li int, freq int) {
	raw := sh.copyEntry(r, &sh.move)
	raw[7] = r.flags&^(freqMask|flagDead) | uint8(freq)<<freqShift
	sh.detachLocked(r)
	l := &sh.logs[li]
	p := sh.appendLocked(l, uint64(len(raw)))
	sh.writeAt(l, p, raw)
	sh.reattachLocked(r.slot, li, p, raw[7])
}

// maxEntryLocked is the largest entry the shard could ever hold.
func (sh *shard) fitsLocked(size uint64) bool {
	return int64(size)+sh.ix.bytes()*2+sh.gh.bytes()+3*sh.chunkSize <= sh.budget
}

// ensureSpaceLocked evicts until n more bytes in l (and, if grow, one more
// index entry) fit in the budget.
func (sh *shard) ensureSpaceLocked(l *flog, n uint64, grow bool) error {
	for {
		need := sh.chunksNeeded(l, n)
		if sh.spare != nil && need > 0 {
			need--
		}
		extra := need * sh.chunkSize
		if grow && sh.ix.needsGrow() {
			extra += sh.ix.bytes()
		}
		if sh.usedLocked()+extra <= sh.budget {
			return nil
		}
		if !sh.evictOneLocked() {
			return fmt.Errorf("%w: entry of %d bytes does not fit in a shard's %d bytes", ErrValueTooLarge, n, sh.budget)
		}
	}
}

// putLocked writes an entry, replacing old (a live entry or a tombstone) if
// found. A tombstone (tomb) stores no value, and starts with no access
// credit: the reads of the value it replaces say nothing about how long
// the deletion must be remembered.
func (sh *shard) putLocked(h uint64, key string, old ref, found bool, value []byte, exp int64, ver uint64, tomb bool) error {
	if tomb {
		value = nil
	}
	fl := entryFlags(exp, ver, tomb)
	size := hdrSize + extraSize(fl) + uint64(len(key)) + uint64(len(value))
	if !sh.fitsLocked(size) {
		return fmt.Errorf("%w: entry of %d bytes does not fit in a shard's %d bytes", ErrValueTooLarge, size, sh.budget)
	}
	li := logSmall
	freq := 0
	var oldSlot uint64
	if found {
		if !sh.lru && old.flags&layoutFlags == fl && old.size() == size {
			sh.overwriteLocked(&old, value, exp, ver)
			return nil
		}
		if !sh.lru {
			li = int(old.log)
			if !tomb {
				freq = min(old.freq()+1, maxFreq)
			}
		}
		// The key keeps its slot (see reattachLocked); evicting others may
		// shift it, so it is found again by value afterwards.
		oldSlot = sh.ix.slots[old.slot]
		sh.detachLocked(&old)
	} else if !sh.lru && sh.gh.contains(h) {
		li = logMain
	}
	l := &sh.logs[li]
	if err := sh.ensureSpaceLocked(l, size, !found); err != nil {
		if found {
			sh.ix.remove(sh.ix.find(oldSlot))
		}
		return err
	}
	p := sh.appendLocked(l, size)
	var hdr [hdrSize + 16]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(value)))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(key)))
	hdr[7] = fl | uint8(freq)<<freqShift
	o := hdrSize
	if exp != 0 {
		binary.LittleEndian.PutUint64(hdr[o:], uint64(exp))
		o += 8
	}
	if ver != 0 {
		binary.LittleEndian.PutUint64(hdr[o:], ver)
		o += 8
	}
	c, off := sh.chunk(l, p)
	if off+size <= uint64(len(c)) {
		b := c[off : off+size]
		copy(b, hdr[:o])
		copy(b[o:], key)
		copy(b[o+len(key):], value)
	} else {
		sh.writeAt(l, p, hdr[:o])
		sh.writeAt(l, p+uint64(o), []byte(key))
		sh.writeAt(l, p+uint64(o)+uint64(len(key)), value)
	}
	if found {
		sh.reattachLocked(sh.ix.find(oldSlot), li, p, fl)
		return nil
	}
	if sh.ix.needsGrow() {
		sh.ix.grow()
	}
	sh.ix.insert(packSlot(tagOf(h), li, p))
	l.n++
	if tomb {
		sh.tombs++
	} else if exp != 0 {
		sh.exps++
	}
	return nil
}

// overwriteLocked replaces an entry of identical layout in place. A
// tombstone replacing a tombstone earns no access credit.
func (sh *shard) overwriteLocked(r *ref, value []byte, exp int64, ver uint64) {
	l := &sh.logs[r.log]
	p := r.pos + hdrSize
	if exp != 0 {
		// Same layout, so the old entry has an expiry field too, zeroed
		// if it was persisted.
		if !r.tomb() && sh.u64At(l, p) == 0 {
			sh.exps++
		}
		sh.putU64At(l, p, uint64(exp))
		p += 8
	}
	if ver != 0 {
		sh.putU64At(l, p, ver)
	}
	sh.writeAt(l, r.valPos(), value)
	if f := r.freq(); f < maxFreq && !r.tomb() {
		sh.setFlags(l, r.pos, r.flags&^freqMask|uint8(f+1)<<freqShift)
	}
}

func (sh *shard) setExpireLocked(h uint64, key string, r ref, exp int64) {
	l := &sh.logs[r.log]
	if r.flags&flagExp != 0 {
		was := sh.expiresLocked(l, r.pos, r.flags)
		sh.putU64At(l, r.pos+hdrSize, uint64(exp))
		if now := sh.expiresLocked(l, r.pos, r.flags); now != was {
			if now {
				sh.exps++
			} else {
				sh.exps--
			}
		}
		return
	}
	if exp == 0 {
		return
	}
	_, ver := sh.metaLocked(r)
	sh.build = append(sh.build[:0], sh.valueLocked(r)...)
	// The entry shrinks by nothing and grows by 8 bytes; if it cannot be
	// placed the key is dropped, as a write that fails would.
	_ = sh.putLocked(h, key, r, true, sh.build, exp, ver, false)
}

// evictOneLocked evicts one entry according to the policy and reports
// whether there was anything to evict.
func (sh *shard) evictOneLocked() bool {
	S, M := &sh.logs[logSmall], &sh.logs[logMain]
	for {
		if S.n == 0 && M.n == 0 {
			return false
		}
		if sh.lru {
			r, _ := sh.refAt(logSmall, S.head)
			if S.dead*lruCompactD >= S.span()*lruCompactN && sh.lruDense < lruDenseMax {
				// Mostly holes: make room by compacting rather than by
				// evicting a live entry (see lruCompactN).
				if sh.holeAfterLocked(S, &r) {
					sh.lruDense = 0
				} else {
					sh.lruDense++
				}
				sh.relocateLocked(&r, logSmall, 0)
				return true
			}
			sh.lruDense = 0
			sh.killLocked(&r)
			sh.stats.evictions++
			return true
		}
		if S.n > 0 && (M.n == 0 || S.span()*100 >= (S.span()+M.span())*smallPercent) {
			r, h := sh.refAt(logSmall, S.head)
			if r.freq() >= promoteFreq {
				sh.relocateLocked(&r, logMain, 0)
				continue
			}
			sh.ghostAddLocked(h)
			sh.killLocked(&r)
			sh.stats.evictions++
			return true
		}
		r, _ := sh.refAt(logMain, M.head)
		if f := r.freq(); f > 0 {
			sh.relocateLocked(&r, logMain, f-1)
			continue
		}
		sh.killLocked(&r)
		sh.stats.evictions++
		return true
	}
}

// holeAfterLocked reports whether the entry after r in l is dead.
func (sh *shard) holeAfterLocked(l *flog, r *ref) bool {
	next := r.pos + r.size()
	if next >= l.tail {
		return false
	}
	_, _, fl := sh.header(l, next)
	return fl&flagDead != 0
}

// ghostAddLocked remembers h, resizing the ghost filter to track about as
// many keys as the main queue holds.
func (sh *shard) ghostAddLocked(h uint64) {
	want := max(sh.logs[logMain].n/2, 64)
	if sh.gh.capacity*2 < want || sh.gh.capacity > want*4 {
		sh.gh.reset(want)
	}
	sh.gh.add(h)
}

func (sh *shard) flushLocked() {
	for i := range sh.logs {
		l := &sh.logs[i]
		for c := l.lo; c < l.hi; c++ {
			sh.releaseChunk(l.chunks[c&sh.slotMask])
			l.chunks[c&sh.slotMask] = nil
		}
		*l = flog{chunks: l.chunks}
	}
	sh.ix.init(minIndexBits)
	sh.gh.reset(0)
	sh.tombs = 0
	sh.exps = 0
	sh.lruDense = 0
	sh.sweepPos = 0
	sh.view, sh.build, sh.move, sh.hit = nil, nil, nil, nil
}

// sweepLocked examines up to budget entries from the sweep cursor and
// reclaims expired ones, then compacts logs that are mostly holes. It
// returns the number of entries reclaimed.
func (sh *shard) sweepLocked(now int64, budget int) int {
	reclaimed := 0
	for range 2 {
		l := &sh.logs[sh.sweepLog]
		for budget > 0 {
			if sh.sweepPos < l.head {
				sh.sweepPos = l.head // reclaiming may move the head past the cursor
			}
			if sh.sweepPos >= l.tail {
				break
			}
			budget--
			p := sh.sweepPos
			vlen, klen, fl := sh.header(l, p)
			sh.sweepPos += hdrSize + extraSize(fl) + uint64(klen) + uint64(vlen)
			if fl&(flagDead|flagExp) != flagExp {
				continue
			}
			if exp := int64(sh.u64At(l, p+hdrSize)); exp != 0 && exp <= now {
				r, _ := sh.refAt(sh.sweepLog, p)
				sh.killLocked(&r)
				sh.stats.expirations++
				reclaimed++
			}
		}
		if budget == 0 {
			break
		}
		sh.sweepLog ^= 1
		sh.sweepPos = 0
	}
	for li := range sh.logs {
		sh.compactLocked(li, 64)
	}
	return reclaimed
}

// compactLocked reclaims holes. Once a third of log li is dead it starts
// moving live entries from the head to the tail, up to n per call, so that
// the head passes the holes behind them; it stops when under an eighth of
// the log is dead. Each byte reclaimed costs at most two bytes copied.
func (sh *shard) compactLocked(li int, n int) {
	l := &sh.logs[li]
	if !l.compacting {
		if l.span() <= 2*sh.chunkSize || l.dead*3 < l.span() {
			return
		}
		l.compacting = true
	}
	for ; n > 0; n-- {
		if l.span() <= sh.chunkSize || l.dead*8 < l.span() {
			l.compacting = false
			return
		}
		r, _ := sh.refAt(li, l.head)
		sh.relocateLocked(&r, li, r.freq())
	}
}

// rangeCursor is a walk's position in one shard: the next index slot to
// visit, valid while the table has not been rebuilt (gen).
//
// The walk goes by slot rather than along the logs because a key keeps its
// slot while its entry moves between and within the logs (promotion,
// reinsertion, LRU hits, compaction, overwrites: see reattachLocked), so
// moves cannot carry a key past the cursor. Two other things move slots:
//
//   - A rebuild (index.grow, flush) moves them all; it bumps index.gen and
//     the walk restarts the shard, which may visit keys twice.
//   - Backward-shift deletion moves a slot towards its probe home, never
//     past it. collectLocked therefore stops a batch only where every key
//     at c or beyond has its home at c or beyond, so that no later shift
//     can move it below c, into the part already walked: just after an
//     empty slot (the probe run from a key's home to its slot is full, so
//     a key beyond an empty slot has its home beyond it too), or inside a
//     cluster when every key from c to the cluster's end has its home at c
//     or beyond (index.stopsAt), which bounds a batch of long keys.
//
// So a key that is in the store from the start of a shard's walk to its end
// is visited at least once.
type rangeCursor struct {
	next    uint64
	gen     uint64
	started bool
	// lowGen says gen holds only the generation's low scanGenBits, as a
	// cursor restored from a ScanKeys cursor does, until the first batch.
	lowGen bool
}

// collect copies a batch of shard sh out under its lock (collectLocked)
// into rb, emptied first, and reports whether the shard is done and how
// many slots the batch visited.
func (s *Store) collect(sh *shard, c *rangeCursor, rb *rangeBuf, maxBytes, maxSlots int, tombs, values bool) (done bool, visited int) {
	rb.reset()
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.collectLocked(c, now, rb, maxBytes, maxSlots, tombs, values)
}

// collectLocked copies entries from the cursor on into b: keys, values if
// values, tombstones too if tombs. Once b holds maxBytes or it visited
// maxSlots slots, it stops at the first place where a walk may stop (see
// rangeCursor), and reports whether the shard is done and how many slots
// it visited.
func (sh *shard) collectLocked(c *rangeCursor, now int64, b *rangeBuf, maxBytes, maxSlots int, tombs, values bool) (done bool, visited int) {
	gen := sh.ix.gen
	if c.lowGen {
		gen &= scanGenMask
	}
	if !c.started || c.gen != gen {
		*c = rangeCursor{started: true}
	}
	c.gen, c.lowGen = sh.ix.gen, false
	from := c.next
	slots := sh.ix.slots
	for visited := 1; c.next < uint64(len(slots)); visited++ {
		if visited > 1 && (visited > maxSlots || len(b.data) >= maxBytes) && slots[c.next] != 0 && sh.ix.stopsAt(c.next) {
			return false, int(c.next - from) // inside a cluster, where nothing can shift below c.next
		}
		v := slots[c.next]
		c.next++
		if v == 0 {
			if visited >= maxSlots || len(b.data) >= maxBytes {
				return false, int(c.next - from)
			}
			continue
		}
		li := slotLog(v)
		l := &sh.logs[li]
		p := l.head + ((slotPos(v) - l.head) & posMask)
		vlen, klen, fl := sh.header(l, p)
		r := ref{pos: p, log: uint8(li), flags: fl, klen: klen, vlen: vlen}
		if !tombs && r.tomb() {
			continue
		}
		exp, ver := sh.metaLocked(r)
		if exp != 0 && exp <= now {
			continue
		}
		off := len(b.data)
		b.data = append(b.data, sh.bytesAt(l, r.keyPos(), int(klen), &sh.view)...)
		if values {
			b.data = append(b.data, sh.valueLocked(r)...)
		} else {
			vlen = 0
		}
		b.items = append(b.items, rangeItem{off: off, klen: int(klen), vlen: int(vlen), expireAt: exp, version: ver, tomb: r.tomb()})
	}
	return true, int(c.next - from)
}
