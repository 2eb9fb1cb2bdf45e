package metrics

import (
	"sync"
	"testing"
	"time"

	"github.com/starlingcache/starling/transport"
)

// TestObserveCounts records a known sequence and checks every counter it
// should have moved, and only those.
func TestObserveCounts(t *testing.T) {
	r := NewRecorder()
	r.Observe(transport.OpGet, OK, false, 5*time.Microsecond)        // bucket 0 (<=10µs)
	r.Observe(transport.OpGet, NotFound, false, 10*time.Microsecond) // bucket 0, bound inclusive
	r.Observe(transport.OpGet, OK, true, 300*time.Microsecond)       // bucket 5 (<=500µs)
	r.Observe(transport.OpSet, Error, true, 10*time.Second)          // beyond every bound
	r.AddBytes(100, 40)
	r.AddBytes(-5, 2) // negative ignored

	s := r.Snapshot()
	if s.BytesIn != 100 || s.BytesOut != 42 {
		t.Errorf("bytes = %d in, %d out; want 100, 42", s.BytesIn, s.BytesOut)
	}
	if got := s.Requests(); got != 4 {
		t.Errorf("Requests() = %d, want 4", got)
	}
	if len(s.Ops) != 2 || s.Ops[0].Op != transport.OpGet || s.Ops[1].Op != transport.OpSet {
		t.Fatalf("ops = %+v, want get and set", s.Ops)
	}
	get, set := s.Ops[0], s.Ops[1]
	if get.Name() != "get" {
		t.Errorf("Name() = %q", get.Name())
	}
	if get.Local.Results != [NumResults]uint64{1, 1, 0} {
		t.Errorf("get local results = %v", get.Local.Results)
	}
	if get.Forwarded.Results != [NumResults]uint64{1, 0, 0} {
		t.Errorf("get forwarded results = %v", get.Forwarded.Results)
	}
	if get.Local.Buckets[0] != 2 || get.Local.Observations() != 2 {
		t.Errorf("get local buckets = %v", get.Local.Buckets)
	}
	if get.Forwarded.Buckets[5] != 1 || get.Forwarded.Observations() != 1 {
		t.Errorf("get forwarded buckets = %v", get.Forwarded.Buckets)
	}
	if get.Local.Sum != 15*time.Microsecond || get.Forwarded.Sum != 300*time.Microsecond {
		t.Errorf("get sums = %v, %v", get.Local.Sum, get.Forwarded.Sum)
	}
	if set.Forwarded.Results[Error] != 1 || set.Forwarded.Buckets[NumBuckets-1] != 1 || set.Local.Requests() != 0 {
		t.Errorf("set = %+v", set)
	}
	tot := get.Total()
	if tot.Requests() != 3 || tot.Sum != 315*time.Microsecond {
		t.Errorf("get total = %+v", tot)
	}
}

// TestObserveOutOfRange shows that values no caller should pass (an op
// byte beyond the table, a result beyond Error, a negative duration) are
// folded into safe slots instead of panicking.
func TestObserveOutOfRange(t *testing.T) {
	r := NewRecorder()
	r.Observe(transport.Op(200), Result(9), false, -time.Second)
	r.Observe(0, OK, false, time.Millisecond)
	s := r.Snapshot()
	if len(s.Ops) != 1 || s.Ops[0].Op != 0 || s.Ops[0].Name() != "other" {
		t.Fatalf("ops = %+v, want one \"other\"", s.Ops)
	}
	c := s.Ops[0].Local
	if c.Results[Error] != 1 || c.Results[OK] != 1 || c.Buckets[0] != 1 || c.Sum != time.Millisecond {
		t.Errorf("other = %+v", c)
	}
}

// TestNilRecorder: a node without metrics may call a nil Recorder.
func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.Observe(transport.OpGet, OK, false, time.Millisecond)
	r.AddBytes(1, 1)
	if s := r.Snapshot(); len(s.Ops) != 0 || s.BytesIn != 0 {
		t.Errorf("nil recorder snapshot = %+v", s)
	}
}

