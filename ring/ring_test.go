package ring_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spaolacci/murmur3"
	"github.com/starlingcache/starling/ring"
)

// names returns n member names "node-0" ... "node-(n-1)".
func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "node-" + strconv.Itoa(i)
	}
	return out
}

// keys returns n distinct sample keys.
func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "key:" + strconv.Itoa(i)
	}
	return out
}

func mustNew(t testing.TB, cfg ring.Config, members []string) *ring.Ring {
	t.Helper()
	r, err := ring.New(cfg, members)
	if err != nil {
		t.Fatalf("New(%d members): %v", len(members), err)
	}
	return r
}

// refRing is a deliberately naive ring built only from the documented
// placement rules (label m#i, sort by hash then name, first point >= key
// hash, wrap round). Ring must agree with it on every key.
type refRing struct {
	hash   func([]byte) uint64
	hashes []uint64
	names  []string
}

func newRef(cfg ring.Config, members []string) *refRing {
	set := map[string]bool{}
	for _, m := range members {
		set[m] = true
	}
	type pt struct {
		h uint64
		m string
	}
	var pts []pt
	for m := range set {
		for i := 0; i < cfg.VNodes; i++ {
			pts = append(pts, pt{cfg.Hash([]byte(m + "#" + strconv.Itoa(i))), m})
		}
	}
	sort.Slice(pts, func(i, j int) bool {
		if pts[i].h != pts[j].h {
			return pts[i].h < pts[j].h
		}
		return pts[i].m < pts[j].m
	})
	r := &refRing{hash: cfg.Hash}
	for _, p := range pts {
		r.hashes = append(r.hashes, p.h)
		r.names = append(r.names, p.m)
	}
	return r
}

