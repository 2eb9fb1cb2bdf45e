package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{},
		{DataAddr: "127.0.0.1:7001"},
		{DataAddr: "10.0.0.1:7001", RespAddr: "10.0.0.1:6379", HTTPAddr: "[fd00::1]:8080", Proto: 255},
		{DataAddr: "node-1.cache.internal:7001", Proto: 1},
	} {
		for _, leaving := range []bool{false, true} {
			b, err := encodeMeta(m, leaving)
			if err != nil {
				t.Fatalf("encodeMeta(%+v, %v): %v", m, leaving, err)
			}
			got, gotLeaving, err := decodeMeta(b)
			if err != nil || !reflect.DeepEqual(got, m) || gotLeaving != leaving {
				t.Errorf("decodeMeta(encodeMeta(%+v, %v)) = %+v, %v, %v", m, leaving, got, gotLeaving, err)
			}
		}
	}
}

func TestMetaGroupsRoundTrip(t *testing.T) {
	for _, groups := range [][]string{
		{"users"},
		{"users", "sessions", "thumbnails"},
		{"", "ü-名前", strings.Repeat("g", 200)},
	} {
		m := Meta{DataAddr: "10.0.0.1:7001", Proto: 1, Boot: 42, Groups: groups}
		for _, leaving := range []bool{false, true} {
			b, err := encodeMeta(m, leaving)
			if err != nil {
				t.Fatalf("encodeMeta(%q): %v", groups, err)
			}
			got, gotLeaving, err := decodeMeta(b)
			if err != nil || !reflect.DeepEqual(got, m) || gotLeaving != leaving {
				t.Errorf("round trip of %q, leaving=%v: %+v, %v, %v", groups, leaving, got, gotLeaving, err)
			}
		}
	}

	// No groups costs nothing on the wire; an empty list reads back as nil.
	without, _ := encodeMeta(Meta{DataAddr: "10.0.0.1:7001"}, false)
	empty, _ := encodeMeta(Meta{DataAddr: "10.0.0.1:7001", Groups: []string{}}, false)
	if !bytes.Equal(without, empty) {
		t.Errorf("empty Groups encoded as %x, want %x", empty, without)
	}
	if m, _, err := decodeMeta(empty); err != nil || m.Groups != nil {
		t.Errorf("empty Groups decoded as %#v, %v", m.Groups, err)
	}

	// Names count against MetaMaxSize: enough of them is ErrMetaTooLarge,
	// and whatever is accepted fits with the leaving flag raised too.
	var groups []string
	for i := 0; ; i++ {
		groups = append(groups, fmt.Sprintf("group-%03d", i))
		m := Meta{DataAddr: "10.0.0.1:7001", Groups: groups}
		b, err := encodeMeta(m, false)
		if errors.Is(err, ErrMetaTooLarge) {
			if i < 30 {
				t.Fatalf("only %d groups fit", i)
			}
			break
		}
		if err != nil || len(b) > MetaMaxSize {
			t.Fatalf("%d groups: %d bytes, %v", len(groups), len(b), err)
		}
		if b, err := encodeMeta(m, true); err != nil || len(b) > MetaMaxSize {
			t.Fatalf("%d groups fit without the leaving flag but not with it: %d bytes, %v", len(groups), len(b), err)
		}
	}
	cfg := DefaultFastConfig()
	cfg.Name = "n"
	cfg.Meta = Meta{DataAddr: "10.0.0.1:7001", Groups: groups}
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("Validate with too many groups = %v, want ErrInvalidConfig and ErrMetaTooLarge", err)
	}

	// A peer's groups of the wrong type are malformed metadata.
	if _, _, err := decodeMeta(mustMarshal(t, map[string]any{"g": "not-a-list"})); !errors.Is(err, ErrBadMeta) {
		t.Errorf("groups as a string: %v, want ErrBadMeta", err)
	}
	if _, _, err := decodeMeta(mustMarshal(t, map[string]any{"g": []any{1, 2}})); !errors.Is(err, ErrBadMeta) {
		t.Errorf("groups as numbers: %v, want ErrBadMeta", err)
	}
}

