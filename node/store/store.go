package store

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"strconv"
	"sync"
	"time"
)

// Store is a sharded, memory-bounded key/value store with per-entry expiry
// and versions. All methods are safe for concurrent use.
type Store struct {
	cfg       Config
	now       func() int64
	seed      maphash.Seed
	shards    []shard
	shardBits uint

	bufs sync.Pool // *[]byte read buffers for GetMany

	// rangeSlots is how many index slots a walk visits per lock hold (plus
	// the rest of the cluster it stops in); tests lower it.
	rangeSlots int

	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// shardStats are the counters behind Stats, guarded by the shard lock.
type shardStats struct {
	hits, misses, evictions, expirations, sets, deletes int64
}

// New validates cfg, allocates the shards and starts the expiry sweeper.
// Call Close to stop the sweeper.
func New(cfg Config) (*Store, error) {
	if cfg.Policy == "" {
		cfg.Policy = PolicyS3FIFO
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Shards == 0 {
		cfg.Shards = defaultShards(cfg)
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultConfig().SweepInterval
	}
	s := &Store{
		cfg:        cfg,
		now:        cfg.Now,
		seed:       maphash.MakeSeed(),
		shards:     make([]shard, cfg.Shards),
		shardBits:  uint(bits.TrailingZeros(uint(cfg.Shards))),
		rangeSlots: rangeChunkSlots,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if s.now == nil {
		s.now = func() int64 { return time.Now().UnixNano() }
	}
	per := cfg.MaxMemory / int64(cfg.Shards)
	for i := range s.shards {
		s.shards[i].init(&s.cfg, s.seed, per, s.now)
	}
	go s.sweeper()
	return s, nil
}

// defaultShards picks a shard count: enough shards that two cores rarely
// meet on one lock, but each shard large enough to hold several of the
// largest entries, and at most 1 GiB per shard.
func defaultShards(cfg Config) int {
	maxEntry := int64(cfg.MaxKeySize) + int64(cfg.MaxValueSize) + 64
	n := 256
	for n > 1 && cfg.MaxMemory/int64(n) < 8*maxEntry {
		n /= 2
	}
	for cfg.MaxMemory/int64(n) > 1<<30 {
		n *= 2
	}
	return n
}

// Close stops the background sweeper. The store stays usable; Close only
// ends background work. It is safe to call more than once.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
	})
}

// Config returns the effective configuration, with defaults filled in.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) hash(key string) uint64 { return maphash.String(s.seed, key) }

func (s *Store) shardOf(h uint64) *shard {
	return &s.shards[h>>(64-s.shardBits)&uint64(len(s.shards)-1)]
}

func (s *Store) checkKey(key string) error {
	if len(key) > s.cfg.MaxKeySize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(key), s.cfg.MaxKeySize)
	}
	return nil
}

func (s *Store) checkValue(n int) error {
	if n > s.cfg.MaxValueSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, n, s.cfg.MaxValueSize)
	}
	return nil
}

// Get returns a copy of key's value, its expiry (Unix ns, 0 = none) and
// whether it was found. Expired entries and tombstones are never returned.
func (s *Store) Get(key string) (value []byte, expireAt int64, ok bool) {
	value, expireAt, _, ok = s.get(nil, key, true)
	return value, expireAt, ok
}

// AppendGet appends key's value to dst and returns the extended slice. With
// a reused dst the read path does not allocate.
func (s *Store) AppendGet(dst []byte, key string) (out []byte, expireAt int64, ok bool) {
	out, expireAt, _, ok = s.get(dst, key, false)
	return out, expireAt, ok
}

// GetEntry is Get that also returns the entry's version (0 if unversioned),
// read under the same lock as the value: a Get followed by Version could
// pair the value with a later write's version. Like Get it returns a copy,
// counts a hit or a miss and never returns a tombstone.
func (s *Store) GetEntry(key string) (value []byte, expireAt int64, version uint64, ok bool) {
	return s.get(nil, key, true)
}

