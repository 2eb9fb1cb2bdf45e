package ring_test

import (
	"fmt"
	"testing"

	"github.com/starlingcache/starling/ring"
)

// benchKeys is a power of two so the loop can mask instead of divide, and
// large enough that lookups do not all hit cached table entries.
const benchKeys = 1 << 16

func BenchmarkOwner(b *testing.B) {
	ks := keys(benchKeys)
	for _, n := range []int{10, 100} {
		r := mustNew(b, ring.DefaultConfig(), names(n))
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = r.Owner(ks[i&(benchKeys-1)])
				i++
			}
		})
	}
}

// BenchmarkOwnerParallel shows that readers share one Ring without
// contention.
func BenchmarkOwnerParallel(b *testing.B) {
	ks := keys(benchKeys)
	r := mustNew(b, ring.DefaultConfig(), names(100))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_ = r.Owner(ks[i&(benchKeys-1)])
			i++
		}
	})
}

func BenchmarkAppendOwners(b *testing.B) {
	ks := keys(benchKeys)
	r := mustNew(b, ring.DefaultConfig(), names(100))
	for _, n := range []int{2, 3} {
		b.Run(fmt.Sprintf("members=100/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]string, 0, n)
			i := 0
			for b.Loop() {
				dst = r.AppendOwners(dst[:0], ks[i&(benchKeys-1)], n)
				i++
			}
		})
	}
}

func BenchmarkNew(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		members := names(n)
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ring.New(ring.DefaultConfig(), members); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkShares(b *testing.B) {
	r := mustNew(b, ring.DefaultConfig(), names(100))
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Shares()
	}
}
