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
//     on average.
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
// the head. The hit-ratio table in bench_test.go (TestHitRatio) compares
// them with an exact LRU simulation and otter v2's W-TinyLFU.
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
// Only Version, Lookup, Update, RangeEntries and version comparisons
// (IfNewer, CompareAndSwap) see tombstones. Every other operation treats a
// tombstoned key as absent: reads miss, IfAbsent writes and IncrBy or
// Append start afresh (at version 0) and replace the tombstone, IfPresent
// writes and Expire do nothing, unversioned Delete removes it outright.
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
// # Concurrency contract
//
// Values returned by Get, GetDel, Lookup, Update and SetResult.Old are
// fresh copies. Values passed to GetMany, Range and RangeEntries callbacks
// are only valid during the call; none holds a shard lock while calling
// back, so those callbacks may use the Store. Range and RangeEntries visit
// each shard's small log then main log up to their tails when they reached
// them; entries written, moved or evicted while they run may be missed or
// (rarely) seen twice.
//
// Update is the exception: its fn runs under the key's shard lock, which is
// what makes read-modify-write atomic, so fn must be fast and must not call
// the Store. It is shown a scratch copy of the value, which it may modify
// and return.
package store