func (r *refRing) owners(key string, n int) []string {
	if len(r.hashes) == 0 || n <= 0 {
		return nil
	}
	h := r.hash([]byte(key))
	i := sort.Search(len(r.hashes), func(i int) bool { return r.hashes[i] >= h })
	var out []string
	for walked := 0; walked < len(r.hashes) && len(out) < n; walked++ {
		m := r.names[(i+walked)%len(r.hashes)]
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// handHash places labels and keys by hand: a string found in place hashes to
// its entry, a decimal number hashes to its own value, and an unplaced
// virtual-node label (one holding '#') is a test bug. Anything else (New's
// Version probe) hashes to 0. Tests use it to put virtual nodes and keys
// exactly where they want.
func handHash(place map[string]uint64) func([]byte) uint64 {
	return func(b []byte) uint64 {
		if h, ok := place[string(b)]; ok {
			return h
		}
		if v, err := strconv.ParseUint(string(b), 10, 64); err == nil {
			return v
		}
		if strings.Contains(string(b), "#") {
			panic(fmt.Sprintf("handHash: unplaced label %q", b))
		}
		return 0
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  ring.Config
		ok   bool
	}{
		{"default", ring.DefaultConfig(), true},
		{"one vnode", ring.Config{VNodes: 1, Hash: murmur3.Sum64}, true},
		{"max vnodes", ring.Config{VNodes: ring.MaxVNodes, Hash: murmur3.Sum64}, true},
		{"zero vnodes", ring.Config{VNodes: 0, Hash: murmur3.Sum64}, false},
		{"negative vnodes", ring.Config{VNodes: -1, Hash: murmur3.Sum64}, false},
		{"too many vnodes", ring.Config{VNodes: ring.MaxVNodes + 1, Hash: murmur3.Sum64}, false},
		{"nil hash", ring.Config{VNodes: 8}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ring.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			if _, err := ring.New(tt.cfg, []string{"a"}); (err == nil) != tt.ok {
				t.Fatalf("New() error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ring.Config
		members []string
		want    error
	}{
		{"empty name", ring.DefaultConfig(), []string{"a", "", "b"}, ring.ErrEmptyName},
		{"only empty name", ring.DefaultConfig(), []string{""}, ring.ErrEmptyName},
		{"too many points", ring.Config{VNodes: ring.MaxVNodes, Hash: murmur3.Sum64},
			names(ring.MaxPoints/ring.MaxVNodes + 1), ring.ErrTooLarge},
		{"bad config", ring.Config{}, []string{"a"}, ring.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ring.New(tt.cfg, tt.members)
			if !errors.Is(err, tt.want) || r != nil {
				t.Fatalf("New() = %v, %v; want nil, %v", r, err, tt.want)
			}
		})
	}
}

func TestEmptyAndNilRing(t *testing.T) {
	empty := mustNew(t, ring.DefaultConfig(), nil)
	var nilRing *ring.Ring
	for _, tt := range []struct {
		name string
		r    *ring.Ring
	}{{"empty", empty}, {"nil", nilRing}} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			if got := r.Owner("k"); got != "" {
				t.Errorf("Owner = %q, want empty", got)
			}
			if got := r.Owners("k", 3); got != nil {
				t.Errorf("Owners = %q, want nil", got)
			}
			if got := r.AppendOwners([]string{"x"}, "k", 3); !slices.Equal(got, []string{"x"}) {
				t.Errorf("AppendOwners = %q, want [x]", got)
			}
			if r.Len() != 0 || len(r.Members()) != 0 || r.Contains("k") || len(r.Shares()) != 0 {
				t.Errorf("Len=%d Members=%q Contains=%v Shares=%v, want all empty",
					r.Len(), r.Members(), r.Contains("k"), r.Shares())
			}
		})
	}
	if empty.Version() == 0 {
		t.Error("empty ring Version = 0, want non-zero")
	}
	if nilRing.Version() != 0 {
		t.Errorf("nil ring Version = %d, want 0", nilRing.Version())
	}
	if empty.VNodes() != ring.DefaultVNodes {
		t.Errorf("VNodes = %d, want %d", empty.VNodes(), ring.DefaultVNodes)
	}
}

// TestSameMembersSameRing checks that every node builds the same ring from
// the same set, whatever order and repetition its membership events left.
func TestSameMembersSameRing(t *testing.T) {
	base := names(20)
	rng := rand.New(rand.NewPCG(1, 2))
	shuffled := slices.Clone(base)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	reversed := slices.Clone(base)
	slices.Reverse(reversed)
	duplicated := append(slices.Clone(shuffled), base[3], base[7], base[3], base[19])
	rng.Shuffle(len(duplicated), func(i, j int) { duplicated[i], duplicated[j] = duplicated[j], duplicated[i] })

	want := mustNew(t, ring.DefaultConfig(), base)
	ks := keys(20_000)
	tests := []struct {
		name    string
		members []string
	}{
		{"shuffled", shuffled},
		{"reversed", reversed},
		{"duplicated", duplicated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := slices.Clone(tt.members)
			got := mustNew(t, ring.DefaultConfig(), input)
			if !slices.Equal(input, tt.members) {
				t.Fatal("New modified its members argument")
			}
			if got.Version() != want.Version() {
				t.Fatalf("Version = %#x, want %#x", got.Version(), want.Version())
			}
			if !slices.Equal(got.Members(), want.Members()) {
				t.Fatalf("Members = %q, want %q", got.Members(), want.Members())
			}
			for _, k := range ks {
				if g, w := got.Owners(k, 3), want.Owners(k, 3); !slices.Equal(g, w) {
					t.Fatalf("Owners(%q, 3) = %q, want %q", k, g, w)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	def := ring.DefaultConfig()
	fewer := def
	fewer.VNodes = 100
	fnv := def
	fnv.Hash = func(b []byte) uint64 { return murmur3.Sum64WithSeed(b, 7) }
	tests := []struct {
		name   string
		cfgA   ring.Config
		a      []string
		cfgB   ring.Config
		b      []string
		equal  bool
		reason string
	}{
		{"same set", def, []string{"a", "b", "c"}, def, []string{"c", "a", "b", "a"}, true, "order and repeats are irrelevant"},
		{"empty vs empty", def, nil, def, []string{}, true, "nil and empty lists are the same set"},
		{"extra member", def, []string{"a", "b"}, def, []string{"a", "b", "c"}, false, "a join changes the ring"},
		{"renamed member", def, []string{"a", "b"}, def, []string{"a", "B"}, false, "names are case sensitive"},
		{"split names", def, []string{"ab", "c"}, def, []string{"a", "bc"}, false, "names are length-prefixed"},
		{"vnodes", def, []string{"a", "b"}, fewer, []string{"a", "b"}, false, "VNodes changes placement"},
		{"hash", def, []string{"a", "b"}, fnv, []string{"a", "b"}, false, "Hash changes placement"},
		{"empty vs one", def, nil, def, []string{"a"}, false, "a first member changes the ring"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			va := mustNew(t, tt.cfgA, tt.a).Version()
			vb := mustNew(t, tt.cfgB, tt.b).Version()
			if (va == vb) != tt.equal {
				t.Fatalf("Versions %#x, %#x: equal=%v, want %v (%s)", va, vb, va == vb, tt.equal, tt.reason)
			}
		})
	}
}

// TestGolden pins placement under DefaultConfig. Every node of a cluster must
// place keys identically, so if this test fails the change breaks mixed-
// version clusters: bump the algorithm constant in ring.go and update it.
func TestGolden(t *testing.T) {
	r := mustNew(t, ring.DefaultConfig(), []string{"node-a", "node-b", "node-c"})
	if got, want := r.Version(), uint64(0x261765fda7f33435); got != want {
		t.Errorf("Version = %#x, want %#x", got, want)
	}
	tests := []struct{ key, owner string }{
		{"user:1", "node-a"},
		{"user:2", "node-b"},
		{"user:3", "node-b"},
		{"user:4", "node-a"},
		{"user:5", "node-c"},
		{"user:6", "node-c"},
	}
	for _, tt := range tests {
		if got := r.Owner(tt.key); got != tt.owner {
			t.Errorf("Owner(%q) = %q, want %q", tt.key, got, tt.owner)
		}
	}
}

// TestAgreesWithReference compares Ring against the naive refRing on many
// keys, under murmur3 and under hashes that crowd points into few table
// buckets or collide outright.
func TestAgreesWithReference(t *testing.T) {
	crowded := func(b []byte) uint64 { return murmur3.Sum64(b) >> 40 }         // all points in bucket 0
	coarse := func(b []byte) uint64 { return murmur3.Sum64(b) &^ (1<<62 - 1) } // 4 distinct hashes: many ties
	tests := []struct {
		name    string
		cfg     ring.Config
		members int
	}{
		{"murmur3 1 member", ring.Config{VNodes: 16, Hash: murmur3.Sum64}, 1},
		{"murmur3 1 vnode", ring.Config{VNodes: 1, Hash: murmur3.Sum64}, 7},
		{"murmur3 default", ring.DefaultConfig(), 13},
		{"crowded buckets", ring.Config{VNodes: 8, Hash: crowded}, 9},
		{"heavy ties", ring.Config{VNodes: 3, Hash: coarse}, 5},
	}
	ks := keys(5_000)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members := names(tt.members)
			r := mustNew(t, tt.cfg, members)
			ref := newRef(tt.cfg, members)
			for _, k := range ks {
				for _, n := range []int{1, 2, tt.members + 1} {
					if g, w := r.Owners(k, n), ref.owners(k, n); !slices.Equal(g, w) {
						t.Fatalf("Owners(%q, %d) = %q, reference %q", k, n, g, w)
					}
				}
			}
		})
	}
}

// TestHandPlaced injects a Hash that puts every virtual node where the test
// says and checks exact ownership, including the tie and wrap-round rules.
func TestHandPlaced(t *testing.T) {
	const max = math.MaxUint64
	tests := []struct {
		name    string
		vnodes  int
		place   map[string]uint64
		owners  map[string][]string // key -> Owners(key, 3)
		shares  map[string]float64
		members []string
	}{
		{
			name:   "three points",
			vnodes: 1,
			place:  map[string]uint64{"a#0": 100, "b#0": 200, "c#0": 300},
			owners: map[string][]string{
				"0":                         {"a", "b", "c"},
				"100":                       {"a", "b", "c"}, // a point owns its own hash
				"101":                       {"b", "c", "a"},
				"200":                       {"b", "c", "a"},
				"250":                       {"c", "a", "b"},
				"300":                       {"c", "a", "b"},
				"301":                       {"a", "b", "c"}, // past the last point: wrap to the first
				strconv.FormatUint(max, 10): {"a", "b", "c"},
			},
			shares: map[string]float64{"a": 1 - 200.0/(1<<64), "b": 100.0 / (1 << 64), "c": 100.0 / (1 << 64)},
		},
		{
			name:   "tie goes to the smaller name",
			vnodes: 1,
			place:  map[string]uint64{"b#0": 100, "a#0": 100, "c#0": 1 << 63},
			owners: map[string][]string{
				"50":                        {"a", "b", "c"},
				"100":                       {"a", "b", "c"},
				"101":                       {"c", "a", "b"},
				strconv.FormatUint(max, 10): {"a", "b", "c"},
			},
			shares: map[string]float64{"a": 0.5, "b": 0, "c": 0.5},
		},
		{
			name:   "interleaved vnodes",
			vnodes: 2,
			place:  map[string]uint64{"x#0": 1 << 60, "y#0": 2 << 60, "x#1": 3 << 60, "y#1": 4 << 60},
			owners: map[string][]string{
				"0":                             {"x", "y"},
				strconv.FormatUint(1<<60+1, 10): {"y", "x"},
				strconv.FormatUint(3<<60, 10):   {"x", "y"},
				strconv.FormatUint(4<<60, 10):   {"y", "x"},
				strconv.FormatUint(4<<60+1, 10): {"x", "y"},
			},
			shares: map[string]float64{"x": 14.0 / 16, "y": 2.0 / 16},
		},
		{
			name:   "all points on one hash",
			vnodes: 2,
			place:  map[string]uint64{"p#0": 7, "p#1": 7, "q#0": 7, "q#1": 7},
			owners: map[string][]string{
				"0": {"p", "q"},
				"7": {"p", "q"},
				"8": {"p", "q"},
			},
			shares: map[string]float64{"p": 1, "q": 0},
		},
		{
			name:   "single point",
			vnodes: 1,
			place:  map[string]uint64{"solo#0": 42},
			owners: map[string][]string{"0": {"solo"}, "42": {"solo"}, "43": {"solo"}},
			shares: map[string]float64{"solo": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var members []string
			for label := range tt.place {
				m, _, _ := strings.Cut(label, "#")
				members = append(members, m)
			}
			r := mustNew(t, ring.Config{VNodes: tt.vnodes, Hash: handHash(tt.place)}, members)
			for k, want := range tt.owners {
				if got := r.Owners(k, 3); !slices.Equal(got, want) {
					t.Errorf("Owners(%s, 3) = %q, want %q", k, got, want)
				}
				if got := r.Owner(k); got != want[0] {
					t.Errorf("Owner(%s) = %q, want %q", k, got, want[0])
				}
			}
			shares := r.Shares()
			if len(shares) != len(tt.shares) {
				t.Errorf("Shares = %v, want %v", shares, tt.shares)
			}
			for m, want := range tt.shares {
				if got, ok := shares[m]; !ok || math.Abs(got-want) > 1e-12 {
					t.Errorf("Shares[%s] = %v, want %v", m, got, want)
				}
			}
		})
	}
}

// TestCrowdedBucket hand-places many points inside one table bucket so that
// lookups take the binary-search path, and checks every boundary.
func TestCrowdedBucket(t *testing.T) {
	place := map[string]uint64{}
	var members []string
	for i := 0; i < 40; i++ {
		m := fmt.Sprintf("m%02d", i)
		members = append(members, m)
		place[m+"#0"] = uint64(10 * (i + 1)) // 10, 20, ..., 400
	}
	r := mustNew(t, ring.Config{VNodes: 1, Hash: handHash(place)}, members)
	for h := uint64(0); h <= 410; h++ {
		want := "m00"
		if h > 0 && h <= 400 {
			want = fmt.Sprintf("m%02d", (h+9)/10-1)
		}
		if got := r.Owner(strconv.FormatUint(h, 10)); got != want {
			t.Fatalf("Owner(%d) = %q, want %q", h, got, want)
		}
	}
}

// TestWholeRangeBoundaries puts points on, just before and just after the
// boundaries of the ranges the first-owner index (Ring.whole) divides the
// hash space into, and checks Owner and Owners(k, 1) against the reference
// for keys at every such boundary: an off-by-one there would send a sliver
// of keys to the wrong member only through the fast path.
func TestWholeRangeBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		vnodes := 1 + rng.IntN(4)
		members := names(2 + rng.IntN(5))
		// A ring of n points has a table of bits.Len(n-1) bits and ranges
		// of 2 more; placing on multiples of 2^56 to 2^63 covers every
		// range size these rings can have, and more.
		place := map[string]uint64{}
		for _, m := range members {
			for i := range vnodes {
				step := uint64(1) << (56 + rng.IntN(8))
				// On a boundary, or up to two either side of one.
				h := step*uint64(rng.IntN(1<<(64-56))) + uint64(rng.IntN(5)) - 2
				place[m+"#"+strconv.Itoa(i)] = h
			}
		}
		cfg := ring.Config{VNodes: vnodes, Hash: handHash(place)}
		r := mustNew(t, cfg, members)
		ref := newRef(cfg, members)
		check := func(h uint64) {
			k := strconv.FormatUint(h, 10)
			want := ref.owners(k, 1)
			if got := r.Owner(k); got != want[0] {
				t.Fatalf("trial %d: Owner(%d) = %q, reference %q (points %v)", trial, h, got, want[0], place)
			}
			if got := r.Owners(k, 1); !slices.Equal(got, want) {
				t.Fatalf("trial %d: Owners(%d, 1) = %q, reference %q", trial, h, got, want)
			}
		}
		near := func(h uint64) {
			for d := range uint64(5) {
				check(h + d - 2)
			}
		}
		for _, h := range place {
			near(h)
		}
		for s := 56; s < 64; s++ {
			for b := uint64(0); b < 1<<(64-s); b++ {
				near(b << s)
			}
		}
	}
}

