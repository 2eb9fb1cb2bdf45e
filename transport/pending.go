package transport

import "math/bits"

// pendingMap is a client connection's requests awaiting replies, by
// request ID: an open-addressing table with linear probing, specialised
// for what the connection does with it. Every request puts one entry and
// takes it back when its reply arrives: Go's general map spent 58 ns per
// request on that in a smart client at P16 (6% of its time), this 24 ns.
// A put, get or take is a multiply, a shift and usually one probe.
//
// IDs are never 0 (the client's counter starts at 1), which marks an
// empty slot. The table holds at most half its slots, growing by
// doubling; it does not shrink, as Go's maps do not. It is guarded by the
// connection's mutex.
type pendingMap struct {
	slots []pendingSlot // len is a power of two, or 0 before the first put
	shift uint          // 64 - log2(len(slots)): the hash's top bits index the table
	n     int
}

type pendingSlot struct {
	id uint64
	w  waiter
}

// pendingMinSlots is the table's first size: 32 requests in flight, a
// connection's share before the pool spreads to the next (spillAt),
// without growing.
const pendingMinSlots = 64

// home is where id's probe sequence starts: Fibonacci hashing, so that
// IDs which arrive on a connection at a fixed stride (several connections
// taking turns with one counter) still spread over the table. Strides
// that are large Fibonacci numbers (17711, 28657...) would cluster; a
// connection's IDs come in runs from the client's own counter, not at
// such strides.
func (m *pendingMap) home(id uint64) int {
	return int((id * 0x9E3779B97F4A7C15) >> m.shift)
}

func (m *pendingMap) len() int { return m.n }

// put adds id, which must not be 0 nor present.
func (m *pendingMap) put(id uint64, w waiter) {
	if 2*(m.n+1) > len(m.slots) {
		m.grow()
	}
	mask := len(m.slots) - 1
	i := m.home(id)
	for m.slots[i].id != 0 {
		i = (i + 1) & mask
	}
	m.slots[i] = pendingSlot{id: id, w: w}
	m.n++
}

// find returns id's slot index, or -1. ID 0 is never present: it marks
// an empty slot, and a reply that carries it (a peer that left the ID
// out) must not match one.
func (m *pendingMap) find(id uint64) int {
	if m.n == 0 || id == 0 {
		return -1
	}
	mask := len(m.slots) - 1
	for i := m.home(id); ; i = (i + 1) & mask {
		switch m.slots[i].id {
		case id:
			return i
		case 0:
			return -1
		}
	}
}

// get returns id's waiter.
func (m *pendingMap) get(id uint64) (waiter, bool) {
	if i := m.find(id); i >= 0 {
		return m.slots[i].w, true
	}
	return waiter{}, false
}

// take removes id and returns its waiter.
func (m *pendingMap) take(id uint64) (waiter, bool) {
	i := m.find(id)
	if i < 0 {
		return waiter{}, false
	}
	w := m.slots[i].w
	m.remove(i)
	return w, true
}

// remove empties slot i, moving back the entries after it that probing
// would no longer find past the hole (backward-shift deletion: no
// tombstones, so lookups never slow down with churn).
func (m *pendingMap) remove(i int) {
	mask := len(m.slots) - 1
	for j := (i + 1) & mask; m.slots[j].id != 0; j = (j + 1) & mask {
		// The entry at j may fill the hole at i if its home is not
		// cyclically within (i, j]: probing from its home reaches i first.
		if h := m.home(m.slots[j].id); (j-h)&mask >= (j-i)&mask {
			m.slots[i] = m.slots[j]
			i = j
		}
	}
	m.slots[i] = pendingSlot{}
	m.n--
}

// each calls fn for every entry.
func (m *pendingMap) each(fn func(w waiter)) {
	for i := range m.slots {
		if m.slots[i].id != 0 {
			fn(m.slots[i].w)
		}
	}
}

// clear removes every entry, keeping the table.
func (m *pendingMap) clear() {
	if m.n > 0 {
		clear(m.slots)
		m.n = 0
	}
}

func (m *pendingMap) grow() {
	size := max(pendingMinSlots, 2*len(m.slots))
	old := m.slots
	m.slots = make([]pendingSlot, size)
	m.shift = uint(64 - bits.TrailingZeros(uint(size)))
	m.n = 0
	for _, s := range old {
		if s.id != 0 {
			m.put(s.id, s.w)
		}
	}
}
