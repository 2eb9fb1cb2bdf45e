// Package store is the node's storage engine: a sharded, memory-bounded
// key/value store with exact per-entry expiry, caller-supplied versions for
// last-writer-wins replication, and an eviction policy chosen by measured
// hit ratio.
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
//     may straddle chunks; reads copy out under the shard lock.
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
// # Concurrency contract
//
// Values returned by Get, GetDel and SetResult.Old are fresh copies. Values
// passed to GetMany and Range callbacks are only valid during the call;
// neither holds a shard lock while calling back, so callbacks may use the
// Store. Range visits each shard's small log then main log up to their
// tails when it reached them; entries written, moved or evicted while it
// runs may be missed or (rarely) seen twice.
package store
