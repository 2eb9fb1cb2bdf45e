package store

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Benchmarks and measurements. The go test -bench benchmarks run as usual;
// the heavier measurements (per-entry overhead, GC share, hit ratios) are
// tests gated by environment variables so CI stays fast:
//
//	STORE_OVERHEAD=1000000 go test -run TestOverhead -v ./node/store
//	STORE_GC=10000000      go test -run TestGCOverwrite -v ./node/store
//	STORE_HITRATIO=1       go test -run TestHitRatio -v ./node/store

const benchEntries = 1_000_000

// key16 formats i as a 16-byte key.
func key16(i int) string {
	var b [16]byte
	return string(putKey16(&b, i))
}

// putKey16 formats i as a 16-byte key into b. Benchmarks build keys in a
// per-goroutine buffer, as a server would decode them into a request
// buffer: reading them from a large pre-built []string would add two cache
// (and, on this VM, very costly TLB) misses per operation that have nothing
// to do with the store.
func putKey16(b *[16]byte, i int) []byte {
	copy(b[:], "key:")
	binary.BigEndian.PutUint64(b[8:], uint64(i)*0x9E3779B97F4A7C15)
	for j := 4; j < 8; j++ {
		b[j] = '0' + byte(i>>(j*3)&7)
	}
	return b[:]
}

func benchStore(b *testing.B, policy string) *Store {
	b.Helper()
	return benchStoreN(b, policy, benchEntries)
}

// benchStoreN is a 512 MiB store holding the given number of entries,
// each a 16-byte key and a 100-byte value.
func benchStoreN(b *testing.B, policy string, entries int) *Store {
	b.Helper()
	cfg := DefaultConfig()
	cfg.MaxMemory = 512 << 20
	cfg.Policy = policy
	cfg.SweepInterval = time.Hour
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	val := make([]byte, 100)
	var kb [16]byte
	for i := range entries {
		if err := s.Set(string(putKey16(&kb, i)), val, 0); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func BenchmarkGetParallel(b *testing.B) {
	for _, policy := range []string{PolicyS3FIFO, PolicyLRU} {
		b.Run(policy, func(b *testing.B) {
			s := benchStore(b, policy)
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(seed.Add(1), 7))
				buf := make([]byte, 0, 128)
				var kb [16]byte
				for pb.Next() {
					var ok bool
					buf, _, ok = s.AppendGet(buf[:0], string(putKey16(&kb, rng.IntN(benchEntries))))
					if !ok {
						b.Error("miss")
						return
					}
				}
			})
		})
	}
}

