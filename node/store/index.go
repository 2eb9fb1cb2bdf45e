package store

// index is a shard's hash index: an open-addressing table of uint64 slots,
// linear probing, backward-shift deletion (no tombstones). It holds no
// pointers, so the garbage collector never scans it.
//
// A slot packs a 28-bit hash tag, the log an entry lives in and the low 35
// bits of its position in that log:
//
//	| tag (28) | log (1) | position mod 2^35 (35) |
//
// Zero marks an empty slot; tags are never zero.
type index struct {
	slots []uint64
	bits  uint // len(slots) == 1<<bits
	n     int
	// gen counts rebuilds of the table (init, grow): a rebuild moves every
	// slot, so a walk by slot position (see rangeCursor) restarts when it
	// changes. Nothing else moves a key's slot except backward-shift
	// deletion, which only moves a slot towards its home (see remove).
	gen uint64
}

const (
	posBits       = 35
	posMask       = 1<<posBits - 1
	tagShift      = posBits + 1
	minIndexBits  = 6
	indexMaxLoadN = 3 // grow above 3/4 full
	indexMaxLoadD = 4
)

func tagOf(h uint64) uint32 {
	t := uint32(h>>4) & (1<<28 - 1)
	if t == 0 {
		t = 1
	}
	return t
}

func packSlot(tag uint32, log int, pos uint64) uint64 {
	return uint64(tag)<<tagShift | uint64(log)<<posBits | pos&posMask
}

func slotTag(s uint64) uint32 { return uint32(s >> tagShift) }
func slotLog(s uint64) int    { return int(s>>posBits) & 1 }
func slotPos(s uint64) uint64 { return s & posMask }

func (ix *index) init(bits uint) {
	ix.bits = bits
	ix.slots = make([]uint64, 1<<bits)
	ix.n = 0
	ix.gen++
}

func (ix *index) bytes() int64 { return int64(len(ix.slots)) * 8 }

// home is where a tag's probe sequence starts: a multiplicative hash of the
// tag, so it can be recomputed from the slot alone when shifting.
func (ix *index) home(tag uint32) uint64 {
	return (uint64(tag) * 0x9E3779B97F4A7C15) >> (64 - ix.bits)
}

func (ix *index) mask() uint64 { return uint64(len(ix.slots) - 1) }

// stopsAt reports whether a walk by slot may stop before the full slot c
// and resume there: whether every key from c to the end of its cluster has
// its home at c or beyond (and not wrapped round from the table's end), so
// that backward shifts, which never move a key past its home, cannot carry
// it below c (see rangeCursor). Slots past the table's end wrap to its
// start, which the walk has been through already.
func (ix *index) stopsAt(c uint64) bool {
	for s := c; s < uint64(len(ix.slots)); s++ {
		v := ix.slots[s]
		if v == 0 {
			return true
		}
		if h := ix.home(slotTag(v)); h < c || h > s {
			return false
		}
	}
	return true
}

// needsGrow reports whether one more insert would pass the load limit.
func (ix *index) needsGrow() bool {
	return (ix.n+1)*indexMaxLoadD > len(ix.slots)*indexMaxLoadN
}

// insert adds a slot value; the caller has made room (see needsGrow).
func (ix *index) insert(v uint64) {
	m := ix.mask()
	i := ix.home(slotTag(v))
	for ix.slots[i] != 0 {
		i = (i + 1) & m
	}
	ix.slots[i] = v
	ix.n++
}

// find returns the index of the slot holding v, which must be present.
func (ix *index) find(v uint64) uint64 {
	m := ix.mask()
	for i := ix.home(slotTag(v)); ; i = (i + 1) & m {
		switch ix.slots[i] {
		case v:
			return i
		case 0:
			panic("store: slot missing from index")
		}
	}
}

// remove deletes slot i and shifts later members of its cluster back so
// that every probe sequence stays unbroken.
func (ix *index) remove(i uint64) {
	m := ix.mask()
	for {
		ix.slots[i] = 0
		j := i
		for {
			j = (j + 1) & m
			v := ix.slots[j]
			if v == 0 {
				ix.n--
				return
			}
			h := ix.home(slotTag(v))
			// v may move to i if its home is not in the cyclic range (i, j].
			if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
				ix.slots[i] = v
				i = j
				break
			}
		}
	}
}

// grow doubles the table.
func (ix *index) grow() {
	old := ix.slots
	ix.init(ix.bits + 1)
	for _, v := range old {
		if v != 0 {
			ix.insert(v)
		}
	}
}
