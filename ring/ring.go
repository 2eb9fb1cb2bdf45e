// Package ring maps keys to cluster members with an immutable consistent-hash
// ring of virtual nodes.
//
// A Ring is built once by New from a member list and never changes; a node
// that sees membership change builds a new Ring and swaps it in (for example
// with an atomic.Pointer). Every method is therefore safe for concurrent use
// without locks, and the package does no I/O and starts no goroutines.
//
// The same member set and Config give the same Ring on every node, whatever
// the order or repetition of the names handed to New, so nodes agree on
// owners without talking to each other. Version fingerprints that input so
// nodes and clients can tell cheaply whether two rings are the same.
package ring

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unsafe"

	"github.com/spaolacci/murmur3"
)

// Errors returned by this package. Callers test for them with errors.Is; the
// returned errors wrap them with detail.
var (
	// ErrInvalidConfig reports a Config that Validate rejects.
	ErrInvalidConfig = errors.New("ring: invalid config")
	// ErrEmptyName reports an empty member name passed to New. An empty
	// name cannot be told apart from Owner's "no owner" result.
	ErrEmptyName = errors.New("ring: empty member name")
	// ErrTooLarge reports a member list whose virtual nodes (members times
	// Config.VNodes) exceed MaxPoints.
	ErrTooLarge = errors.New("ring: too many virtual nodes")
)

const (
	// DefaultVNodes is the number of virtual nodes per member used by
	// DefaultConfig, chosen by measurement (TestBalance, BenchmarkNew,
	// BenchmarkOwner): over 1M keys the busiest member gets 1.04x, 1.09x and
	// 1.17x its fair share at 3, 10 and 50 members; New takes 2-3 ms
	// and 1.2 MB at 100 members; Owner stays near 30-40 ns at 100 members.
	// 512 would cut the 50-member figure to about 1.09x at twice the build
	// cost and a slower, more cache-hungry Owner.
	DefaultVNodes = 256

	// MaxVNodes bounds Config.VNodes so one bad setting cannot make every
	// membership change cost seconds and megabytes.
	MaxVNodes = 1 << 16

	// MaxPoints bounds the total number of virtual nodes in one Ring
	// (members times VNodes). A Ring costs 24 to 40 bytes per point (less
	// past the cap on Ring.whole8/whole16), and New briefly 16 more.
	MaxPoints = 1 << 26

	// algorithm names the way virtual-node labels are derived and ties
	// broken. It is mixed into Version so that two builds placing nodes
	// differently never claim to hold the same ring. Change it whenever
	// placement changes.
	algorithm = "starling-ring-v1"

	// probe is hashed with Config.Hash when computing Version, so rings built
	// with different hash functions get different Versions.
	probe = "starling-ring-probe"
)

// Config says how a Ring places members and keys. Every node of a cluster
// must use the same Config, or their rings disagree; Version covers it.
type Config struct {
	// VNodes is the number of virtual nodes (points on the ring) per member.
	// More points balance keys more evenly (the busiest member's excess over
	// its fair share shrinks like 1/sqrt(VNodes)) but make New slower and
	// the Ring larger, linearly. Must be in [1, MaxVNodes].
	VNodes int

	// Hash hashes keys and virtual-node labels onto the ring. It must be
	// deterministic, safe for concurrent use, and must neither modify nor
	// retain its argument (Owner passes it a key's bytes without copying).
	// It is injectable so tests can place nodes by hand: the label of the
	// i-th virtual node (i from 0 to VNodes-1) of member m is
	// m + "#" + strconv.Itoa(i), for example "node-a#0". New also hashes
	// one fixed string of its own so that Version tells hash functions apart.
	Hash func([]byte) uint64
}

// DefaultConfig returns the Config nodes use unless told otherwise:
// murmur3.Sum64 and DefaultVNodes virtual nodes per member.
func DefaultConfig() Config {
	return Config{
		VNodes: DefaultVNodes,
		Hash:   murmur3.Sum64,
	}
}

