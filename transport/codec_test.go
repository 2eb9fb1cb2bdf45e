package transport

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// fill sets every field reachable from v to a non-zero value derived from
// seed, so a field the codec forgets shows up as a difference.
func fill(v reflect.Value, seed int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), seed+i+1)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), seed)
	case reflect.Slice:
		n := 2 + seed%3
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(s.Index(i), seed*7+i)
		}
		v.Set(s)
	case reflect.String:
		v.SetString(strings.Repeat(string(rune('a'+seed%26)), 1+seed%40))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint8:
		v.SetUint(uint64(1 + seed%200))
	case reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(uint64(seed)*0x9e3779b97f4a7c15 | 1)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		x := int64(seed) * 1000003
		if seed%2 == 1 {
			x = -x
		}
		v.SetInt(x)
	default:
		panic("fill: unhandled kind " + v.Kind().String() + "; teach the codec and this test the new field type")
	}
}

// onlyField returns a copy of full with every top-level field but i zeroed
// (field ID is kept, it is never omitted).
func onlyField(full reflect.Value, i int) reflect.Value {
	out := reflect.New(full.Type()).Elem()
	out.Field(i).Set(full.Field(i))
	return out
}

// TestCodecCoversEveryField checks the hand-written codec against the
// msgpack library's reading of the struct tags, in both directions, for
// every field of Request and Response: one at a time (omitempty counting)
// and all together. It fails when message.go gains a field codec.go does
// not handle yet.
func TestCodecCoversEveryField(t *testing.T) {
	t.Run("Request", func(t *testing.T) {
		var full Request
		fill(reflect.ValueOf(&full).Elem(), 3)
		rv := reflect.ValueOf(full)
		cases := []Request{full, {}}
		for i := range rv.NumField() {
			cases = append(cases, onlyField(rv, i).Interface().(Request))
		}
		for _, want := range cases {
			// Ours -> library.
			var got Request
			if err := msgpack.Unmarshal(appendRequest(nil, &want), &got); err != nil {
				t.Fatalf("library cannot decode our %+v: %v", want, err)
			}
			if !reflect.DeepEqual(normReq(got), normReq(want)) {
				t.Fatalf("library decoded our encoding as\n%+v\nwant\n%+v", got, want)
			}
			// Library -> ours.
			b, err := msgpack.Marshal(&want)
			if err != nil {
				t.Fatal(err)
			}
			got = Request{}
			if err := decodeRequest(b, &got, false, nil); err != nil {
				t.Fatalf("cannot decode library's %+v: %v", want, err)
			}
			if !reflect.DeepEqual(normReq(got), normReq(want)) {
				t.Fatalf("decoded library encoding as\n%+v\nwant\n%+v", got, want)
			}
		}
	})
	t.Run("Response", func(t *testing.T) {
		var full Response
		fill(reflect.ValueOf(&full).Elem(), 5)
		rv := reflect.ValueOf(full)
		cases := []Response{full, {}}
		for i := range rv.NumField() {
			cases = append(cases, onlyField(rv, i).Interface().(Response))
		}
		// Nested structs, one field at a time as well.
		mv := reflect.ValueOf(full.Members[0])
		for i := range mv.NumField() {
			cases = append(cases, Response{ID: 1, Members: []Member{onlyField(mv, i).Interface().(Member)}})
		}
		sv := reflect.ValueOf(*full.Stats)
		for i := range sv.NumField() {
			st := onlyField(sv, i).Interface().(Stats)
			cases = append(cases, Response{ID: 1, Stats: &st})
		}
		for _, want := range cases {
			var got Response
			if err := msgpack.Unmarshal(appendResponse(nil, &want), &got); err != nil {
				t.Fatalf("library cannot decode our %+v: %v", want, err)
			}
			if !reflect.DeepEqual(normResp(got), normResp(want)) {
				t.Fatalf("library decoded our encoding as\n%+v\nwant\n%+v", got, want)
			}
			b, err := msgpack.Marshal(&want)
			if err != nil {
				t.Fatal(err)
			}
			got = Response{}
			if err := decodeResponse(b, &got, false); err != nil {
				t.Fatalf("cannot decode library's %+v: %v", want, err)
			}
			if !reflect.DeepEqual(normResp(got), normResp(want)) {
				t.Fatalf("decoded library encoding as\n%+v\nwant\n%+v", got, want)
			}
		}
	})
}

// normReq and normResp map empty slices to nil: omitempty cannot tell them
// apart on the wire.
func normReq(r Request) Request {
	if len(r.Value) == 0 {
		r.Value = nil
	}
	return r
}

func normResp(r Response) Response {
	if len(r.Value) == 0 {
		r.Value = nil
	}
	if len(r.Members) == 0 {
		r.Members = nil
	}
	return r
}

