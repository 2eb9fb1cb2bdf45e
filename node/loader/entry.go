package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// An Entry is stored in the cache as a HeaderSize-byte header followed by
// the value:
//
//	byte 0     format, 1 (anything else is refused, so a later format can
//	           be told apart)
//	byte 1     kind: 0 a value, 1 "not found" (a negative entry, no value)
//	bytes 2-9  soft expiry, Unix nanoseconds, big-endian; 0 means none
//	bytes 10-  the value
//
// The hard expiry is the cache entry's own TTL, which the cluster already
// replicates and enforces; only the soft one needs to travel in the value.
const HeaderSize = 10

const (
	format       = 1
	kindValue    = 0
	kindNotFound = 1
)

// ErrMalformed reports bytes that are not an encoded Entry: something other
// than a load wrote the key.
var ErrMalformed = errors.New("loader: malformed entry")

// Entry is one loaded result as the cache holds it.
type Entry struct {
	// Value is what the loader returned; nil for NotFound.
	Value []byte
	// NotFound marks a cached "not found" (negative caching).
	NotFound bool
	// SoftExpireAt is when the entry turns stale (Unix ns; 0: never): it is
	// still served, but one background refresh is started.
	SoftExpireAt int64
}

// Append appends e's encoding to dst and returns the extended slice.
func (e Entry) Append(dst []byte) []byte {
	kind := byte(kindValue)
	if e.NotFound {
		kind = kindNotFound
	}
	dst = append(dst, format, kind)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.SoftExpireAt))
	if !e.NotFound {
		dst = append(dst, e.Value...)
	}
	return dst
}

// Decode parses an encoded Entry. Value aliases b.
func Decode(b []byte) (Entry, error) {
	if len(b) < HeaderSize {
		return Entry{}, fmt.Errorf("%w: %d bytes, header is %d", ErrMalformed, len(b), HeaderSize)
	}
	if b[0] != format {
		return Entry{}, fmt.Errorf("%w: format %d", ErrMalformed, b[0])
	}
	soft := int64(binary.BigEndian.Uint64(b[2:HeaderSize]))
	if soft < 0 {
		return Entry{}, fmt.Errorf("%w: negative soft expiry", ErrMalformed)
	}
	switch b[1] {
	case kindValue:
		return Entry{Value: b[HeaderSize:], SoftExpireAt: soft}, nil
	case kindNotFound:
		if len(b) != HeaderSize {
			return Entry{}, fmt.Errorf("%w: not-found entry carries %d value bytes", ErrMalformed, len(b)-HeaderSize)
		}
		return Entry{NotFound: true, SoftExpireAt: soft}, nil
	}
	return Entry{}, fmt.Errorf("%w: kind %d", ErrMalformed, b[1])
}

// Stale reports whether e is past its soft expiry at now (Unix ns).
func (e Entry) Stale(now int64) bool {
	return e.SoftExpireAt != 0 && now >= e.SoftExpireAt
}