// Validate reports whether c can build a Ring. The error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	if c.VNodes < 1 || c.VNodes > MaxVNodes {
		return fmt.Errorf("%w: VNodes %d outside [1, %d]", ErrInvalidConfig, c.VNodes, MaxVNodes)
	}
	if c.Hash == nil {
		return fmt.Errorf("%w: Hash is nil", ErrInvalidConfig)
	}
	return nil
}

// point is one virtual node: a position on the ring and the index of its
// member in Ring.members. Keeping both in one 16-byte struct means a lookup
// touches one cache line for the pair.
type point struct {
	hash   uint64
	member uint32
}

// Ring is an immutable consistent-hash ring. The zero value and a nil *Ring
// behave as an empty ring. All methods are safe for concurrent use.
type Ring struct {
	// vnodes and hash are the Config the ring was built with.
	vnodes int
	hash   func([]byte) uint64

	// members holds the distinct member names, sorted.
	members []string

	// points holds every virtual node sorted by hash; equal hashes are
	// ordered by member name so ties resolve the same way on every node.
	// A key belongs to the first point whose hash is >= the key's hash,
	// wrapping round to points[0].
	points []point

	// table is a prefix index into points: table[b] is the index of the
	// first point whose hash has top bits >= b (len(points) if none), for
	// b in [0, 1<<tableBits]. A key with top bits b only needs to look at
	// points[table[b]:table[b+1]], which averages under one point.
	table []uint32
	// shift is 64 minus the table's bit count: hash>>shift is the bucket.
	shift uint

	// whole8 or whole16 is a finer index used by lookups that need only
	// the first owner (Owner, AppendOwners with n = 1: clusters keeping
	// one copy, and counting the keys a node owns): entry f is 1 + the
	// index in members of the member owning every hash whose top bits
	// (hash>>wholeShift) are f, or 0 where that range is split between
	// members. Most ranges are whole, so such a lookup usually touches one
	// entry instead of the table and a point: one cache miss instead of
	// two on a ring too big for the L1 cache. Rings of up to 255
	// members (nearly all) use whole8, one byte per entry: at 100 members
	// 128 KiB instead of 256, so more of it stays in the caches. On a VM
	// where the lookup was mostly waiting for memory, `Owner` was faster
	// in 11 of 16 alternated pairs, by about a tenth, within that VM's
	// noise (medians 41 and 49 ns against 46 and 50). Only one is set,
	// neither when there are more than math.MaxUint16 members (then every
	// lookup takes the table path). Lookups of several owners walk the
	// points.
	whole8     []uint8
	whole16    []uint16
	wholeShift uint

	// version fingerprints members and Config; see Version.
	version uint64
}

// New builds a Ring holding members under cfg. The order of members and any
// repetitions do not matter: equal sets give equal rings. An empty or nil
// list gives an empty Ring. It returns an error wrapping ErrInvalidConfig,
// ErrEmptyName or ErrTooLarge if cfg or a name is unusable.
func New(cfg Config, members []string) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	names := slices.Clone(members)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > 0 && names[0] == "" {
		return nil, ErrEmptyName
	}
	if int64(len(names))*int64(cfg.VNodes) > MaxPoints {
		return nil, fmt.Errorf("%w: %d members x %d vnodes > %d", ErrTooLarge, len(names), cfg.VNodes, MaxPoints)
	}
	r := &Ring{
		vnodes:  cfg.VNodes,
		hash:    cfg.Hash,
		members: slices.Clip(names),
	}
	r.points, r.table, r.shift = build(cfg, names)
	if len(r.points) > 0 && len(names) <= math.MaxUint16 {
		whole, shift := buildWhole(r.points, 64-r.shift)
		r.wholeShift = shift
		if len(names) <= math.MaxUint8 {
			r.whole8 = make([]uint8, len(whole))
			for i, m := range whole {
				r.whole8[i] = uint8(m)
			}
		} else {
			r.whole16 = whole
		}
	}
	r.version = fingerprint(cfg, names)
	return r, nil
}