// TestCodecExtremes round-trips values at every msgpack size class
// boundary.
func TestCodecExtremes(t *testing.T) {
	ints := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	sizes := []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000}
	for _, n := range ints {
		for _, size := range sizes {
			req := Request{ID: uint64(n), Op: Op(size), Flags: Flags(n), Key: strings.Repeat("k", size),
				Value: bytes.Repeat([]byte{7}, size), TTL: n, Delta: -n}
			var got Request
			if err := decodeRequest(appendRequest(nil, &req), &got, false, nil); err != nil {
				t.Fatalf("%d/%d: %v", n, size, err)
			}
			if !reflect.DeepEqual(normReq(got), normReq(req)) {
				t.Fatalf("%d/%d: got %+v", n, size, got)
			}
		}
	}
	for _, members := range []int{0, 1, 15, 16, 17, 300} {
		resp := Response{ID: math.MaxUint64, Code: CodeOverflow, Err: "e", TTL: -5, Int: math.MinInt64, HasOld: true,
			Members: make([]Member, members), Stats: &Stats{Entries: 1, Local: math.MaxInt64}}
		for i := range resp.Members {
			resp.Members[i] = Member{Name: "n", DataAddr: strings.Repeat("d", i)}
		}
		var got Response
		if err := decodeResponse(appendResponse(nil, &resp), &got, true); err != nil {
			t.Fatalf("%d members: %v", members, err)
		}
		if !reflect.DeepEqual(normResp(got), normResp(resp)) {
			t.Fatalf("%d members: got %+v", members, got)
		}
	}
}

