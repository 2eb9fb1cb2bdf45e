package metrics

import (
	"runtime"
	"testing"
	"time"

	"github.com/starlingcache/starling/transport"
)

// stripings are the Recorder layouts the benchmarks compare: what
// NewRecorder builds, and a single shared stripe.
func stripings() []struct {
	name    string
	stripes int
} {
	return []struct {
		name    string
		stripes int
	}{
		{"striped", 2 * runtime.GOMAXPROCS(0)},
		{"one-stripe", 1},
	}
}

// BenchmarkObserve is one request's recording cost (Observe and AddBytes)
// on one goroutine.
func BenchmarkObserve(b *testing.B) {
	for _, bc := range stripings() {
		b.Run(bc.name, func(b *testing.B) {
			r := newRecorder(bc.stripes)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.Observe(transport.OpGet, OK, false, time.Duration(i&1023)*time.Microsecond)
				r.AddBytes(64, 128)
			}
		})
	}
}

// BenchmarkObserveParallel records from every processor at once, as a
// busy node does; comparing the two layouts shows what striping buys
// under contention.
func BenchmarkObserveParallel(b *testing.B) {
	for _, bc := range stripings() {
		b.Run(bc.name, func(b *testing.B) {
			r := newRecorder(bc.stripes)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					r.Observe(transport.OpGet, OK, i&7 == 0, time.Duration(i&1023)*time.Microsecond)
					r.AddBytes(64, 128)
					i++
				}
			})
		})
	}
}

// BenchmarkSnapshot is the read side's cost, paid once per scrape or
// status poll.
func BenchmarkSnapshot(b *testing.B) {
	r := NewRecorder()
	for op := transport.OpPing; op <= transport.OpLoad; op++ {
		r.Observe(op, OK, false, time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Snapshot()
	}
}
