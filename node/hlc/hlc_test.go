package hlc

import (
	"sync"
	"testing"
	"time"
)

type fakeWall struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeWall) now() time.Time  { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeWall) set(t time.Time) { f.mu.Lock(); f.t = t; f.mu.Unlock() }

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestVersionsFollowWallTime(t *testing.T) {
	w := &fakeWall{t: t0}
	c := New(7, w.now)
	v1 := c.Now()
	if got := Time(v1); !got.Equal(t0) {
		t.Fatalf("Time(v1) = %v, want %v", got, t0)
	}
	if Tag(v1) != 7 {
		t.Fatalf("Tag = %d, want 7", Tag(v1))
	}
	w.set(t0.Add(5 * time.Millisecond))
	v2 := c.Now()
	if v2 <= v1 || !Time(v2).Equal(t0.Add(5*time.Millisecond)) {
		t.Fatalf("v2 = %x (%v), want later than v1 at t0+5ms", v2, Time(v2))
	}
}

func TestMonotonicWithinAMillisecondAndWhenWallGoesBack(t *testing.T) {
	w := &fakeWall{t: t0}
	c := New(1, w.now)
	prev := c.Now()
	for i := 0; i < 3*counterMax; i++ { // overflows the counter: borrows the next ms
		if i == 100 {
			w.set(t0.Add(-time.Hour)) // NTP step backwards
		}
		v := c.Now()
		if v <= prev {
			t.Fatalf("step %d: %x not after %x", i, v, prev)
		}
		prev = v
	}
}

func TestObserveOrdersAfterRemoteWrites(t *testing.T) {
	slow := New(1, (&fakeWall{t: t0}).now)
	fast := New(2, (&fakeWall{t: t0.Add(time.Minute)}).now)
	remote := fast.Now()
	if local := slow.Now(); local >= remote {
		t.Fatalf("precondition: slow clock's version should be older")
	}
	slow.Observe(remote)
	if local := slow.Now(); local <= remote {
		t.Fatalf("after Observe, %x should order after remote %x", local, remote)
	}
}

func TestTieBreakByTag(t *testing.T) {
	a := New(1, (&fakeWall{t: t0}).now).Now()
	b := New(2, (&fakeWall{t: t0}).now).Now()
	if !(a < b) || a>>tagBits != b>>tagBits {
		t.Fatalf("same instant: a=%x b=%x; want equal time+counter, ordered by tag", a, b)
	}
}

func TestConcurrentNowIsUnique(t *testing.T) {
	c := New(3, nil)
	const G, N = 8, 2000
	out := make(chan uint64, G*N)
	var wg sync.WaitGroup
	for range G {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range N {
				out <- c.Now()
			}
		}()
	}
	wg.Wait()
	close(out)
	seen := make(map[uint64]bool, G*N)
	for v := range out {
		if seen[v] {
			t.Fatalf("version %x issued twice", v)
		}
		seen[v] = true
	}
}

func BenchmarkNow(b *testing.B) {
	c := New(1, nil)
	for b.Loop() {
		c.Now()
	}
}

// TestAtUsesTheCallersReading: At stamps a version from the wall time the
// caller read, ordered after everything issued or observed even when that
// reading is older than the clock's own.
func TestAtUsesTheCallersReading(t *testing.T) {
	w := &fakeWall{t: t0}
	c := New(3, w.now)
	v1 := c.At(t0.Add(2 * time.Millisecond))
	if !Time(v1).Equal(t0.Add(2 * time.Millisecond)) {
		t.Fatalf("At(t0+2ms) = %v", Time(v1))
	}
	v2 := c.At(t0) // a reading made before v1 was issued
	if v2 <= v1 {
		t.Fatalf("At(older) = %x, not after %x", v2, v1)
	}
	v3 := c.Now() // the clock's own reading (t0) is older too
	if v3 <= v2 || Tag(v3) != 3 {
		t.Fatalf("Now = %x, not after %x", v3, v2)
	}
}