func TestMetaIsCompact(t *testing.T) {
	b, err := encodeMeta(Meta{DataAddr: "10.0.0.1:7001", Proto: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	// fixmap header, "d", "10.0.0.1:7001", "p", 1.
	if len(b) > 20 {
		t.Errorf("encoded Meta is %d bytes (%x), want short keys and omitted empty fields", len(b), b)
	}
}

func TestDecodeMetaIgnoresUnknownFields(t *testing.T) {
	// A newer node publishes a field this version does not know.
	b, err := msgpack.Marshal(map[string]any{"d": "10.0.0.1:7001", "p": 2, "z": []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := decodeMeta(b)
	if err != nil || !reflect.DeepEqual(m, Meta{DataAddr: "10.0.0.1:7001", Proto: 2}) {
		t.Errorf("decodeMeta = %+v, %v", m, err)
	}
}

func TestDecodeMetaRejectsGarbage(t *testing.T) {
	valid, _ := encodeMeta(Meta{DataAddr: "10.0.0.1:7001"}, false)
	badAddr, _ := msgpack.Marshal(map[string]any{"d": "no-port"})
	for name, b := range map[string][]byte{
		"not msgpack":    {0xc1},
		"not a map":      {0x2a},
		"truncated":      valid[:len(valid)-2],
		"trailing bytes": append(bytes.Clone(valid), 0x00),
		"wrong type":     {0x81, 0xa1, 'd', 0x2a},
		"bad address":    badAddr,
		"huge length":    {0x81, 0xa1, 'd', 0xdb, 0xff, 0xff, 0xff, 0xff},
	} {
		if m, _, err := decodeMeta(b); !errors.Is(err, ErrBadMeta) {
			t.Errorf("%s: decodeMeta(%x) = %+v, %v, want ErrBadMeta", name, b, m, err)
		}
	}
}

func TestEncodeMetaLimits(t *testing.T) {
	if _, err := encodeMeta(Meta{RespAddr: strings.Repeat("x", MetaMaxSize) + ":1"}, false); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("oversized: %v, want ErrMetaTooLarge", err)
	}
	if _, err := encodeMeta(Meta{DataAddr: "missing-port"}, false); !errors.Is(err, ErrBadMeta) {
		t.Errorf("bad address: %v, want ErrBadMeta", err)
	}
	// Whatever is accepted without the leaving flag still fits with it.
	for k := 400; k < 520; k++ {
		m := Meta{DataAddr: strings.Repeat("h", k) + ":1"}
		if _, err := encodeMeta(m, false); err != nil {
			continue
		}
		b, err := encodeMeta(m, true)
		if err != nil || len(b) > MetaMaxSize {
			t.Fatalf("k=%d: accepted without the flag but %d bytes / %v with it", k, len(b), err)
		}
	}
}

// FuzzDecodeMeta feeds arbitrary bytes, as a hostile or broken node could
// publish, to the decoder: it must never panic, and whatever it accepts must
// re-encode to the same Meta.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{{}, {DataAddr: "127.0.0.1:7001", Proto: 1}, {DataAddr: "[::1]:1", RespAddr: "a:2", HTTPAddr: "b:3", Proto: 9}} {
		b, err := encodeMeta(m, false)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Add([]byte{0x81, 0xa1, 'd', 0xdb, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, leaving, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrBadMeta) {
				t.Fatalf("decodeMeta error %v is not ErrBadMeta", err)
			}
			return
		}
		enc, err := encodeMeta(m, leaving)
		if errors.Is(err, ErrMetaTooLarge) {
			return // a peer may publish more than this node would
		}
		if err != nil {
			t.Fatalf("decoded %+v does not re-encode: %v", m, err)
		}
		m2, leaving2, err := decodeMeta(enc)
		if err != nil || !reflect.DeepEqual(m2, m) || leaving2 != leaving {
			t.Fatalf("round trip: %+v %v -> %+v %v %v", m, leaving, m2, leaving2, err)
		}
	})
}