// TestWholeIndexUsed checks that the first-owner index is built and
// answers most lookups on a typical ring (a zeroed or missing index would
// pass every ownership test, only slower), with 1-byte entries up to 255
// members and 2-byte ones beyond, and that a ring with more members than
// 2-byte entries can name does without it; each agrees with the
// reference.
func TestWholeIndexUsed(t *testing.T) {
	r := mustNew(t, ring.DefaultConfig(), names(100))
	if share := ring.WholeShare(r); share < 0.7 {
		t.Errorf("100 members: %.2f of the first-owner index is whole, want most of it", share)
	}
	cfg := ring.Config{VNodes: 1, Hash: murmur3.Sum64}
	// Up to 255 members an entry (1 + a member's index) takes a byte, up
	// to 65535 two; past that there is no index.
	for _, n := range []int{math.MaxUint8, math.MaxUint8 + 1, 300, math.MaxUint16, math.MaxUint16 + 2} {
		members := names(n)
		r := mustNew(t, cfg, members)
		if share := ring.WholeShare(r); (n <= math.MaxUint16) != (share > 0) {
			t.Errorf("%d members: whole share %.2f", n, share)
		}
		want := 0
		switch {
		case n <= math.MaxUint8:
			want = 1
		case n <= math.MaxUint16:
			want = 2
		}
		if got := ring.WholeEntrySize(r); got != want {
			t.Errorf("%d members: index entries of %d bytes, want %d", n, got, want)
		}
		ref := newRef(cfg, members)
		for _, k := range keys(20_000) {
			if got, want := r.Owner(k), ref.owners(k, 1)[0]; got != want {
				t.Fatalf("%d members: Owner(%q) = %q, reference %q", n, k, got, want)
			}
		}
	}
}

