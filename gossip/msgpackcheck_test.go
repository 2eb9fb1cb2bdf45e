package gossip

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// TestCheckLengthsAcceptsWhatTheLibraryWrites: every kind of value the
// msgpack library encodes (all integer widths, floats, strings and binary
// of every length class, extensions, nested arrays and maps) passes, and
// the check measures exactly one value.
func TestCheckLengthsAcceptsWhatTheLibraryWrites(t *testing.T) {
	values := []any{
		nil, true, false, 0, 1, -1, 127, 128, -33, 255, 256, 65535, 65536, int64(math.MaxInt32) + 1, int64(math.MinInt64), uint64(math.MaxUint64),
		float32(1.5), 2.5, "", "short", strings.Repeat("s", 31), strings.Repeat("m", 200), strings.Repeat("l", 70000),
		[]byte{}, []byte("bin"), bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{2}, 70000),
		time.Unix(1700000000, 5), // an extension
		[]string{"a", "b"}, make([]int, 20), make([]int, 70000),
		map[string]any{"a": 1, "b": []any{1, "x", map[string]int{"y": 2}}},
		userState{Name: "peer", Leaving: []string{"me", "you"}},
		wireMeta{DataAddr: "127.0.0.1:7001", Proto: 1, Leaving: true, Boot: 42, Groups: []string{"users", "orders"}},
	}
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %T: %v", v, err)
		}
		n, err := checkLengths(b)
		if err != nil || n != len(b) {
			t.Errorf("%T (% x...): checkLengths = %d, %v; want %d, nil", v, b[:min(len(b), 8)], n, err, len(b))
		}
	}
}

// TestCheckLengthsRefusesHostileLengths: declared lengths past the end of
// the message, truncated values, an unused byte and nesting too deep are
// refused.
func TestCheckLengthsRefusesHostileLengths(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x91}, maxCheckDepth+2), 0x01)
	for name, b := range map[string][]byte{
		"array32 of 4G":       {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
		"map32 of 4G":         {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01},
		"array16 past end":    {0xdc, 0x00, 0x03, 0x01, 0x01},
		"map16 past end":      {0xde, 0x00, 0x02, 0x01, 0x01, 0x01},
		"fixarray past end":   {0x93, 0x01},
		"str32 of 4G":         {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		"bin32 past end":      {0xc6, 0x00, 0x00, 0x00, 0x09, 1, 2},
		"str8 past end":       {0xd9, 0x05, 'a'},
		"fixstr past end":     {0xa5, 'a', 'b'},
		"ext32 past end":      {0xc9, 0x00, 0x01, 0x00, 0x00, 0x01},
		"fixext16 past end":   {0xd8, 0x01, 0x00},
		"uint64 truncated":    {0xcf, 0x00, 0x00},
		"length truncated":    {0xdd, 0x00, 0x00},
		"unused byte 0xc1":    {0xc1},
		"empty":               {},
		"nested too deep":     deep,
		"user state, 4G list": {0x82, 0xa1, 'n', 0xa1, 'p', 0xa1, 'l', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"array32 of 2^31+1":   {0xdd, 0x80, 0x00, 0x00, 0x01, 0x01}, // negative as a 32-bit int
		"map32 of 2^31+1":     {0xdf, 0x80, 0x00, 0x00, 0x01, 0x01, 0x01},
	} {
		if n, err := checkLengths(b); !errors.Is(err, errLength) {
			t.Errorf("%s: checkLengths = %d, %v; want errLength", name, n, err)
		}
	}
}

// TestHostileLengthsCostNothing: a peer's user state or metadata that
// declares a list of four billion names is refused without the decoder
// allocating for them (it would allocate 16 MB).
func TestHostileLengthsCostNothing(t *testing.T) {
	state := []byte{0x82, 0xa1, 'n', 0xa1, 'p', 0xa1, 'l', 0xdd, 0xff, 0xff, 0xff, 0xff}
	meta := []byte{0x82, 0xa1, 'd', 0xae, '1', '2', '7', '.', '0', '.', '0', '.', '1', ':', '7', '0', '0', '1', 0xa1, 'g', 0xdd, 0xff, 0xff, 0xff, 0xff}
	g := &Gossip{cfg: Config{Name: "me"}, leaveAcks: map[string]bool{}}
	res := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.mergeUserState(state)
			if _, _, err := decodeMeta(meta); !errors.Is(err, ErrBadMeta) {
				b.Fatalf("decodeMeta: %v", err)
			}
		}
	})
	if per := res.AllocedBytesPerOp(); per > 4<<10 {
		t.Fatalf("hostile user state and metadata allocate %d bytes per decode", per)
	}
	if len(g.leaveAcks) != 0 {
		t.Fatalf("hostile user state recorded acks: %v", g.leaveAcks)
	}
}