func TestDecodeMetaOddButValid(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		want Meta
		ok   bool
	}{
		"nil is empty":           {[]byte{0xc0}, Meta{}, true},
		"empty map":              {[]byte{0x80}, Meta{}, true},
		"oversized input":        {append([]byte{0x81, 0xa1, 'x', 0xc5, 0x02, 0x00}, make([]byte, 512)...), Meta{}, false},
		"proto out of range":     {mustMarshal(t, map[string]any{"p": 300}), Meta{}, false},
		"negative proto":         {mustMarshal(t, map[string]any{"p": -1}), Meta{}, false},
		"empty groups are none":  {[]byte{0x81, 0xa1, 'g', 0x90}, Meta{}, true},
		"last duplicate key won": {[]byte{0x82, 0xa1, 'd', 0xa3, 'a', ':', '1', 0xa1, 'd', 0xa3, 'b', ':', '2'}, Meta{DataAddr: "b:2"}, true},
	} {
		got, _, err := decodeMeta(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%s: decodeMeta = %+v, %v; want %+v, ok=%v", name, got, err, tc.want, tc.ok)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMergeUserState(t *testing.T) {
	g := &Gossip{cfg: Config{Name: "me"}, members: map[string]Member{}}
	ack, _ := msgpack.Marshal(&userState{Name: "peer", Leaving: []string{"x", "me"}})
	other, _ := msgpack.Marshal(&userState{Name: "peer2", Leaving: []string{"x"}})

	g.mergeUserState(ack) // not leaving: ignored
	if g.leaveAcks != nil {
		t.Fatal("ack recorded while not leaving")
	}
	g.leaveAcks = map[string]bool{}
	for _, b := range [][]byte{nil, {0xc1}, {0x2a}, {0x81, 0xa1, 'l', 0xdd, 0xff, 0xff, 0xff, 0xff}, other, make([]byte, maxUserState+1)} {
		g.mergeUserState(b)
	}
	if len(g.leaveAcks) != 0 {
		t.Fatalf("acks from garbage or other names: %v", g.leaveAcks)
	}
	g.mergeUserState(ack)
	if !g.leaveAcks["peer"] || len(g.leaveAcks) != 1 {
		t.Fatalf("leaveAcks = %v, want peer", g.leaveAcks)
	}

	if b := g.localState(); b != nil {
		t.Errorf("localState with nobody leaving = %x, want nil", b)
	}
	g.members["a"] = Member{Name: "a", State: StateLeaving}
	g.members["b"] = Member{Name: "b", State: StateAlive}
	var us userState
	if err := msgpack.Unmarshal(g.localState(), &us); err != nil || us.Name != "me" || !slices.Equal(us.Leaving, []string{"a"}) {
		t.Errorf("localState = %+v, %v", us, err)
	}
}

// FuzzMergeUserState feeds arbitrary push/pull user state, as a hostile or
// broken peer could send, to a leaving node: it must never panic, and only a
// well-formed state naming this node may count as a confirmation.
func FuzzMergeUserState(f *testing.F) {
	for _, us := range []userState{{Name: "peer", Leaving: []string{"me"}}, {Name: "peer"}, {Leaving: []string{"me"}}} {
		b, err := msgpack.Marshal(&us)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x82, 0xa1, 'n', 0xa1, 'p', 0xa1, 'l', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		g := &Gossip{cfg: Config{Name: "me"}, leaveAcks: map[string]bool{}}
		g.mergeUserState(b)
		for name := range g.leaveAcks {
			var us userState
			if err := msgpack.Unmarshal(b, &us); err != nil || us.Name != name || !slices.Contains(us.Leaving, "me") {
				t.Fatalf("ack for %q from %x", name, b)
			}
		}
	})
}