func TestOwners(t *testing.T) {
	ks := keys(2_000)
	tests := []struct {
		members int
		ns      []int
	}{
		{1, []int{-1, 0, 1, 2, 5}},
		{3, []int{0, 1, 2, 3, 4, 10}},
		{10, []int{1, 2, 3, 9, 10, 11, 100}},
	}
	for _, tt := range tests {
		r := mustNew(t, ring.DefaultConfig(), names(tt.members))
		members := r.Members()
		for _, n := range tt.ns {
			t.Run(fmt.Sprintf("members=%d/n=%d", tt.members, n), func(t *testing.T) {
				wantLen := max(0, min(n, tt.members))
				for _, k := range ks {
					got := r.Owners(k, n)
					if len(got) != wantLen {
						t.Fatalf("len(Owners(%q, %d)) = %d, want %d", k, n, len(got), wantLen)
					}
					seen := map[string]bool{}
					for _, m := range got {
						if seen[m] {
							t.Fatalf("Owners(%q, %d) = %q repeats %q", k, n, got, m)
						}
						if !r.Contains(m) {
							t.Fatalf("Owners(%q, %d) = %q holds non-member %q", k, n, got, m)
						}
						seen[m] = true
					}
					if n >= 1 && got[0] != r.Owner(k) {
						t.Fatalf("Owners(%q, %d)[0] = %q, Owner = %q", k, n, got[0], r.Owner(k))
					}
					if one := r.Owners(k, 1); n >= 1 && !slices.Equal(one, got[:1]) {
						t.Fatalf("Owners(%q, 1) = %q is not a prefix of %q", k, one, got)
					}
					// AppendOwners keeps dst's prefix, even when it names a
					// member, and appends exactly what Owners returns.
					dst := []string{"prefix", r.Members()[0]}
					app := r.AppendOwners(dst, k, n)
					if !slices.Equal(app[:2], dst) || !slices.Equal(app[2:], got) {
						t.Fatalf("AppendOwners(%q, %q, %d) = %q, want %q + %q", dst, k, n, app, dst, got)
					}
					// AppendOwnerIndexes names the same owners, in order,
					// by their place in Members(), keeping dst's prefix.
					idx := r.AppendOwnerIndexes([]int{-1, 0}, k, n)
					if len(idx) != 2+len(got) || idx[0] != -1 || idx[1] != 0 {
						t.Fatalf("AppendOwnerIndexes([-1 0], %q, %d) = %v, want [-1 0] + %d indexes", k, n, idx, len(got))
					}
					for j, m := range idx[2:] {
						if members[m] != got[j] {
							t.Fatalf("AppendOwnerIndexes(%q, %d) = %v names %q at %d, Owners %q", k, n, idx[2:], members[m], j, got)
						}
					}
				}
			})
		}
	}
}

