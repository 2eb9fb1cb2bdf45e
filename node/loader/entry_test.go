package loader

import (
	"bytes"
	"errors"
	"testing"
)

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []Entry{
		{Value: []byte("hello")},
		{Value: []byte{}, SoftExpireAt: 1},
		{Value: bytes.Repeat([]byte{0}, 1000), SoftExpireAt: 1 << 62},
		{NotFound: true},
		{NotFound: true, SoftExpireAt: 123456789},
	} {
		b := e.Append([]byte("prefix"))
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("Append lost dst")
		}
		b = b[len("prefix"):]
		if want := HeaderSize + len(e.Value); len(b) != want {
			t.Errorf("%+v encodes to %d bytes, want %d", e, len(b), want)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%+v): %v", e, err)
		}
		if got.NotFound != e.NotFound || got.SoftExpireAt != e.SoftExpireAt || !bytes.Equal(got.Value, e.Value) {
			t.Errorf("round trip of %+v = %+v", e, got)
		}
	}
}

func TestDecodeRefusesWhatALoadNeverWrites(t *testing.T) {
	ok := Entry{Value: []byte("v")}.Append(nil)
	for name, b := range map[string][]byte{
		"empty":            nil,
		"short":            ok[:HeaderSize-1],
		"format":           append([]byte{2}, ok[1:]...),
		"kind":             append([]byte{1, 9}, ok[2:]...),
		"negative soft":    {1, 0, 0x80, 0, 0, 0, 0, 0, 0, 0},
		"not found + data": append(Entry{NotFound: true}.Append(nil), 'x'),
		"user text":        []byte("just a user's string value"),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode = %v, want ErrMalformed", name, err)
		}
	}
}

func TestEntryStale(t *testing.T) {
	if (Entry{}).Stale(1 << 62) {
		t.Error("an entry without a soft expiry went stale")
	}
	e := Entry{SoftExpireAt: 100}
	if e.Stale(99) || !e.Stale(100) || !e.Stale(101) {
		t.Error("Stale is wrong around the soft expiry")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Entry{Value: []byte("v"), SoftExpireAt: 5}.Append(nil))
	f.Add(Entry{NotFound: true}.Append(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		if again := e.Append(nil); !bytes.Equal(again, b) {
			t.Fatalf("Decode(%x) = %+v, which encodes to %x", b, e, again)
		}
	})
}
