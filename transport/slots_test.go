package transport

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Waiting callers get freed slots in the order they came, and a caller
// arriving meanwhile does not take a slot ahead of them.
func TestSlotsFirstComeFirstServed(t *testing.T) {
	s := newSlots(1)
	if s.tryTake(1) != 1 {
		t.Fatal("the first slot was not free")
	}
	const waiters = 5
	order := make(chan int, waiters)
	for i := range waiters {
		ch := s.wait()
		if ch == nil {
			t.Fatalf("waiter %d got a slot while none was free", i)
		}
		go func() {
			<-ch
			order <- i
		}()
	}
	for i := range waiters {
		s.release(1)
		if s.tryTake(1) != 0 {
			t.Fatalf("a newcomer took a slot ahead of %d waiting callers", waiters-i)
		}
		select {
		case got := <-order:
			if got != i {
				t.Fatalf("slot %d went to waiter %d, want %d", i, got, i)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("waiter %d never got the slot released for it", i)
		}
	}
	s.release(1)
	if s.load() != 0 || s.waiting.Load() != 0 {
		t.Fatalf("%d slots taken, %d waiting at the end; want 0, 0", s.load(), s.waiting.Load())
	}
}

// One release of several slots serves as many waiters, in one go.
func TestSlotsOneReleaseServesSeveral(t *testing.T) {
	s := newSlots(3)
	if s.tryTake(5) != 3 {
		t.Fatal("tryTake(5) of 3 free slots did not take 3")
	}
	chs := []chan struct{}{s.wait(), s.wait(), s.wait()}
	s.release(2)
	for i, ch := range chs[:2] {
		select {
		case <-ch:
		default:
			t.Fatalf("waiter %d was not handed a slot by a release of 2", i)
		}
	}
	select {
	case <-chs[2]:
		t.Fatal("the third waiter got a slot nobody released")
	default:
	}
	if s.load() != 3 || s.waiting.Load() != 1 {
		t.Fatalf("%d taken, %d waiting; want 3, 1", s.load(), s.waiting.Load())
	}
	s.leave(chs[2])
	s.release(3)
	if s.load() != 0 || s.waiting.Load() != 0 {
		t.Fatalf("%d taken, %d waiting at the end; want 0, 0", s.load(), s.waiting.Load())
	}
}

// A caller that gives up leaves the queue; one that gives up just after
// a slot was handed to it gives the slot back.
func TestSlotsLeave(t *testing.T) {
	s := newSlots(1)
	s.tryTake(1)
	gaveUp, handed := s.wait(), s.wait()
	s.leave(gaveUp)
	s.release(1) // goes to the caller still in line
	select {
	case <-handed:
	default:
		t.Fatal("the release skipped the caller still waiting")
	}
	s.release(1)

	s.tryTake(1)
	late := s.wait()
	s.release(1) // handed to late, which gives up before it notices
	s.leave(late)
	if s.load() != 0 || s.waiting.Load() != 0 {
		t.Fatalf("%d taken, %d waiting after the handed slot came back; want 0, 0", s.load(), s.waiting.Load())
	}
	if s.tryTake(1) != 1 {
		t.Fatal("the slot given back is not free")
	}
}

// Many callers taking and giving back slots, some giving up while they
// wait, never exceed the limit and leave every slot free.
func TestSlotsStress(t *testing.T) {
	for _, max := range []int{1, 2, 5} {
		s := newSlots(max)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var over bool
		for g := range 16 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), uint64(max)))
				for range 500 {
					n := s.tryTake(1 + r.IntN(3))
					if n == 0 {
						ch := s.wait()
						if ch != nil {
							if r.IntN(4) == 0 { // give up at once, handed a slot or not
								s.leave(ch)
								continue
							}
							<-ch
						}
						n = 1
					}
					if s.load() > max {
						mu.Lock()
						over = true
						mu.Unlock()
					}
					s.release(n)
				}
			})
		}
		wg.Wait()
		if over {
			t.Fatalf("max %d: more slots were taken than exist", max)
		}
		if s.load() != 0 || s.waiting.Load() != 0 {
			t.Fatalf("max %d: %d taken, %d waiting at the end; want 0, 0", max, s.load(), s.waiting.Load())
		}
	}
}
