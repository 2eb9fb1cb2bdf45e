package transport

import (
	"sync"
	"sync/atomic"
)

// slots bounds the requests in flight on one client connection. While
// nobody waits, taking slots is one compare-and-swap and giving them back
// one atomic add: a flight takes all its slots in one step, the replies of
// one read give theirs back in one, with no lock per request. A caller
// that finds no free slot joins a queue, and release hands freed slots to
// the queue in order, so a waiting caller is never overtaken by later
// ones (a fast path that grabbed freed slots first would leave it waiting
// for as long as others keep arriving).
type slots struct {
	used atomic.Int32
	max  int32
	// waiting mirrors len(queue) for the fast paths. A caller counts
	// itself in before its last try for a free slot, and release gives
	// slots back before it looks: so either that try sees the slot, or
	// release sees the waiter and hands the slot over.
	waiting atomic.Int32

	mu    sync.Mutex
	queue []chan struct{} // first come first served; each has room for its one signal
}

func newSlots(max int) *slots {
	return &slots{max: int32(min(max, 1<<30))}
}

// load is how many slots are taken.
func (s *slots) load() int { return int(s.used.Load()) }

// free reports whether n more slots are free now (a hint).
func (s *slots) free(n int) bool { return s.load()+n <= int(s.max) }

// tryTake takes up to n slots, as many as are free now, unless callers
// are waiting for one, and returns how many it took.
func (s *slots) tryTake(n int) int {
	if s.waiting.Load() > 0 {
		return 0
	}
	return s.grab(n)
}

// grab takes up to n free slots, whoever waits.
func (s *slots) grab(n int) int {
	for n > 0 {
		cur := s.used.Load()
		avail := int(s.max - cur)
		if avail <= 0 {
			return 0
		}
		k := int32(min(avail, n))
		if s.used.CompareAndSwap(cur, cur+k) {
			return int(k)
		}
	}
	return 0
}

// wait takes a slot if one is free and nobody is ahead in the queue
// (ch nil); otherwise it queues the caller, and ch receives once the slot
// is the caller's. A caller that stops waiting must call leave(ch).
func (s *slots) wait() (ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting.Add(1)
	if len(s.queue) == 0 && s.grab(1) == 1 {
		s.waiting.Add(-1)
		return nil
	}
	ch = make(chan struct{}, 1)
	s.queue = append(s.queue, ch)
	return ch
}

// leave takes a caller that gave up out of the queue; if a slot was
// handed to it meanwhile, it is given back.
func (s *slots) leave(ch chan struct{}) {
	s.mu.Lock()
	for i, q := range s.queue {
		if q == ch {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			s.waiting.Add(-1)
			s.mu.Unlock()
			return
		}
	}
	s.mu.Unlock()
	<-ch // handed over: the signal is already in ch
	s.release(1)
}

// release gives n slots back, handing them to waiting callers first.
func (s *slots) release(n int) {
	s.used.Add(-int32(n))
	if s.waiting.Load() == 0 {
		return
	}
	s.mu.Lock()
	for len(s.queue) > 0 && s.grab(1) == 1 {
		ch := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.waiting.Add(-1)
		ch <- struct{}{}
	}
	if len(s.queue) == 0 {
		s.queue = nil // do not keep a long queue's array
	}
	s.mu.Unlock()
}