// build hashes every virtual-node label and returns the points sorted by
// hash, hash ties broken by member name, together with the prefix table and
// shift described on Ring.table.
//
// Sorting is a counting sort on the table's bucket bits, which yields the
// table as a by-product, followed by an insertion sort inside each bucket
// (under one point on average). Both are stable and points are generated in
// member-name order, so equal hashes stay ordered by name. This keeps New
// linear in the number of points rather than n log n.
func build(cfg Config, names []string) ([]point, []uint32, uint) {
	n := len(names) * cfg.VNodes
	if n == 0 {
		return nil, nil, 0
	}
	// Smallest power of two >= n buckets, at least 2.
	tableBits := max(bits.Len(uint(n-1)), 1)
	shift := uint(64 - tableBits)
	buckets := 1 << tableBits

	raw := make([]point, 0, n)
	table := make([]uint32, buckets+1)
	var buf []byte
	for m, name := range names {
		buf = append(buf[:0], name...)
		buf = append(buf, '#')
		base := len(buf)
		for i := 0; i < cfg.VNodes; i++ {
			buf = strconv.AppendInt(buf[:base], int64(i), 10)
			h := cfg.Hash(buf)
			raw = append(raw, point{hash: h, member: uint32(m)})
			table[h>>shift]++
		}
	}
	// After the prefix sum, table[b] is where bucket b ends. Scattering in
	// reverse while counting down leaves table[b] where bucket b starts and
	// keeps each bucket's points in generation order.
	for b := 1; b < buckets; b++ {
		table[b] += table[b-1]
	}
	table[buckets] = uint32(n)
	pts := make([]point, n)
	for j := len(raw) - 1; j >= 0; j-- {
		b := raw[j].hash >> shift
		table[b]--
		pts[table[b]] = raw[j]
	}
	for b := 0; b < buckets; b++ {
		sortBucket(pts[table[b]:table[b+1]])
	}
	return pts, table, shift
}

// Sizing of Ring.whole8/whole16. With wholeExtraBits more bits than the
// table there are 4 ranges per point on average, and about 80% of ranges
// (those holding no point, or only points of the member owning the range's
// end) are whole; at 100 members of 256 points the index takes 128 KiB.
// Small rings get minWholeBits instead, 16 KiB: three members of 256
// points then find 97% of ranges whole instead of 88%, which took a tenth
// off a smart client's routing of a key. maxWholeBits caps it at 2^20
// entries (2 MiB) for rings past about 1000 such members, which then find
// fewer ranges whole but stay correct.
const (
	wholeExtraBits = 2
	minWholeBits   = 14
	maxWholeBits   = 20
)

// buildWhole returns Ring.whole for pts (sorted, at least one) and its
// shift, for a table of tableBits bits. It walks the points once: range f
// covers hashes [start, end]; a key hashing into it belongs to one of the
// points from the first at or after start to the first at or after end
// (wrapping past the last to the first), so the range is whole when those
// points share a member.
func buildWhole(pts []point, tableBits uint) ([]uint16, uint) {
	bits := min(max(tableBits+wholeExtraBits, minWholeBits), maxWholeBits)
	shift := 64 - bits
	whole := make([]uint16, 1<<bits)
	member := func(i int) uint32 {
		if i == len(pts) {
			i = 0
		}
		return pts[i].member
	}
	i := 0
	for f := range whole {
		start := uint64(f) << shift
		end := start | (1<<shift - 1)
		for i < len(pts) && pts[i].hash < start {
			i++
		}
		m := member(i)
		whole[f] = uint16(m + 1)
		for j := i; j < len(pts) && pts[j].hash < end; {
			if j++; member(j) != m {
				whole[f] = 0
				break
			}
		}
	}
	return whole, shift
}

