// Package store is the node's storage engine: a sharded, memory-bounded
// key/value store with exact per-entry expiry, caller-supplied versions and
// tombstones for last-writer-wins replication, and an eviction policy
// chosen by measured hit ratio.
//
// # Design
//
// Keys hash (hash/maphash, per-store seed) to one of Config.Shards shards,
// each with its own mutex, so operations on different shards never contend.
// A shard holds three things, none of which contains a pointer per entry, so
// the garbage collector's work does not grow with the number of entries:
//
//   - An index: an open-addressing table of uint64 slots (linear probing,
//     backward-shift deletion, grown at 3/4 load). A slot packs a 28-bit hash
//     tag, a log number and the entry's position. About 14 bytes per entry
//     on average. When an entry moves in the logs (eviction, compaction, an
//     overwrite, an LRU hit) its slot is rewritten in place, so a key keeps
//     its slot; walks rely on that (see Walks).
//   - Two append-only logs made of fixed-size byte chunks (1/64 of the
//     shard's memory, 4 KiB-1 MiB). An entry is an 8-byte header (value
//     length, key length, flags with a two-bit access counter), an optional
//     8-byte expiry, an optional 8-byte version, then key and value. Entries
//     may straddle chunks; reads copy out under the shard lock. A tombstone
//     is an entry with a flag and no value.
//   - A ghost filter: two generations of blocked Bloom filters remembering
//     keys recently evicted from the small queue (about one byte per entry).
//
// Memory is charged as allocated chunks + index table + ghost filter, so
// MaxMemory bounds everything the store allocates; a write that would pass a
// shard's share (MaxMemory/Shards) evicts first. Deleted, overwritten and
// expired entries leave holes; the head of a log skips holes for free, and
// a log that becomes a third holes is compacted incrementally (live entries
// at the head move to the tail, a bounded number per sweep step) until under
// an eighth is holes. Overwrites of the same size are done in place.
//
// # Eviction
//
// The default policy is S3-FIFO (Yang et al., SOSP 2023), which maps onto
// logs without fragmentation: new keys enter the small log (10% of the
// bytes); when evicted from it, keys read at least once move to the main
// log and the rest are dropped and remembered in the ghost filter; a key
// found in the ghost filter is admitted straight to the main log; the main
// log reinserts entries with a non-zero counter (decrementing it) and drops
// the others. A hit only bumps the counter in place. PolicyLRU is the
// baseline: a hit moves the entry to the tail of a single log, eviction takes
// the head. The holes such moves leave reach the head only in LRU order, so
// once half the log is holes eviction compacts instead (moves the head entry
// to the tail) rather than drop live entries from a half-empty store. The
// hit-ratio table in bench_test.go (TestHitRatio) compares them with an
// exact LRU simulation and otter v2's W-TinyLFU.
//
// # Expiry
//
// Every read checks the entry's expiry against Config.Now, so an expired
// entry is never returned; the reader reclaims it on the spot. A background
// sweeper visits a few shards per Config.SweepInterval and examines a
// bounded number of entries in each (walking the logs from a cursor), so
// expired memory is reclaimed without a whole-store pause.
//
// # Tombstones
//
// Replication resolves conflicts by version (last writer wins), so a
// deletion must carry a version too, or a stale replica's older copy would
// bring the key back. A tombstone write (SetOptions.Tombstone, or an Update
// returning Entry.Tombstone) replaces the key's state with a marker holding
// the deletion's version and an expiry after which it may be forgotten.
//
// Only Version, Lookup, Update, RangeEntries, RangeKeys and version
// comparisons (IfNewer, CompareAndSwap) see tombstones. Every other
// operation treats a tombstoned key as absent: reads miss, IfAbsent writes
// and IncrBy or Append start afresh (at version 0) and replace the
// tombstone, IfPresent writes and Expire do nothing, unversioned Delete
// removes it outright.
// Len and Stats.Entries exclude tombstones; Stats.Tombstones counts them.
//
// A tombstone costs memory like an entry with an empty value (8-byte header,
// expiry, version and key) and is reclaimed when it expires, by readers and
// the sweeper like any entry. It is also evictable like any entry, but it
// starts with no access credit (the old value's reads say nothing about
// the deletion) and reads do not give it any, so under memory pressure it
// is among the first to go. Evicting a tombstone only weakens resurrection
// protection: a stale copy that arrives afterwards is accepted as new.
//
// # Walks
//
// Range, RangeEntries and RangeKeys run while the store serves reads and
// writes; a node hands keys to their new owners and counts its keys with
// them. They guarantee that every key with a live entry (or, for
// RangeEntries and RangeKeys, a tombstone) for the whole walk is visited at
// least once, however its entry moves in the logs meanwhile. Such a key may
// be visited twice, possibly with different states; a key written, deleted,
// expired or evicted during the walk may or may not be visited.
//
// To give that guarantee a walk goes through each shard's index by slot
// rather than along the logs: entries move between and within the logs, but
// a key keeps its slot. Under the shard lock it copies a bounded batch of
// entries (about a thousand slots or 256 KiB) into a buffer, then calls fn
// on them with no lock held. Two things still move slots. Backward-shift
// deletion moves a slot towards its probe home but never past it, so a
// batch ends only just after an empty slot, beyond which no slot can shift
// back into the part walked. Rebuilding the table (growth, Flush) moves
// them all; the walk detects it by a per-shard generation count and walks
// that shard again from the start (hence possible duplicates). The table
// only grows by doubling, so that happens a few times at most.
//
// Reading the entries in slot order is random access: a walk costs about
// 150-200 ns per entry on the reference VM, some three times the
// sequential walk along the logs that it replaced (which could miss
// entries that moved).
//
// # Concurrency contract
//
// Values returned by Get, GetEntry, GetDel, Lookup, Update and
// SetResult.Old are fresh copies. Values passed to GetMany, Range and
// RangeEntries callbacks are only valid during the call; none holds a shard
// lock while calling back, so those callbacks may use the Store.
//
// Update is the exception: its fn runs under the key's shard lock, which is
// what makes read-modify-write atomic, so fn must be fast and must not call
// the Store. It is shown a scratch copy of the value, which it may modify
// and return.
package store
