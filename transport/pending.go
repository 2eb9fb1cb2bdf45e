package transport

// pendingMap is a client connection's requests awaiting replies, by
// request ID. A connection numbers its requests itself, consecutively
// (clientConn.nextID), and replies come back roughly in order, so the IDs
// awaiting replies are a window of consecutive numbers that slides along.
// The table is direct-mapped on the ID's low bits: each request sits in
// the slot after the one before it, so a put, get or take is a mask and
// one slot, and the slots in use stay together in a few cache lines.
//
// The hashed table this replaced spread consecutive IDs over the whole
// table on purpose; at P16 in a smart client against three nodes each put
// and take then missed the cache (about 170 ns each, 11% of the client's
// time), the tables having grown to tens of kilobytes while a preload had
// thousands of requests in flight.
//
// An ID whose slot is still held (by a request older by a multiple of the
// table's size, still waiting) goes to a small map beside the table.
// Each request that waits long (a slow read-through load, say) sends
// every len(slots)-th later ID there until it is answered; a map insert
// and delete cost tens of nanoseconds, so a few of them cost the rest
// little. The table grows, by doubling, before it is half full. IDs are
// never 0, which marks an empty slot. It is guarded by the connection's
// mutex.
type pendingMap struct {
	slots []pendingSlot // len is a power of two, or 0 before the first put
	over  map[uint64]waiter
	n     int // entries, in slots and over
}

type pendingSlot struct {
	id uint64
	w  waiter
}

// pendingMinSlots is the table's first size: 32 requests in flight, a
// connection's share before the pool spreads to the next (spillAt),
// without growing.
const pendingMinSlots = 64

func (m *pendingMap) len() int { return m.n }

// put adds id, which must not be 0 nor present.
func (m *pendingMap) put(id uint64, w waiter) {
	if 2*(m.n+1) > len(m.slots) {
		m.grow()
	}
	m.place(id, w)
	m.n++
}

// place puts id in its slot, or beside the table if the slot is taken.
func (m *pendingMap) place(id uint64, w waiter) {
	s := &m.slots[id&uint64(len(m.slots)-1)]
	if s.id == 0 {
		*s = pendingSlot{id: id, w: w}
		return
	}
	if m.over == nil {
		m.over = map[uint64]waiter{}
	}
	m.over[id] = w
}

// get returns id's waiter. ID 0 is never present: it marks an empty
// slot, and a reply that carries it (a peer that left the ID out) must
// not match one.
func (m *pendingMap) get(id uint64) (waiter, bool) {
	if m.n == 0 || id == 0 {
		return waiter{}, false
	}
	if s := &m.slots[id&uint64(len(m.slots)-1)]; s.id == id {
		return s.w, true
	}
	w, ok := m.over[id]
	return w, ok
}

// take removes id and returns its waiter.
func (m *pendingMap) take(id uint64) (waiter, bool) {
	return m.takeOwn(id, nil, nil)
}

// takeOwn is take for the caller that registered id, a call (cl) or one
// of a flight's requests (f): with either set, id is removed only if it
// is still that caller's entry. A request that stops waiting removes
// its entry this way.
func (m *pendingMap) takeOwn(id uint64, f *Flight, cl *call) (waiter, bool) {
	if m.n == 0 || id == 0 {
		return waiter{}, false
	}
	check := f != nil || cl != nil
	if s := &m.slots[id&uint64(len(m.slots)-1)]; s.id == id {
		if check && (s.w.f != f || s.w.cl != cl) {
			return waiter{}, false
		}
		w := s.w
		*s = pendingSlot{}
		m.n--
		return w, true
	}
	w, ok := m.over[id]
	if !ok || check && (w.f != f || w.cl != cl) {
		return waiter{}, false
	}
	delete(m.over, id)
	m.n--
	return w, true
}

// each calls fn for every entry.
func (m *pendingMap) each(fn func(w waiter)) {
	for i := range m.slots {
		if m.slots[i].id != 0 {
			fn(m.slots[i].w)
		}
	}
	for _, w := range m.over {
		fn(w)
	}
}

// clear removes every entry, keeping the table.
func (m *pendingMap) clear() {
	if m.n > 0 {
		clear(m.slots)
		clear(m.over)
		m.n = 0
	}
}

// grow doubles the table, moving every entry to its slot in the new one
// (those beside the table too: most find their slot free now).
func (m *pendingMap) grow() {
	old, over := m.slots, m.over
	m.slots = make([]pendingSlot, max(pendingMinSlots, 2*len(old)))
	m.over = nil
	for _, s := range old {
		if s.id != 0 {
			m.place(s.id, s.w)
		}
	}
	for id, w := range over {
		m.place(id, w)
	}
}