// AppendGetEntry is AppendGet that also returns the entry's version, read
// together with the value (see GetEntry). With a reused dst it does not
// allocate.
func (s *Store) AppendGetEntry(dst []byte, key string) (out []byte, expireAt int64, version uint64, ok bool) {
	return s.get(dst, key, false)
}

// get is the one read path behind Get, AppendGet, GetEntry, AppendGetEntry
// and GetMany: it copies the value into a fresh slice if fresh, else
// appends it to dst.
func (s *Store) get(dst []byte, key string, fresh bool) ([]byte, int64, uint64, bool) {
	h := s.hash(key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	r, ok := sh.findLocked(h, key, nowLazy)
	if !ok || r.tomb() {
		sh.stats.misses++
		sh.mu.Unlock()
		return dst, 0, 0, false
	}
	sh.stats.hits++
	exp, ver := sh.metaLocked(r)
	v := sh.valueLocked(r)
	if fresh {
		dst = make([]byte, len(v))
		copy(dst, v)
	} else {
		dst = append(dst, v...)
	}
	sh.hitLocked(r) // last: it may move the entry
	sh.mu.Unlock()
	return dst, exp, ver, true
}

// Set stores value under key with the given expiry (Unix ns, 0 = none),
// replacing any previous entry and its version. An expiry at or before now
// deletes the key.
func (s *Store) Set(key string, value []byte, expireAt int64) error {
	_, err := s.SetWith(key, value, SetOptions{ExpireAt: expireAt})
	return err
}

// SetOptions modify a write: conditions (NX/XX, last-writer-wins by
// version), expiry handling, whether to return the previous value and
// whether the write is a deletion that leaves a tombstone.
type SetOptions struct {
	// ExpireAt is the new entry's expiry in Unix ns; 0 means none. A time at
	// or before now makes the write a deletion (of a tombstone too). For a
	// Tombstone write it is when the tombstone may be forgotten.
	ExpireAt int64
	// KeepTTL keeps the existing live entry's expiry instead of ExpireAt.
	// It is ignored by Tombstone writes and when the key has no live entry.
	KeepTTL bool
	// IfAbsent writes only when the key has no live entry (NX); a
	// tombstone counts as absent.
	IfAbsent bool
	// IfPresent writes only when the key has a live entry (XX); a
	// tombstone counts as absent.
	IfPresent bool
	// GetOld returns the previous live value in SetResult.Old.
	GetOld bool
	// Version is stored with the entry, for last-writer-wins replication.
	Version uint64
	// IfNewer writes only when Version is greater than the stored version,
	// a tombstone's included; an absent key counts as version 0.
	IfNewer bool
	// Tombstone writes a tombstone instead of a value (which is then
	// ignored): the key reads as absent, but the tombstone keeps Version,
	// so an IfNewer write of an older copy (a stale replica) cannot bring
	// the key back until the tombstone expires at ExpireAt or is evicted.
	Tombstone bool
}

// SetResult reports what SetWith did.
type SetResult struct {
	// Stored is true if the write was applied.
	Stored bool
	// Old is a copy of the previous value, when GetOld was set and HadOld.
	Old []byte
	// HadOld is true if the key had a live entry before the write.
	HadOld bool
}

// checkWrite applies the size limits to a write and returns the value to
// store: none for a tombstone.
func (s *Store) checkWrite(key string, value []byte, opt SetOptions) ([]byte, error) {
	if err := s.checkKey(key); err != nil {
		return nil, err
	}
	if opt.Tombstone {
		return nil, nil
	}
	if err := s.checkValue(len(value)); err != nil {
		return nil, err
	}
	return value, nil
}

// SetWith is the general conditional write behind SET and replication.
func (s *Store) SetWith(key string, value []byte, opt SetOptions) (SetResult, error) {
	var res SetResult
	value, err := s.checkWrite(key, value, opt)
	if err != nil {
		return res, err
	}
	h := s.hash(key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := int64(nowLazy) // most writes replace an entry without expiry with another
	if opt.ExpireAt != 0 {
		now = s.now() // needed: read it once for findLocked and writeLocked both
	}
	r, found := sh.findLocked(h, key, now)
	live := found && !r.tomb()
	res.HadOld = live
	var oldExp int64
	var oldVer uint64
	if found {
		oldExp, oldVer = sh.metaLocked(r)
		if opt.GetOld && live {
			v := sh.valueLocked(r)
			res.Old = make([]byte, len(v))
			copy(res.Old, v)
		}
	}
	if (opt.IfAbsent && live) || (opt.IfPresent && !live) || (opt.IfNewer && opt.Version <= oldVer) {
		return res, nil
	}
	exp := opt.ExpireAt
	if opt.KeepTTL && live && !opt.Tombstone {
		exp = oldExp
	}
	if err := s.writeLocked(sh, h, key, r, found, value, exp, opt.Version, opt.Tombstone, now); err != nil {
		return res, err
	}
	res.Stored = true
	return res, nil
}

// writeLocked stores an entry or tombstone in sh, replacing old (live or
// tombstone) if found; a past expiry removes old instead.
func (s *Store) writeLocked(sh *shard, h uint64, key string, old ref, found bool, value []byte, exp int64, ver uint64, tomb bool, now int64) error {
	if exp != 0 && now == nowLazy {
		now = s.now()
	}
	if exp != 0 && exp <= now {
		if found {
			if !old.tomb() {
				sh.stats.deletes++
			}
			sh.removeLocked(h, key, old)
		}
		return nil
	}
	if err := sh.putLocked(h, key, old, found, value, exp, ver, tomb); err != nil {
		return err
	}
	if tomb {
		sh.stats.deletes++
	} else {
		sh.stats.sets++
	}
	return nil
}

// Delete removes key outright, a tombstone included, leaving no trace, and
// reports whether it had a live entry. Replication deletes with a Tombstone
// write instead.
func (s *Store) Delete(key string) bool {
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.findLocked(h, key, now)
	if !ok {
		return false
	}
	sh.removeLocked(h, key, r)
	if r.tomb() {
		return false
	}
	sh.stats.deletes++
	return true
}

// GetDel removes key and returns its value (GETDEL). A tombstone is a miss
// and stays.
func (s *Store) GetDel(key string) ([]byte, bool) {
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.findLocked(h, key, now)
	if !ok || r.tomb() {
		sh.stats.misses++
		return nil, false
	}
	sh.stats.hits++
	v := sh.valueLocked(r)
	out := make([]byte, len(v))
	copy(out, v)
	sh.removeLocked(h, key, r)
	sh.stats.deletes++
	return out, true
}

// Expire sets key's expiry (Unix ns; 0 removes it) and reports whether the
// key had a live entry. An expiry at or before now deletes the key. A
// tombstone counts as absent and is left as it is.
func (s *Store) Expire(key string, expireAt int64) bool {
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.findLocked(h, key, now)
	if !ok || r.tomb() {
		return false
	}
	if expireAt != 0 && expireAt <= now {
		sh.removeLocked(h, key, r)
		sh.stats.deletes++
		return true
	}
	sh.setExpireLocked(h, key, r, expireAt)
	return true
}

// TTL returns key's expiry (Unix ns, 0 = none) and whether it is live; a
// tombstone is not.
func (s *Store) TTL(key string) (expireAt int64, ok bool) {
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.findLocked(h, key, now)
	if !ok || r.tomb() {
		return 0, false
	}
	exp, _ := sh.metaLocked(r)
	return exp, true
}

// Version returns the version stored with key and whether the key has any
// state: unlike the other reads it sees a tombstone too, and returns the
// version of the deletion, so that a caller deciding whether an incoming
// copy is newer compares with it. Use Lookup to tell the two apart.
func (s *Store) Version(key string) (uint64, bool) {
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.findLocked(h, key, now)
	if !ok {
		return 0, false
	}
	_, ver := sh.metaLocked(r)
	return ver, true
}

// IncrBy adds delta to the base-10 integer stored at key (absent counts as
// 0) and returns the result. The entry keeps its expiry and version; over a
// tombstone it starts from 0 with no expiry and version 0 (use Update to
// version it). It fails with ErrNotInteger or ErrOverflow and then leaves
// the entry as is.
func (s *Store) IncrBy(key string, delta int64) (int64, error) {
	if err := s.checkKey(key); err != nil {
		return 0, err
	}
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, found := sh.findLocked(h, key, now)
	var cur int64
	var exp int64
	var ver uint64
	if found && !r.tomb() {
		exp, ver = sh.metaLocked(r)
		var ok bool
		cur, ok = parseInt(sh.valueLocked(r))
		if !ok {
			return 0, ErrNotInteger
		}
	}
	n := cur + delta
	if (delta > 0 && n < cur) || (delta < 0 && n > cur) {
		return 0, ErrOverflow
	}
	var buf [20]byte
	v := strconv.AppendInt(buf[:0], n, 10)
	if err := s.checkValue(len(v)); err != nil {
		return 0, err
	}
	if err := sh.putLocked(h, key, r, found, v, exp, ver, false); err != nil {
		return 0, err
	}
	sh.stats.sets++
	return n, nil
}

// parseInt accepts what Redis accepts as an integer: an optional minus sign
// and decimal digits without leading zeros, fitting in int64.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) > 1 && (b[0] == '0' || (b[0] == '-' && b[1] == '0')) {
		return 0, false
	}
	if b[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Append appends value to key's value (creating the key if absent) and
// returns the new length. The entry keeps its expiry and version; over a
// tombstone it starts from empty with no expiry and version 0.
func (s *Store) Append(key string, value []byte) (newLen int, err error) {
	if err := s.checkKey(key); err != nil {
		return 0, err
	}
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, found := sh.findLocked(h, key, now)
	var exp int64
	var ver uint64
	buf := sh.build[:0]
	if found && !r.tomb() {
		exp, ver = sh.metaLocked(r)
		buf = append(buf, sh.valueLocked(r)...)
	}
	buf = append(buf, value...)
	sh.build = buf[:0]
	if err := s.checkValue(len(buf)); err != nil {
		return 0, err
	}
	if err := sh.putLocked(h, key, r, found, buf, exp, ver, false); err != nil {
		return 0, err
	}
	if cap(sh.build) > 64<<10 {
		sh.build = nil // do not pin a large scratch buffer
	}
	sh.stats.sets++
	return len(buf), nil
}

// CompareAndSwap writes value only if key's stored version (a tombstone's
// included, 0 when absent) equals oldVersion; opt supplies the new version,
// expiry and the other conditions (opt.Tombstone swaps in a tombstone). It
// reports whether the write was applied.
func (s *Store) CompareAndSwap(key string, oldVersion uint64, value []byte, opt SetOptions) (bool, error) {
	value, err := s.checkWrite(key, value, opt)
	if err != nil {
		return false, err
	}
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, found := sh.findLocked(h, key, now)
	live := found && !r.tomb()
	var exp int64
	var ver uint64
	if found {
		exp, ver = sh.metaLocked(r)
	}
	if ver != oldVersion || (opt.IfAbsent && live) || (opt.IfPresent && !live) || (opt.IfNewer && opt.Version <= ver) {
		return false, nil
	}
	if !(opt.KeepTTL && live && !opt.Tombstone) {
		exp = opt.ExpireAt
	}
	if err := s.writeLocked(sh, h, key, r, found, value, exp, opt.Version, opt.Tombstone, now); err != nil {
		return false, err
	}
	return true, nil
}

// GetMany looks up every key and calls fn with its index in keys. value is
// only valid during the call; fn may call back into the Store.
func (s *Store) GetMany(keys []string, fn func(i int, value []byte, expireAt int64, ok bool)) {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	buf := *bp
	for i, key := range keys {
		var exp int64
		var ok bool
		buf, exp, _, ok = s.get(buf[:0], key, false)
		fn(i, buf, exp, ok)
	}
	if cap(buf) <= 64<<10 {
		*bp = buf
		s.bufs.Put(bp)
	}
}

// Range calls fn for every live entry, shard by shard, until fn returns
// false; it skips tombstones (RangeEntries does not). It visits every key
// that has a live entry for the whole walk, as RangeEntries does, and
// holds no lock while fn runs, so fn may call back into the Store. value
// is only valid during the call.
func (s *Store) Range(fn func(key string, value []byte, expireAt int64, version uint64) bool) {
	s.rangeShards(false, true, func(key string, value []byte, it *rangeItem) bool {
		return fn(key, value, it.expireAt, it.version)
	})
}

// RangeEntries calls fn for every live entry and every unexpired tombstone,
// shard by shard, until fn returns false: it is what hand-off and
// anti-entropy walk, since a deletion must travel like a write. e.Value is
// only valid during the call (nil for a tombstone, non-nil otherwise).
//
// The walk runs while the store serves reads and writes, and guarantees
// that every key with a live entry or a tombstone for the whole walk is
// visited at least once, however its entry moves inside the store
// meanwhile (eviction policy, compaction, overwrites). Such a key may be
// visited twice, possibly with different states; a key written, deleted,
// expired or evicted during the walk may or may not be visited. Each shard
// is copied out in small batches under its lock, and no lock is held while
// fn runs, so fn may call back into the Store.
func (s *Store) RangeEntries(fn func(key string, e Entry) bool) {
	s.rangeShards(true, true, func(key string, value []byte, it *rangeItem) bool {
		e := Entry{ExpireAt: it.expireAt, Version: it.version, Tombstone: it.tomb}
		if !it.tomb {
			e.Value = value
			if e.Value == nil {
				e.Value = []byte{}
			}
		}
		return fn(key, e)
	})
}

// RangeKeys calls fn for every key with a live entry or an unexpired
// tombstone (tombstone tells which), with its expiry (Unix ns, 0 for
// none; see Entry.ExpireAt), until fn returns false. It is RangeEntries
// without the values, with the same guarantee, for callers that only
// count or classify keys: it copies no values, and builds the key strings
// of a batch in one allocation (so a key that fn keeps holds that batch's
// keys in memory, about 16 KiB).
func (s *Store) RangeKeys(fn func(key string, tombstone bool, expireAt int64) bool) {
	s.rangeShards(true, false, func(key string, _ []byte, it *rangeItem) bool {
		return fn(key, it.tomb, it.expireAt)
	})
}

// Batch bounds for rangeShards, per lock hold: bytes copied out of a
// shard, and index slots visited (plus the rest of the cluster the batch
// stops in; see rangeCursor).
const (
	rangeBatchBytes    = 256 << 10
	rangeKeyBatchBytes = 16 << 10
	rangeChunkSlots    = 1024
)

// rangeShards copies entries (tombstones too if tombs, values if values)
// out of one shard at a time in bounded batches, and calls fn on each with
// no lock held. See rangeCursor for why no key that stays is missed.
func (s *Store) rangeShards(tombs, values bool, fn func(key string, value []byte, it *rangeItem) bool) {
	var rb rangeBuf
	maxBytes := rangeBatchBytes
	if !values {
		maxBytes = rangeKeyBatchBytes
	}
	for i := range s.shards {
		sh := &s.shards[i]
		var cur rangeCursor
		for {
			done, _ := s.collect(sh, &cur, &rb, maxBytes, s.rangeSlots, tombs, values)
			var keys string
			if !values {
				keys = string(rb.data)
			}
			for j := range rb.items {
				it := &rb.items[j]
				var key string
				if values {
					key = rb.key(it)
				} else {
					key = keys[it.off : it.off+it.klen]
				}
				if !fn(key, rb.value(it), it) {
					return
				}
			}
			if done {
				break
			}
		}
	}
}

// rangeBuf holds a batch of entries copied out of one shard.
type rangeBuf struct {
	data  []byte
	items []rangeItem
}

type rangeItem struct {
	off, klen, vlen int
	expireAt        int64
	version         uint64
	tomb            bool
}

func (b *rangeBuf) reset() {
	b.data = b.data[:0]
	b.items = b.items[:0]
}

func (b *rangeBuf) key(it *rangeItem) string {
	return string(b.data[it.off : it.off+it.klen])
}

func (b *rangeBuf) value(it *rangeItem) []byte {
	s := it.off + it.klen
	return b.data[s : s+it.vlen : s+it.vlen]
}

// Len returns the number of live entries held, including expired ones the
// sweeper has not reclaimed yet; tombstones are not counted (see
// Stats.Tombstones).
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.lenLocked()
		sh.mu.Unlock()
	}
	return n
}