func BenchmarkGetCopyParallel(b *testing.B) {
	s := benchStore(b, PolicyS3FIFO)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 7))
		var kb [16]byte
		for pb.Next() {
			if _, _, ok := s.Get(string(putKey16(&kb, rng.IntN(benchEntries)))); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

func BenchmarkSetParallel(b *testing.B) {
	for _, policy := range []string{PolicyS3FIFO, PolicyLRU} {
		b.Run(policy, func(b *testing.B) {
			s := benchStore(b, policy)
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(seed.Add(1), 9))
				val := make([]byte, 100)
				var kb [16]byte
				for pb.Next() {
					val[0]++
					if err := s.Set(string(putKey16(&kb, rng.IntN(benchEntries))), val, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSetEvictParallel writes unique keys into a full store, so every
// write evicts.
func BenchmarkSetEvictParallel(b *testing.B) {
	cfg := DefaultConfig()
	cfg.MaxMemory = 64 << 20
	cfg.SweepInterval = time.Hour
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		val := make([]byte, 100)
		var kb [16]byte
		for pb.Next() {
			binary.BigEndian.PutUint64(kb[8:], uint64(next.Add(1))*0x9E3779B97F4A7C15)
			if err := s.Set(string(kb[:]), val, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUpdateParallel measures Update on a full store: "derive" bumps
// the version and keeps the value (the coordinator's read-modify-write, an
// in-place overwrite), "lww" applies a newer 100-byte copy as a replica
// does, and "tombstone" replaces entries with tombstones and back. The
// "nocopy" variants call UpdateNoCopy, which returns no copy of the result.
func BenchmarkUpdateParallel(b *testing.B) {
	s := benchStore(b, PolicyS3FIFO)
	var clock atomic.Uint64 // stands in for the node's hybrid logical clock
	fns := []struct {
		name string
		fn   func(in *Entry) func(cur Entry, found bool) (Entry, bool)
	}{
		{"derive", func(*Entry) func(Entry, bool) (Entry, bool) {
			return func(cur Entry, found bool) (Entry, bool) {
				cur.Version++
				return cur, found
			}
		}},
		{"lww", func(in *Entry) func(Entry, bool) (Entry, bool) {
			return func(cur Entry, found bool) (Entry, bool) {
				return *in, !found || cur.Version < in.Version
			}
		}},
		{"tombstone", func(in *Entry) func(Entry, bool) (Entry, bool) {
			return func(cur Entry, found bool) (Entry, bool) {
				next := *in
				next.Tombstone = found && !cur.Tombstone
				return next, true
			}
		}},
	}
	for _, tc := range fns {
		for _, noCopy := range []bool{false, true} {
			name := tc.name
			if noCopy {
				name += "-nocopy"
			}
			b.Run(name, func(b *testing.B) {
				var seed atomic.Uint64
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					rng := rand.New(rand.NewPCG(seed.Add(1), 11))
					in := Entry{Value: make([]byte, 100)}
					fn := tc.fn(&in)
					var kb [16]byte
					for pb.Next() {
						in.Version = clock.Add(1)
						i := rng.IntN(benchEntries)
						var err error
						if noCopy {
							_, err = s.UpdateNoCopy(string(putKey16(&kb, i)), fn)
						} else {
							_, _, err = s.Update(string(putKey16(&kb, i)), fn)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkLookupParallel measures Lookup, which copies the value out.
func BenchmarkLookupParallel(b *testing.B) {
	s := benchStore(b, PolicyS3FIFO)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 13))
		var kb [16]byte
		for pb.Next() {
			if _, ok := s.Lookup(string(putKey16(&kb, rng.IntN(benchEntries)))); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

func BenchmarkGetManyParallel(b *testing.B) {
	s := benchStore(b, PolicyS3FIFO)
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 3))
		batch := make([]string, 16)
		for i := range batch {
			batch[i] = key16(rng.IntN(benchEntries))
		}
		fn := func(int, []byte, int64, bool) {}
		for pb.Next() {
			s.GetMany(batch, fn)
		}
	})
}

// BenchmarkRange measures a whole-store walk of benchEntries entries (one
// op is one walk), as a rebalance or DBSIZE does.
func BenchmarkRange(b *testing.B) {
	s := benchStore(b, PolicyS3FIFO)
	walks := []struct {
		name string
		walk func() int
	}{
		{"Range", func() int {
			n := 0
			s.Range(func(string, []byte, int64, uint64) bool { n++; return true })
			return n
		}},
		{"RangeEntries", func() int {
			n := 0
			s.RangeEntries(func(string, Entry) bool { n++; return true })
			return n
		}},
		{"RangeKeys", func() int {
			n := 0
			s.RangeKeys(func(string, bool, int64) bool { n++; return true })
			return n
		}},
	}
	for _, w := range walks {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if n := w.walk(); n != benchEntries {
					b.Fatalf("walked %d entries, want %d", n, benchEntries)
				}
			}
		})
	}
}

// ---- memory measurements ---------------------------------------------------

func envInt(t *testing.T, name string) int {
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("set %s to run", name)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// rss returns the resident set size in bytes, from /proc/self/statm.
func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// peakRSS returns VmHWM from /proc/self/status.
func peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// TestOverhead measures RSS per entry beyond the payload for N entries of
// 16-byte keys and 100-byte values.
func TestOverhead(t *testing.T) {
	n := envInt(t, "STORE_OVERHEAD")
	settle()
	before := rss(t)
	cfg := DefaultConfig()
	cfg.MaxMemory = int64(n) * 200
	cfg.SweepInterval = time.Hour
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 100)
	var kb [16]byte
	for i := range n {
		binary.BigEndian.PutUint64(kb[:8], uint64(i)*0x9E3779B97F4A7C15)
		binary.BigEndian.PutUint64(kb[8:], uint64(i))
		if err := s.Set(string(kb[:]), val, 0); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	after := rss(t)
	st := s.Stats()
	if st.Entries != int64(n) {
		t.Fatalf("stored %d of %d entries", st.Entries, n)
	}
	payload := int64(n) * 116
	t.Logf("entries=%d shards=%d payload=%.1f MiB rss_delta=%.1f MiB charged=%.1f MiB", n, s.NumShards(),
		float64(payload)/(1<<20), float64(after-before)/(1<<20), float64(st.Bytes)/(1<<20))
	t.Logf("overhead per entry: rss %.1f bytes, charged %.1f bytes",
		float64(after-before-payload)/float64(n), float64(st.Bytes-payload)/float64(n))
	runtime.KeepAlive(s)
}

// processCPU returns the process's user+system CPU seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// cpuMetrics reads GC and total user CPU seconds from runtime/metrics.
func cpuMetrics() (gc, user float64) {
	ms := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/user:cpu-seconds"}}
	metrics.Read(ms)
	return ms[0].Value.Float64(), ms[1].Value.Float64()
}

// TestGCOverwrite fills the store with N entries and overwrites random keys
// from two goroutines for a few seconds, reporting the GC's share of CPU
// and peak RSS against live data.
func TestGCOverwrite(t *testing.T) {
	n := envInt(t, "STORE_GC")
	cfg := DefaultConfig()
	cfg.MaxMemory = int64(n) * 150
	cfg.SweepInterval = 100 * time.Millisecond
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := func(kb *[16]byte, i int) string {
		binary.BigEndian.PutUint64(kb[:8], uint64(i)*0x9E3779B97F4A7C15)
		binary.BigEndian.PutUint64(kb[8:], uint64(i))
		return string(kb[:])
	}
	val := make([]byte, 100)
	var kb [16]byte
	for i := range n {
		if err := s.Set(key(&kb, i), val, 0); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	gc0, _ := cpuMetrics()
	cpu0 := processCPU()
	var ops atomic.Int64
	deadline := time.Now().Add(5 * time.Second)
	done := make(chan struct{})
	for w := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			v := make([]byte, 100)
			var kb [16]byte
			for c := 0; ; c++ {
				if c%1024 == 0 && time.Now().After(deadline) {
					return
				}
				i := rng.IntN(n)
				v[0] = byte(c)
				ttl := int64(0)
				if c%4 == 0 {
					ttl = time.Now().Add(time.Hour).UnixNano()
				}
				_ = s.Set(key(&kb, i), v, ttl)
				_, _, _ = s.AppendGet(v[:0], key(&kb, rng.IntN(n)))
				v = v[:100]
				ops.Add(2)
			}
		}()
	}
	<-done
	<-done
	cpu1 := processCPU()
	runtime.ReadMemStats(&ms1)
	// The cpu-class metrics are brought up to date at the end of a GC cycle;
	// force one so the window is fully accounted (this over-counts by one
	// cycle).
	runtime.GC()
	gc1, _ := cpuMetrics()
	st := s.Stats()
	live := int64(n) * 116
	t.Logf("entries=%d ops=%d (%.0f/s) gc_cycles_in_window=%d process_cpu=%.2fs gc_cpu(incl. one forced cycle)=%.3fs gc_share<=%.2f%%",
		st.Entries, ops.Load(), float64(ops.Load())/5, ms1.NumGC-ms0.NumGC, cpu1-cpu0, gc1-gc0, 100*(gc1-gc0)/(cpu1-cpu0))
	t.Logf("live payload=%.0f MiB charged=%.0f MiB peak_rss=%.0f MiB peak/live=%.2f peak/max_memory=%.2f", float64(live)/(1<<20),
		float64(st.Bytes)/(1<<20), float64(peakRSS(t))/(1<<20), float64(peakRSS(t))/float64(live), float64(peakRSS(t))/float64(cfg.MaxMemory))
}

// TestFloodRSS writes unique keys far beyond MaxMemory and reports peak RSS
// against MaxMemory (target: at most 1.3x).
func TestFloodRSS(t *testing.T) {
	mib := envInt(t, "STORE_FLOOD_MIB")
	cfg := DefaultConfig()
	cfg.MaxMemory = int64(mib) << 20
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 100)
	var kb [16]byte
	n := int(cfg.MaxMemory / 116 * 4)
	for i := range n {
		binary.BigEndian.PutUint64(kb[:8], uint64(i)*0x9E3779B97F4A7C15)
		binary.BigEndian.PutUint64(kb[8:], uint64(i))
		if i%7 == 0 {
			val = val[:1+i%1000]
		} else {
			val = val[:100]
		}
		if cap(val) < 1000 {
			val = make([]byte, 1000)[:100]
		}
		if err := s.Set(string(kb[:]), val, 0); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	t.Logf("writes=%d entries=%d charged=%.0f MiB max=%d MiB peak_rss=%.0f MiB ratio=%.2f", n, st.Entries,
		float64(st.Bytes)/(1<<20), mib, float64(peakRSS(t))/(1<<20), float64(peakRSS(t))/float64(cfg.MaxMemory))
}

// ---- hit ratio --------------------------------------------------------------

// zipfGen draws ranks in [0, n) with P(k) proportional to 1/(k+1)^alpha,
// by binary search in the cumulative distribution (alpha may be below 1,
// which math/rand's Zipf does not support).
type zipfGen struct {
	cdf []float64
	rng *rand.Rand
}

func newZipf(n int, alpha float64, seed uint64) *zipfGen {
	cdf := make([]float64, n)
	sum := 0.0
	for i := range n {
		sum += 1 / math.Pow(float64(i+1), alpha)
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	return &zipfGen{cdf: cdf, rng: rand.New(rand.NewPCG(seed, 42))}
}

func (z *zipfGen) next() int {
	u := z.rng.Float64()
	lo, hi := 0, len(z.cdf)-1
	for lo < hi {
		m := (lo + hi) / 2
		if z.cdf[m] < u {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// trace builds a request sequence of key ids. scanEvery > 0 mixes in a
// sequential scan of scanLen never-repeated keys after every scanEvery
// Zipf requests.
func trace(keySpace int, alpha float64, n, scanEvery, scanLen int) []int32 {
	z := newZipf(keySpace, alpha, uint64(alpha*1000))
	perm := rand.New(rand.NewPCG(5, 5)).Perm(keySpace)
	out := make([]int32, 0, n)
	scanKey := keySpace
	for len(out) < n {
		out = append(out, int32(perm[z.next()]))
		if scanEvery > 0 && len(out)%scanEvery == 0 {
			for range scanLen {
				out = append(out, int32(scanKey))
				scanKey++
			}
		}
	}
	return out[:n]
}

type cachePolicy interface {
	access(id int32) bool // reports a hit; on a miss inserts
}

type storeCache struct {
	s    *Store
	keys []string
	buf  []byte
	val  []byte
}

func (c *storeCache) access(id int32) bool {
	var ok bool
	c.buf, _, ok = c.s.AppendGet(c.buf[:0], c.key(id))
	if !ok {
		_ = c.s.Set(c.key(id), c.val, 0)
	}
	return ok
}

func (c *storeCache) key(id int32) string {
	for int(id) >= len(c.keys) {
		c.keys = append(c.keys, "k"+strconv.Itoa(len(c.keys)))
	}
	return c.keys[id]
}

// newSizedStore returns a store whose memory holds about capacity entries
// of the trace's shape, calibrated by filling it with unique keys.
func newSizedStore(t *testing.T, policy string, capacity int) *Store {
	shards := 1
	for shards < 64 && capacity/(shards*2) >= 2500 {
		shards *= 2
	}
	mem := int64(capacity) * 150
	for range 3 {
		cfg := DefaultConfig()
		cfg.MaxMemory = max(mem, MinMemory)
		cfg.Shards = shards
		cfg.MaxValueSize = 4096
		cfg.Policy = policy
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		val := make([]byte, 100)
		for i := range capacity * 3 {
			_ = s.Set("c"+strconv.Itoa(10_000_000+i), val, 0)
		}
		n := s.Len()
		s.Close()
		mem = mem * int64(capacity) / int64(n)
	}
	cfg := DefaultConfig()
	cfg.MaxMemory = max(mem, MinMemory)
	cfg.Shards = shards
	cfg.MaxValueSize = 4096
	cfg.Policy = policy
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lruSim is an exact, count-based LRU, the textbook baseline.
type lruSim struct {
	cap        int
	prev, next map[int32]int32
	head, tail int32 // head = most recent
}

func newLRUSim(capacity int) *lruSim {
	return &lruSim{cap: capacity, prev: map[int32]int32{}, next: map[int32]int32{}, head: -1, tail: -1}
}

func (l *lruSim) unlink(id int32) {
	p, n := l.prev[id], l.next[id]
	if p >= 0 {
		l.next[p] = n
	} else {
		l.head = n
	}
	if n >= 0 {
		l.prev[n] = p
	} else {
		l.tail = p
	}
}

func (l *lruSim) pushFront(id int32) {
	l.prev[id] = -1
	l.next[id] = l.head
	if l.head >= 0 {
		l.prev[l.head] = id
	}
	l.head = id
	if l.tail < 0 {
		l.tail = id
	}
}

func (l *lruSim) access(id int32) bool {
	if _, ok := l.prev[id]; ok {
		l.unlink(id)
		l.pushFront(id)
		return true
	}
	if len(l.prev) >= l.cap {
		t := l.tail
		l.unlink(t)
		delete(l.prev, t)
		delete(l.next, t)
	}
	l.pushFront(id)
	return false
}

func hitRatio(c cachePolicy, tr []int32) float64 {
	hits := 0
	for _, id := range tr {
		if c.access(id) {
			hits++
		}
	}
	return float64(hits) / float64(len(tr))
}

// otterFactory is set by otter_test.go when the comparison is compiled in.
var otterFactory func(capacity int) cachePolicy

// TestHitRatio prints hit ratios per policy on Zipf and scan-polluted
// traces, with the cache at 1% and 10% of the key space.
func TestHitRatio(t *testing.T) {
	envInt(t, "STORE_HITRATIO")
	const keySpace = 1_000_000
	n := 4_000_000
	keys := make([]string, 0, keySpace*2)
	type row struct {
		name               string
		alpha              float64
		pct                int
		scanEvery, scanLen int
	}
	var rows []row
	for _, a := range []float64{0.7, 0.9, 1.1} {
		for _, pct := range []int{1, 10} {
			rows = append(rows, row{fmt.Sprintf("zipf %.1f", a), a, pct, 0, 0})
		}
	}
	for _, pct := range []int{1, 10} {
		c := keySpace * pct / 100
		rows = append(rows, row{"zipf 0.9 + scans", 0.9, pct, 4 * c, c})
	}
	t.Logf("%-18s %5s %8s %8s %8s %8s %8s", "trace", "cache", "lru-sim", "lru", "s3fifo", "otter", "s3f-lru")
	for _, r := range rows {
		capacity := keySpace * r.pct / 100
		tr := trace(keySpace, r.alpha, n, r.scanEvery, r.scanLen)
		res := map[string]float64{}
		res["lru-sim"] = hitRatio(newLRUSim(capacity), tr)
		for _, p := range []string{PolicyLRU, PolicyS3FIFO} {
			s := newSizedStore(t, p, capacity)
			c := &storeCache{s: s, keys: keys, val: make([]byte, 100)}
			res[p] = hitRatio(c, tr)
			keys = c.keys
			s.Close()
		}
		otter := math.NaN()
		if otterFactory != nil {
			otter = hitRatio(otterFactory(capacity), tr)
		}
		t.Logf("%-18s %4d%% %8.4f %8.4f %8.4f %8.4f %+8.4f", r.name, r.pct, res["lru-sim"], res[PolicyLRU],
			res[PolicyS3FIFO], otter, res[PolicyS3FIFO]-res["lru-sim"])
	}
}

// BenchmarkRefMapGetParallel is a reference point, not part of the store: a
// Go map[string][]byte in 256 RWMutex-guarded shards, read by copying into
// a reused buffer. On this VM random memory access dominates both.
func BenchmarkRefMapGetParallel(b *testing.B) {
	type mshard struct {
		mu sync.RWMutex
		m  map[string][]byte
	}
	shards := make([]mshard, 256)
	for i := range shards {
		shards[i].m = map[string][]byte{}
	}
	seed := maphash.MakeSeed()
	var kb0 [16]byte
	for i := range benchEntries {
		k := string(putKey16(&kb0, i))
		sh := &shards[maphash.String(seed, k)&255]
		sh.m[k] = make([]byte, 100)
	}
	var rs atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rs.Add(1), 7))
		buf := make([]byte, 0, 128)
		var kb [16]byte
		for pb.Next() {
			k := putKey16(&kb, rng.IntN(benchEntries))
			sh := &shards[maphash.Bytes(seed, k)&255]
			sh.mu.RLock()
			buf = append(buf[:0], sh.m[string(k)]...)
			sh.mu.RUnlock()
		}
	})
}

// BenchmarkGetPipeline16 gets 16 random keys at a time, as a server
// serving a pipeline does, with and without Prefetch first; ns/op is per
// key.
func BenchmarkGetPipeline16(b *testing.B) {
	for _, entries := range []int{100_000, benchEntries} {
		s := benchStoreN(b, PolicyS3FIFO, entries)
		for _, pf := range []bool{false, true} {
			b.Run(fmt.Sprintf("entries=%d/prefetch=%v", entries, pf), func(b *testing.B) {
				p := newPipeline16(1, entries)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += 16 {
					p.get(s, pf)
				}
			})
		}
	}
}

// BenchmarkGetPipeline16Parallel is BenchmarkGetPipeline16 on every CPU at
// once, 1M entries: Prefetch holds up to 16 shard locks while its loads
// are in flight, which other goroutines' lookups may wait for. ns/op is
// per key.
func BenchmarkGetPipeline16Parallel(b *testing.B) {
	s := benchStoreN(b, PolicyS3FIFO, benchEntries)
	for _, pf := range []bool{false, true} {
		b.Run(fmt.Sprintf("prefetch=%v", pf), func(b *testing.B) {
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				p := newPipeline16(seed.Add(1), benchEntries)
				for {
					for range 16 {
						if !pb.Next() {
							return
						}
					}
					p.get(s, pf)
				}
			})
		})
	}
}

// pipeline16 is one benchmark goroutine's pipeline of 16 random keys out
// of entries, built in its own buffers as a server decodes them.
type pipeline16 struct {
	rng     *rand.Rand
	entries int
	kb      [16][16]byte
	keys    [16]string
	dst     []byte
}

func newPipeline16(seed uint64, entries int) *pipeline16 {
	return &pipeline16{rng: rand.New(rand.NewPCG(seed, 2)), entries: entries}
}

// get draws 16 keys and reads them, after Prefetch if pf.
func (p *pipeline16) get(s *Store, pf bool) {
	for j := range p.keys {
		k := putKey16(&p.kb[j], p.rng.IntN(p.entries))
		p.keys[j] = unsafe.String(&k[0], len(k))
	}
	if pf {
		s.Prefetch(p.keys[:])
	}
	for _, k := range p.keys {
		p.dst, _, _, _ = s.AppendGetEntry(p.dst[:0], k)
	}
}