func TestMembersContainsLen(t *testing.T) {
	r := mustNew(t, ring.DefaultConfig(), []string{"c", "a", "b", "a"})
	if got, want := r.Members(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("Members = %q, want %q", got, want)
	}
	r.Members()[0] = "zzz" // the copy is the caller's
	if got := r.Members()[0]; got != "a" {
		t.Fatalf("Members()[0] = %q after caller modified a copy, want a", got)
	}
	if r.Len() != 3 {
		t.Fatalf("Len = %d, want 3", r.Len())
	}
	for _, tt := range []struct {
		name string
		want bool
	}{{"a", true}, {"b", true}, {"c", true}, {"", false}, {"d", false}, {"A", false}, {"zzz", false}} {
		if got := r.Contains(tt.name); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if s := r.String(); !strings.Contains(s, "members=3") {
		t.Errorf("String() = %q, want members=3", s)
	}
}

// balanceBound is the largest max/mean keys-per-member ratio TestBalance
// accepts for n members with v vnodes each over k uniformly hashed keys.
//
// A member's share of the ring is the sum of v arcs between random points,
// roughly Gamma(v)/v times the fair share: relative standard deviation
// 1/sqrt(v). The largest of n such shares sits about sqrt(2 ln n) standard
// deviations above the mean, so we allow that plus 2 more standard
// deviations of slack (a per-ring chance of failure well under 1%), plus 3
// standard deviations of the key sample's own noise, sqrt(n/k).
func balanceBound(n, v, k int) float64 {
	z := math.Sqrt(2*math.Log(float64(n))) + 2
	return 1 + z/math.Sqrt(float64(v)) + 3*math.Sqrt(float64(n)/float64(k))
}

// TestBalance measures how evenly 1M keys spread over 3, 10 and 50 members
// under DefaultConfig and logs the figures (run with -v to see them).
func TestBalance(t *testing.T) {
	const k = 1_000_000
	ks := keys(k)
	for _, n := range []int{3, 10, 50} {
		t.Run(fmt.Sprintf("members=%d", n), func(t *testing.T) {
			r := mustNew(t, ring.DefaultConfig(), names(n))
			counts := map[string]int{}
			for _, key := range ks {
				counts[r.Owner(key)]++
			}
			mean := float64(k) / float64(n)
			lo, hi := k, 0
			for _, c := range counts {
				lo, hi = min(lo, c), max(hi, c)
			}
			if len(counts) != n {
				lo = 0
			}
			maxShare := 0.0
			for _, s := range r.Shares() {
				maxShare = max(maxShare, s)
			}
			ratio := float64(hi) / mean
			bound := balanceBound(n, r.VNodes(), k)
			t.Logf("members=%d vnodes=%d keys=%d: max/mean=%.3f min/mean=%.3f (max share x n=%.3f, bound %.3f)",
				n, r.VNodes(), k, ratio, float64(lo)/mean, maxShare*float64(n), bound)
			if ratio > bound {
				t.Errorf("max/mean = %.3f, want <= %.3f", ratio, bound)
			}
			// Shares must predict the key counts up to sampling noise.
			if d := math.Abs(maxShare*float64(n) - ratio); d > 0.03 {
				t.Errorf("max share x n = %.3f but max/mean keys = %.3f", maxShare*float64(n), ratio)
			}
		})
	}
}

// TestMovement checks that a join moves only keys onto the joiner, about
// 1/(N+1) of them, and a leave moves only the leaver's keys, about 1/N.
func TestMovement(t *testing.T) {
	const k = 200_000
	ks := keys(k)
	cfg := ring.DefaultConfig()
	// The moved fraction is the joiner's (or leaver's) share: within
	// balanceBound-style slack of ideal, 4 standard deviations of the share
	// (1/sqrt(VNodes) relative) plus 4 of the key sample's noise.
	tolerance := func(ideal float64) float64 {
		return 4*ideal/math.Sqrt(float64(cfg.VNodes)) + 4*math.Sqrt(ideal/k)
	}
	for _, n := range []int{3, 10, 50} {
		before := names(n)
		old := mustNew(t, cfg, before)

		t.Run(fmt.Sprintf("join/members=%d", n), func(t *testing.T) {
			const joiner = "joiner"
			r := mustNew(t, cfg, append(slices.Clone(before), joiner))
			moved := 0
			for _, key := range ks {
				was, is := old.Owner(key), r.Owner(key)
				if was == is {
					continue
				}
				if is != joiner {
					t.Fatalf("key %q moved %q -> %q, not onto the joiner", key, was, is)
				}
				moved++
			}
			got, ideal := float64(moved)/k, 1/float64(n+1)
			share := r.Shares()[joiner]
			t.Logf("moved %.4f of keys, ideal %.4f, joiner's share %.4f", got, ideal, share)
			if math.Abs(got-ideal) > tolerance(ideal) {
				t.Errorf("moved %.4f, want %.4f ± %.4f", got, ideal, tolerance(ideal))
			}
			if math.Abs(got-share) > 4*math.Sqrt(share/k) {
				t.Errorf("moved %.4f, but joiner's share is %.4f", got, share)
			}
		})

		t.Run(fmt.Sprintf("leave/members=%d", n), func(t *testing.T) {
			leaver := before[n/2]
			after := slices.DeleteFunc(slices.Clone(before), func(m string) bool { return m == leaver })
			r := mustNew(t, cfg, after)
			if r.Contains(leaver) {
				t.Fatalf("ring still contains %q", leaver)
			}
			moved := 0
			for _, key := range ks {
				was, is := old.Owner(key), r.Owner(key)
				if was == is {
					continue
				}
				if was != leaver {
					t.Fatalf("key %q moved %q -> %q, but only %q left", key, was, is, leaver)
				}
				moved++
			}
			got, ideal := float64(moved)/k, 1/float64(n)
			share := old.Shares()[leaver]
			t.Logf("moved %.4f of keys, ideal %.4f, leaver's share %.4f", got, ideal, share)
			if math.Abs(got-ideal) > tolerance(ideal) {
				t.Errorf("moved %.4f, want %.4f ± %.4f", got, ideal, tolerance(ideal))
			}
			if math.Abs(got-share) > 4*math.Sqrt(share/k) {
				t.Errorf("moved %.4f, but leaver's share was %.4f", got, share)
			}
		})
	}
}

// TestMovementOnTie checks minimal movement when a joiner's point lands
// exactly on an existing point: the tie rule may hand it the point's keys,
// but they move only onto the joiner, and back when it leaves.
func TestMovementOnTie(t *testing.T) {
	place := map[string]uint64{"b#0": 100, "c#0": 200, "a#0": 100}
	cfg := ring.Config{VNodes: 1, Hash: handHash(place)}
	old := mustNew(t, cfg, []string{"b", "c"})
	r := mustNew(t, cfg, []string{"a", "b", "c"})
	tests := []struct{ key, before, after string }{
		{"50", "b", "a"}, // a ties b at 100 and wins by name
		{"100", "b", "a"},
		{"150", "c", "c"},
		{"250", "b", "a"}, // the wrap-round arc belongs to the first point
	}
	for _, tt := range tests {
		if got := old.Owner(tt.key); got != tt.before {
			t.Errorf("before join: Owner(%s) = %q, want %q", tt.key, got, tt.before)
		}
		if got := r.Owner(tt.key); got != tt.after {
			t.Errorf("after join: Owner(%s) = %q, want %q", tt.key, got, tt.after)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	r := mustNew(t, ring.DefaultConfig(), names(100))
	ks := keys(64)
	dst := make([]string, 0, 16)
	idx := make([]int, 0, 3)
	i := 0
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"Owner", func() { _ = r.Owner(ks[i%len(ks)]); i++ }},
		{"AppendOwners", func() { dst = r.AppendOwners(dst[:0], ks[i%len(ks)], 3); i++ }},
		{"AppendOwnerIndexes", func() { idx = r.AppendOwnerIndexes(idx[:0], ks[i%len(ks)], 3); i++ }},
		{"AppendOwners, 16", func() { dst = r.AppendOwners(dst[:0], ks[i%len(ks)], 16); i++ }},
	} {
		if a := testing.AllocsPerRun(200, tt.f); a != 0 {
			t.Errorf("%s: %v allocs/op, want 0", tt.name, a)
		}
	}
}

// TestConcurrentUse reads one Ring from several goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	r := mustNew(t, ring.DefaultConfig(), names(10))
	ks := keys(2_000)
	want := make([]string, len(ks))
	for i, k := range ks {
		want[i] = r.Owner(k)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]string, 0, 2)
			for i, k := range ks {
				if r.Owner(k) != want[i] {
					errs <- k
					return
				}
				dst = r.AppendOwners(dst[:0], k, 2)
				if i%500 == 0 {
					_ = r.Shares()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for k := range errs {
		t.Errorf("concurrent Owner(%q) disagreed", k)
	}
}