// sortBucket stably sorts pts by hash.
func sortBucket(pts []point) {
	if len(pts) > 16 {
		slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.hash, b.hash) })
		return
	}
	for i := 1; i < len(pts); i++ {
		for j := i; j > 0 && pts[j].hash < pts[j-1].hash; j-- {
			pts[j], pts[j-1] = pts[j-1], pts[j]
		}
	}
}

// fingerprint hashes everything that decides placement: the algorithm, the
// Config, and the sorted distinct member names. It never returns 0, which
// Version keeps for "no ring".
func fingerprint(cfg Config, names []string) uint64 {
	var b []byte
	b = append(b, algorithm...)
	b = binary.BigEndian.AppendUint64(b, uint64(cfg.VNodes))
	b = binary.BigEndian.AppendUint64(b, cfg.Hash([]byte(probe)))
	for _, n := range names {
		// Length-prefixed so ["ab","c"] and ["a","bc"] differ.
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	v := murmur3.Sum64(b)
	if v == 0 {
		v = 1
	}
	return v
}

// stringBytes views s as a byte slice without copying. The slice must not be
// modified; Config.Hash promises not to.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// locate returns the index in r.points of the point owning a key whose hash
// is h. r must have at least one point.
func (r *Ring) locate(h uint64) int {
	b := h >> r.shift
	lo, hi := int(r.table[b]), int(r.table[b+1])
	if hi-lo > 8 {
		// A crowded bucket (a poor or hand-made Hash): binary search for the
		// first point >= h. Invariant: points[lo-1] < h <= points[hi].
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if r.points[mid].hash < h {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
	} else {
		for lo < hi && r.points[lo].hash < h {
			lo++
		}
	}
	// Past the bucket's points, the next point (in a later bucket) has a
	// larger hash; past the last point, the ring wraps to the first.
	if lo == len(r.points) {
		lo = 0
	}
	return lo
}

// Owner returns the member that owns key, or "" if the ring is empty. It
// does not allocate.
func (r *Ring) Owner(key string) string {
	if r == nil || len(r.points) == 0 {
		return ""
	}
	h := r.hash(stringBytes(key))
	if name, ok := r.wholeOwner(h); ok {
		return name
	}
	return r.members[r.points[r.locate(h)].member]
}

// wholeOwner returns the member owning every hash in h's range of the
// first-owner index, if that range is whole.
func (r *Ring) wholeOwner(h uint64) (string, bool) {
	if m := r.wholeEntry(h); m != 0 {
		return r.members[m-1], true
	}
	return "", false
}

// wholeEntry is h's entry in the first-owner index (see Ring.whole8): 1 +
// the owning member's index, or 0 if the range is split or there is no
// index.
func (r *Ring) wholeEntry(h uint64) int {
	if r.whole8 != nil {
		return int(r.whole8[h>>r.wholeShift])
	}
	if r.whole16 != nil {
		return int(r.whole16[h>>r.wholeShift])
	}
	return 0
}

// Owners returns up to n distinct members for key: the owner first, then the
// next distinct members met walking clockwise round the ring, as replicas
// would be placed. It returns min(n, Len()) names, or nil if n <= 0 or the
// ring is empty. The slice is the caller's.
func (r *Ring) Owners(key string, n int) []string {
	if r == nil || n <= 0 || len(r.points) == 0 {
		return nil
	}
	return r.AppendOwners(make([]string, 0, min(n, len(r.members))), key, n)
}

// AppendOwners appends what Owners(key, n) returns to dst and returns the
// extended slice. It does not allocate when dst has room for min(n, Len())
// more names and that is at most 16. Its cost grows with n times the number
// of points walked, so it is meant for small n (replica counts).
func (r *Ring) AppendOwners(dst []string, key string, n int) []string {
	var buf [16]int
	idx := buf[:0]
	if min(n, r.Len()) > len(buf) {
		idx = nil // more than replica counts need: append allocates
	}
	for _, m := range r.AppendOwnerIndexes(idx, key, n) {
		dst = append(dst, r.members[m])
	}
	return dst
}

// AppendOwnerIndexes is AppendOwners with each owner given as its index in
// Members() (the names, sorted). A caller keeping something per member in
// a slice built from Members() then finds it without a lookup by name: a
// map lookup per owner, with the name hashed, cost a smart client as much
// as hashing the key.
func (r *Ring) AppendOwnerIndexes(dst []int, key string, n int) []int {
	if r == nil || n <= 0 || len(r.points) == 0 {
		return dst
	}
	n = min(n, len(r.members))
	h := r.hash(stringBytes(key))
	if n == 1 {
		if m := r.wholeEntry(h); m != 0 {
			return append(dst, m-1)
		}
	}
	start := len(dst)
	i := r.locate(h)
	for walked := 0; walked < len(r.points); walked++ {
		m := int(r.points[i].member)
		if !slices.Contains(dst[start:], m) {
			dst = append(dst, m)
			if len(dst)-start == n {
				break
			}
		}
		if i++; i == len(r.points) {
			i = 0
		}
	}
	return dst
}

// Members returns the distinct member names, sorted. The slice is a fresh
// copy the caller may modify.
func (r *Ring) Members() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.members)
}

