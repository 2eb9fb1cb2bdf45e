package store

// ScanCursorBits is how many low bits a ScanKeys cursor uses: callers that
// walk something bigger than one store (a cluster's SCAN) keep their own
// position in the bits above.
const ScanCursorBits = 54

// A ScanKeys cursor packs the shard (16 bits, Config.Shards <= 1<<16), the
// low bits of that shard's index generation, and the next index slot.
const (
	scanSlotBits = 32 // an index has at most maxShardMemory/8 = 1<<31 slots
	scanGenBits  = ScanCursorBits - scanSlotBits - 16
	scanSlotMask = 1<<scanSlotBits - 1
	scanGenMask  = 1<<scanGenBits - 1
)

// ScanKeys is RangeKeys in steps, for a walk that spans many calls with
// the store serving reads and writes in between (SCAN): from cursor (0
// starts a walk) it visits about slots index slots, calls fn for every
// live key it meets, and returns the cursor to resume from, 0 once the
// walk is done. It stops early, at a batch boundary, once the keys it
// passed to fn reach maxBytes: a batch stops only where no key can shift
// into the part walked (see rangeCursor), so a step may pass maxBytes by
// the keys up to the next such place: a few, at most a cluster of full
// slots. It holds a shard's lock for as many slots at a time as RangeKeys
// does.
//
// The guarantee is RangeKeys's, across calls: a key live for the whole
// walk is visited at least once. A key may be visited twice: a shard
// whose index was rebuilt (grown or flushed) between two calls is walked
// again from its start. The cursor holds only the low bits of the index's
// generation, so a shard rebuilt exactly a multiple of 64 times between
// two calls is resumed as if it had not been; growth doubles the index,
// so that takes 64 flushes of the store between two calls of one walk.
//
// Keys of one batch share one allocation: a key fn keeps holds its batch
// (about min(maxBytes, 16 KiB) of keys) in memory.
func (s *Store) ScanKeys(cursor uint64, slots, maxBytes int, fn func(key string)) uint64 {
	if cursor>>ScanCursorBits != 0 {
		cursor = 0 // not a cursor ScanKeys made: start over rather than skip keys
	}
	shard := int(cursor >> (scanSlotBits + scanGenBits))
	// A cursor in the middle of a shard resumes there, unless the shard's
	// index has been rebuilt since (collectLocked compares the low bits).
	c := rangeCursor{next: cursor & scanSlotMask, gen: cursor >> scanSlotBits & scanGenMask, started: cursor&scanSlotMask != 0, lowGen: true}
	slots = max(slots, 1)
	var rb rangeBuf
	visited, sent := 0, 0
	for ; shard < len(s.shards); shard, c = shard+1, (rangeCursor{}) {
		sh := &s.shards[shard]
		for {
			done, n := s.collect(sh, &c, &rb, min(rangeKeyBatchBytes, maxBytes), min(slots-visited, s.rangeSlots), false, false)
			visited += n
			keys := string(rb.data)
			for j := range rb.items {
				it := &rb.items[j]
				fn(keys[it.off : it.off+it.klen])
			}
			sent += len(rb.data)
			if done {
				break
			}
			if visited >= slots || sent >= maxBytes {
				return uint64(shard)<<(scanSlotBits+scanGenBits) | (c.gen&scanGenMask)<<scanSlotBits | c.next
			}
		}
		if visited >= slots || sent >= maxBytes {
			if shard+1 == len(s.shards) {
				return 0
			}
			return uint64(shard+1) << (scanSlotBits + scanGenBits)
		}
	}
	return 0
}