// Flush removes every entry, one shard at a time.
func (s *Store) Flush() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.flushLocked()
		sh.mu.Unlock()
	}
}

// Stats is a snapshot of the store's size and counters, summed over shards.
type Stats struct {
	// Entries is the number of live entries held (see Len).
	Entries int64
	// Tombstones is the number of tombstones held, including expired ones
	// not reclaimed yet. They use memory like small entries.
	Tombstones int64
	// Expiring is how many of the live entries have an expiry (INFO's
	// "expires"), including expired ones not reclaimed yet.
	Expiring int64
	// Bytes is the memory charged against MaxMemory.
	Bytes int64
	// MaxMemory is the configured bound.
	MaxMemory int64
	// Hits and Misses count reads that found or missed a live entry.
	Hits, Misses int64
	// Evictions counts entries and tombstones removed to make room.
	Evictions int64
	// Expirations counts expired entries and tombstones reclaimed, by
	// readers or the sweeper.
	Expirations int64
	// Sets counts applied writes of values; Deletes counts live entries
	// removed and tombstones written.
	Sets, Deletes int64
	// IndexSlots is how many slots the shards' hash indexes have, used or
	// not: how far a walk of every key goes (see ScanKeys).
	IndexSlots int64
}

// Stats returns current counters; each shard is read under its own lock, so
// the sum is not an atomic snapshot.
func (s *Store) Stats() Stats {
	st := Stats{MaxMemory: s.cfg.MaxMemory}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Entries += int64(sh.lenLocked())
		st.Tombstones += int64(sh.tombs)
		st.Expiring += int64(sh.exps)
		st.Bytes += sh.bytesLocked()
		st.Hits += sh.stats.hits
		st.Misses += sh.stats.misses
		st.Evictions += sh.stats.evictions
		st.Expirations += sh.stats.expirations
		st.Sets += sh.stats.sets
		st.Deletes += sh.stats.deletes
		st.IndexSlots += int64(len(sh.ix.slots))
		sh.mu.Unlock()
	}
	return st
}

// sweeper reclaims expired entries in small steps: each tick visits a few
// shards and examines a bounded number of entries in each, so no single
// step holds a lock for long.
func (s *Store) sweeper() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		// Visit every shard about once per second of ticks, at least one.
		per := len(s.shards) * int(s.cfg.SweepInterval) / int(time.Second)
		per = max(1, min(per, len(s.shards)))
		for range per {
			s.SweepShard(next, sweepBudget)
			next = (next + 1) % len(s.shards)
		}
	}
}

// sweepBudget bounds the entries examined per shard visit.
const sweepBudget = 2048

// SweepShard examines up to budget entries of shard i and reclaims those
// that have expired. It returns how many it reclaimed. The background
// sweeper calls it; tests call it to sweep deterministically.
func (s *Store) SweepShard(i, budget int) int {
	sh := &s.shards[i%len(s.shards)]
	now := s.now()
	sh.mu.Lock()
	n := sh.sweepLocked(now, budget)
	sh.mu.Unlock()
	return n
}

// NumShards returns the number of shards (see Config.Shards).
func (s *Store) NumShards() int { return len(s.shards) }