// Len returns the number of distinct members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}

// Contains reports whether name is a member of the ring.
func (r *Ring) Contains(name string) bool {
	if r == nil {
		return false
	}
	_, ok := slices.BinarySearch(r.members, name)
	return ok
}

// Version returns a fingerprint of the member set and Config. Rings built
// from the same set of names (in any order, with any repetitions) and the
// same Config have the same Version on every node and in every process; a
// different set, VNodes or Hash gives a different one (up to 64-bit hash
// collisions). Clients compare it to learn that the ring changed. It is
// never 0 for a Ring from New, so 0 can mean "no ring yet"; a nil *Ring
// (or the zero Ring) returns 0.
func (r *Ring) Version() uint64 {
	if r == nil {
		return 0
	}
	return r.version
}

// Shares returns each member's fraction of the hash space, which is the
// fraction of uniformly hashed keys it owns. The fractions sum to 1 (up to
// rounding) for a non-empty ring; an empty ring gives an empty map. It
// exists for operators (the `starling ring` command and the status page) and
// is computed on each call, so it is not for hot paths. The map is the
// caller's.
func (r *Ring) Shares() map[string]float64 {
	if r == nil {
		return map[string]float64{}
	}
	shares := make(map[string]float64, len(r.members))
	for _, m := range r.members {
		shares[m] = 0
	}
	n := len(r.points)
	if n == 0 {
		return shares
	}
	const space = 1 << 64 // as a float64: 2^64 is exact
	first, last := r.points[0].hash, r.points[n-1].hash
	// points[0] owns the arc that wraps from past the last point round to
	// itself. If every point sits on one hash, that arc is the whole ring.
	wrap := float64(first - last) // modular arithmetic wraps correctly
	if first == last {
		wrap = space
	}
	shares[r.members[r.points[0].member]] += wrap / space
	for i := 1; i < n; i++ {
		arc := r.points[i].hash - r.points[i-1].hash
		shares[r.members[r.points[i].member]] += float64(arc) / space
	}
	return shares
}

// VNodes returns the number of virtual nodes per member the ring was built
// with.
func (r *Ring) VNodes() int {
	if r == nil {
		return 0
	}
	return r.vnodes
}

// String summarises the ring for logs, for example
// "ring{members=3 vnodes=256 version=0x1234abcd}".
func (r *Ring) String() string {
	return fmt.Sprintf("ring{members=%d vnodes=%d version=%#x}", r.Len(), r.VNodes(), r.Version())
}