// TestDecodeRejectsTruncation feeds every proper prefix of valid messages:
// each must fail with ErrMalformed, never panic or succeed.
func TestDecodeRejectsTruncation(t *testing.T) {
	var req Request
	fill(reflect.ValueOf(&req).Elem(), 9)
	b := appendRequest(nil, &req)
	for i := range len(b) {
		var r Request
		if err := decodeRequest(b[:i], &r, false, nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix %d/%d: err %v", i, len(b), err)
		}
	}
	var resp Response
	fill(reflect.ValueOf(&resp).Elem(), 9)
	b = appendResponse(nil, &resp)
	for i := range len(b) {
		var r Response
		if err := decodeResponse(b[:i], &r, false); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix %d/%d: err %v", i, len(b), err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string][]byte{
		"empty":          {},
		"not a map":      {0x93, 1, 2, 3},
		"nil":            {mpNil},
		"int key":        {0x81, 0x01, 0x01},
		"op too big":     {0x81, 0xa1, 'o', mpUint16, 0x01, 0x00},
		"negative id":    {0x81, 0xa1, 'i', 0xff},
		"float id":       {0x81, 0xa1, 'i', mpFloat32, 0, 0, 0, 0},
		"ttl overflow":   {0x81, 0xa1, 't', mpUint64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"key as int":     {0x81, 0xa1, 'k', 0x05},
		"trailing":       {0x80, 0x00},
		"huge map":       {mpMap32, 0xff, 0xff, 0xff, 0xff},
		"huge str":       {0x81, 0xa1, 'k', mpStr32, 0xff, 0xff, 0xff, 0xff},
		"bad code skip":  {0x81, 0xa1, 'z', 0xc1},
		"deep skip":      append([]byte{0x81, 0xa1, 'z'}, bytes.Repeat([]byte{0x91}, 100)...),
		"huge array":     {0x81, 0xa1, 'z', mpArray32, 0x7f, 0xff, 0xff, 0xff},
		"huge ext":       {0x81, 0xa1, 'z', mpExt32, 0x7f, 0xff, 0xff, 0xff, 1},
		"unterminated":   {0x82, 0xa1, 'i', 0x01},
		"bool as string": {0x81, 0xa1, 'k', mpTrue},
	}
	for name, b := range cases {
		var r Request
		if err := decodeRequest(b, &r, false, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	// Unknown fields of every type are skipped.
	ok := []byte{0x8a, 0xa1, 'i', 0x07,
		0xa2, 'z', 'z', mpFloat64, 1, 2, 3, 4, 5, 6, 7, 8,
		0xa1, 'a', 0xd5, 1, 2, 3, // fixext2
		0xa1, 'b', mpExt8, 2, 9, 1, 2,
		0xa1, 'c', 0x92, 0x81, 0xa0, mpNil, mpTrue,
		0xa1, 'e', mpInt16, 0xff, 0x00,
		0xa1, 'g', mpBin8, 1, 0,
		0xa1, 'h', mpStr8, 1, 'x',
		0xa1, 'j', mpMap16, 0, 1, 0x01, 0x02,
		0xa1, 'o', 0x02,
	}
	var r Request
	if err := decodeRequest(ok, &r, false, nil); err != nil || r.ID != 7 || r.Op != 2 {
		t.Fatalf("skipping unknown fields: %+v, %v", r, err)
	}
}

// TestDecodeNoAliasing checks that decoded values do not share memory with
// the input unless aliasing was asked for: read buffers are reused.
func TestDecodeNoAliasing(t *testing.T) {
	b := appendRequest(nil, &Request{ID: 1, Key: "key", Value: []byte("value")})
	var r Request
	if err := decodeRequest(b, &r, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if r.Key != "key" || string(r.Value) != "value" {
		t.Fatalf("decoded request changed with its input buffer: %+v", r)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	var full Request
	fill(reflect.ValueOf(&full).Elem(), 1)
	f.Add(appendRequest(nil, &full))
	f.Add(appendRequest(nil, &Request{ID: 1, Op: OpGet, Key: "k"}))
	lib, _ := msgpack.Marshal(&full)
	f.Add(lib)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		// As the server decodes: keyed ops' keys and values shared. One
		// chunk big enough for any input, so that every shared byte lands
		// in the chunk the checks below look at.
		keys := KeyChunk{b: make([]byte, 0, len(b)+1)}
		if err := decodeRequest(b, &r, false, &keys); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if (inChunk(r.Key, keys) || valueInChunk(r.Value, keys)) && !r.Op.SharesKey() {
			t.Fatalf("the key or value of a %v request shares the chunk", r.Op)
		}
		if valueInChunk(r.Value, keys) && cap(r.Value) != len(r.Value) {
			t.Fatalf("a shared value has room to grow into the chunk: len %d, cap %d", len(r.Value), cap(r.Value))
		}
		// Whatever we accept, the library reads the same way...
		var lib Request
		if err := msgpack.Unmarshal(b, &lib); err != nil {
			t.Fatalf("we accept what the library refuses (%v): %+v", err, r)
		}
		if !reflect.DeepEqual(normReq(lib), normReq(r)) {
			t.Fatalf("library decodes %+v, we decode %+v", lib, r)
		}
		// ...and it survives our own round trip.
		var again Request
		if err := decodeRequest(appendRequest(nil, &r), &again, false, nil); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !reflect.DeepEqual(normReq(again), normReq(r)) {
			t.Fatalf("round trip changed %+v to %+v", r, again)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	var full Response
	fill(reflect.ValueOf(&full).Elem(), 1)
	f.Add(appendResponse(nil, &full))
	f.Add(appendResponse(nil, &Response{ID: 1, Code: CodeNotFound, Err: "nope"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Response
		if err := decodeResponse(b, &r, false); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		var again Response
		if err := decodeResponse(appendResponse(nil, &r), &again, false); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !reflect.DeepEqual(normResp(again), normResp(r)) {
			t.Fatalf("round trip changed %+v to %+v", r, again)
		}
	})
}

// inChunk reports whether s's bytes lie in c's array.
func inChunk(s string, c KeyChunk) bool {
	return len(s) > 0 && inArray(unsafe.Pointer(unsafe.StringData(s)), c)
}

// valueInChunk is inChunk for a value.
func valueInChunk(b []byte, c KeyChunk) bool {
	return len(b) > 0 && inArray(unsafe.Pointer(unsafe.SliceData(b)), c)
}

func inArray(p unsafe.Pointer, c KeyChunk) bool {
	if cap(c.b) == 0 {
		return false
	}
	at, lo := uintptr(p), uintptr(unsafe.Pointer(unsafe.SliceData(c.b)))
	return at >= lo && at < lo+uintptr(cap(c.b))
}

// A request that names its op twice gets a key and value of its own
// unless the op it ends up with uses them only while served, whichever op
// came first.
func TestSharedKeyFollowsTheFinalOp(t *testing.T) {
	enc := func(ops ...Op) []byte {
		b := []byte{0x80 | byte(len(ops)+3)}
		b = appendUint(appendKey(b, 'i'), 1)
		b = appendUint(appendKey(b, 'o'), uint64(ops[0]))
		b = append(appendKey(b, 'k'), 0xa3, 'a', 'b', 'c')
		b = append(appendKey(b, 'v'), 0xa3, 'x', 'y', 'z')
		for _, op := range ops[1:] {
			b = appendUint(appendKey(b, 'o'), uint64(op))
		}
		return b
	}
	for _, c := range []struct {
		ops    []Op
		shared bool
	}{
		{[]Op{OpGet}, true},
		{[]Op{OpSet}, true},
		{[]Op{OpReplicate}, true},
		{[]Op{OpLoad}, false},
		{[]Op{OpHandoffDone}, false},
		{[]Op{OpGet, OpSet}, true},
		{[]Op{OpGet, OpLoad}, false},
		{[]Op{OpSet, OpHandoffDone}, false},
		{[]Op{OpLoad, OpGet}, false}, // key and value came before the sharing op: allocated, which is safe
		{[]Op{OpGet, OpTTL}, true},
	} {
		var keys KeyChunk
		var r Request
		if err := decodeRequest(enc(c.ops...), &r, false, &keys); err != nil {
			t.Fatalf("%v: %v", c.ops, err)
		}
		if r.Key != "abc" || string(r.Value) != "xyz" {
			t.Fatalf("%v: key %q, value %q", c.ops, r.Key, r.Value)
		}
		if got := inChunk(r.Key, keys); got != c.shared {
			t.Errorf("ops %v: key in the shared chunk = %v, want %v", c.ops, got, c.shared)
		}
		if got := valueInChunk(r.Value, keys); got != c.shared {
			t.Errorf("ops %v: value in the shared chunk = %v, want %v", c.ops, got, c.shared)
		}
	}
}