// TestConcurrentObserve checks that striping loses no update: the sum over
// stripes equals what many goroutines recorded.
func TestConcurrentObserve(t *testing.T) {
	r := newRecorder(8)
	const goroutines, each = 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r.Observe(transport.OpGet, Result(i%NumResults), g%2 == 0, time.Duration(i)*time.Microsecond)
				r.AddBytes(1, 2)
			}
		}()
	}
	wg.Wait()
	s := r.Snapshot()
	if got := s.Requests(); got != goroutines*each {
		t.Errorf("requests = %d, want %d", got, goroutines*each)
	}
	if s.BytesIn != goroutines*each || s.BytesOut != 2*goroutines*each {
		t.Errorf("bytes = %d/%d", s.BytesIn, s.BytesOut)
	}
	tot := s.Ops[0].Total()
	if tot.Observations() != goroutines*each {
		t.Errorf("observations = %d", tot.Observations())
	}
}

// TestObserveAllocs proves the hot path allocates nothing.
func TestObserveAllocs(t *testing.T) {
	r := NewRecorder()
	allocs := testing.AllocsPerRun(1000, func() {
		r.Observe(transport.OpGet, OK, true, 42*time.Microsecond)
		r.AddBytes(10, 20)
	})
	if allocs != 0 {
		t.Errorf("Observe+AddBytes allocate %v times per call, want 0", allocs)
	}
}

func TestQuantile(t *testing.T) {
	var c Counts
	if c.Quantile(0.5) != 0 {
		t.Errorf("empty quantile = %v", c.Quantile(0.5))
	}
	c.Buckets[0] = 90 // <=10µs
	c.Buckets[6] = 9  // <=1ms
	c.Buckets[NumBuckets-1] = 1
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 10 * time.Microsecond},
		{0.9, 10 * time.Microsecond},
		{0.95, time.Millisecond},
		{1, 5 * time.Second},
	} {
		if got := c.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestBoundsAscending(t *testing.T) {
	b := Bounds()
	if len(b) != NumBuckets-1 {
		t.Fatalf("len(Bounds()) = %d, NumBuckets = %d", len(b), NumBuckets)
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Errorf("bounds not ascending at %d: %v", i, b)
		}
	}
	b[0] = 0 // the caller's copy
	if Bounds()[0] == 0 {
		t.Error("Bounds returned the package's own array")
	}
}

func TestResultOf(t *testing.T) {
	for code, want := range map[transport.Code]Result{
		transport.CodeOK:          OK,
		transport.CodeNotFound:    NotFound,
		transport.CodeUnavailable: Error,
		transport.CodeBadRequest:  Error,
	} {
		if got := ResultOf(code); got != want {
			t.Errorf("ResultOf(%d) = %v, want %v", code, got, want)
		}
	}
	if OK.String() != "ok" || NotFound.String() != "not_found" || Error.String() != "error" {
		t.Error("result names changed: they are metric label values")
	}
}

// TestObserveNMatchesRepeatedObserve checks that counting n alike
// requests at once moves every counter exactly as n Observe calls do, and
// that n <= 0 records nothing.
func TestObserveNMatchesRepeatedObserve(t *testing.T) {
	one, many := NewRecorder(), NewRecorder()
	for range 7 {
		one.Observe(transport.OpGet, OK, true, 300*time.Microsecond)
	}
	one.Observe(transport.OpSet, Error, false, 2*time.Millisecond)
	many.ObserveN(transport.OpGet, OK, true, 300*time.Microsecond, 7)
	many.ObserveN(transport.OpSet, Error, false, 2*time.Millisecond, 1)
	many.ObserveN(transport.OpSet, OK, false, time.Second, 0)
	many.ObserveN(transport.OpSet, OK, false, time.Second, -3)
	var nilRec *Recorder
	nilRec.ObserveN(transport.OpGet, OK, false, time.Second, 2) // no panic
	a, b := one.Snapshot(), many.Snapshot()
	if len(a.Ops) != len(b.Ops) {
		t.Fatalf("ops: %d vs %d", len(a.Ops), len(b.Ops))
	}
	for i := range a.Ops {
		if a.Ops[i] != b.Ops[i] {
			t.Errorf("op %d: Observe x n = %+v, ObserveN = %+v", i, a.Ops[i], b.Ops[i])
		}
	}
	if b.Requests() != 8 {
		t.Errorf("Requests() = %d, want 8", b.Requests())
	}
}
