package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unsafe"
)

// This file holds a hand-written msgpack codec for Request and Response. It
// produces and accepts the same map-of-short-keys layout that
// vmihailenco/msgpack/v5 derives from the struct tags in message.go (tests
// check both directions), but appends straight into a connection's write
// buffer and decodes from the read buffer without reflection: the library
// costs ~450 ns and 5 allocations per encode, this ~30 ns and none.
//
// The decoder is stricter than the library (map layout only, string keys,
// integers must fit their field, no trailing bytes) and never trusts a
// length from the wire before checking it against the bytes actually there.

// msgpack type codes used below.
const (
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpExt16    = 0xc8
	mpExt32    = 0xc9
	mpFloat32  = 0xca
	mpFloat64  = 0xcb
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpFixExt1  = 0xd4
	mpFixExt16 = 0xd8
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

// maxSkipDepth bounds nesting in values the decoder skips (unknown fields),
// so a hostile frame cannot recurse the stack away.
const maxSkipDepth = 16

// Decoding errors are preallocated: a flood of bad frames must not allocate.
var (
	errTruncated   = fmt.Errorf("%w: truncated msgpack value", ErrMalformed)
	errTrailing    = fmt.Errorf("%w: trailing bytes after msgpack value", ErrMalformed)
	errWantMap     = fmt.Errorf("%w: expected a msgpack map", ErrMalformed)
	errWantArray   = fmt.Errorf("%w: expected a msgpack array", ErrMalformed)
	errWantStr     = fmt.Errorf("%w: expected a msgpack string", ErrMalformed)
	errWantBytes   = fmt.Errorf("%w: expected msgpack bytes", ErrMalformed)
	errWantInt     = fmt.Errorf("%w: expected a msgpack integer", ErrMalformed)
	errWantBool    = fmt.Errorf("%w: expected a msgpack bool", ErrMalformed)
	errIntRange    = fmt.Errorf("%w: integer out of range for its field", ErrMalformed)
	errBadCode     = fmt.Errorf("%w: invalid msgpack type code", ErrMalformed)
	errTooDeep     = fmt.Errorf("%w: msgpack value nested too deeply", ErrMalformed)
	errLenTooLarge = fmt.Errorf("%w: msgpack length exceeds the frame", ErrMalformed)
)

// ---- encoding ----

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 0x80:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return append(b, mpUint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, mpUint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mpUint64), v)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v)) // negative fixint: 0xe0..0xff
	case v >= math.MinInt8:
		return append(b, mpInt8, byte(v))
	case v >= math.MinInt16:
		return append(b, mpInt16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(b, mpInt32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(v))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpStr16, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpStr32), uint32(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, v []byte) []byte {
	n := len(v)
	switch {
	case n <= math.MaxUint8:
		b = append(b, mpBin8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpBin16, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpBin32), uint32(n))
	}
	return append(b, v...)
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpArray16, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mpArray32), uint32(n))
}

// appendKey appends a one-letter field name as a fixstr.
func appendKey(b []byte, k byte) []byte { return append(b, 0xa1, k) }

// appendRequest appends the msgpack encoding of r to b. Zero-valued
// omitempty fields are left out, as the struct tags say.
func appendRequest(b []byte, r *Request) []byte {
	n := 2
	if r.Flags != 0 {
		n++
	}
	if r.Key != "" {
		n++
	}
	if len(r.Value) != 0 {
		n++
	}
	if r.TTL != 0 {
		n++
	}
	if r.Delta != 0 {
		n++
	}
	if r.Version != 0 {
		n++
	}
	if r.ExpireAt != 0 {
		n++
	}
	if r.Deadline != 0 {
		n++
	}
	b = append(b, 0x80|byte(n))
	b = appendUint(appendKey(b, 'i'), r.ID)
	b = appendUint(appendKey(b, 'o'), uint64(r.Op))
	if r.Flags != 0 {
		b = appendUint(appendKey(b, 'f'), uint64(r.Flags))
	}
	if r.Key != "" {
		b = appendStr(appendKey(b, 'k'), r.Key)
	}
	if len(r.Value) != 0 {
		b = appendBin(appendKey(b, 'v'), r.Value)
	}
	if r.TTL != 0 {
		b = appendInt(appendKey(b, 't'), r.TTL)
	}
	if r.Delta != 0 {
		b = appendInt(appendKey(b, 'd'), r.Delta)
	}
	if r.Version != 0 {
		b = appendUint(appendStr(b, "ver"), r.Version)
	}
	if r.ExpireAt != 0 {
		b = appendInt(appendKey(b, 'x'), r.ExpireAt)
	}
	if r.Deadline != 0 {
		b = appendInt(appendStr(b, "dl"), r.Deadline)
	}
	return b
}

// appendResponse appends the msgpack encoding of r to b.
func appendResponse(b []byte, r *Response) []byte {
	n := 1
	if r.Code != CodeOK {
		n++
	}
	if r.Err != "" {
		n++
	}
	if len(r.Value) != 0 {
		n++
	}
	if r.TTL != 0 {
		n++
	}
	if r.Int != 0 {
		n++
	}
	if r.Version != 0 {
		n++
	}
	if r.RingVersion != 0 {
		n++
	}
	if r.HasOld {
		n++
	}
	if len(r.Members) != 0 {
		n++
	}
	if len(r.Keys) != 0 {
		n++
	}
	if r.Stats != nil {
		n++
	}
	b = append(b, 0x80|byte(n))
	b = appendUint(appendKey(b, 'i'), r.ID)
	if r.Code != CodeOK {
		b = appendUint(appendKey(b, 'c'), uint64(r.Code))
	}
	if r.Err != "" {
		b = appendStr(appendKey(b, 'e'), r.Err)
	}
	if len(r.Value) != 0 {
		b = appendBin(appendKey(b, 'v'), r.Value)
	}
	if r.TTL != 0 {
		b = appendInt(appendKey(b, 't'), r.TTL)
	}
	if r.Int != 0 {
		b = appendInt(appendKey(b, 'n'), r.Int)
	}
	if r.Version != 0 {
		b = appendUint(appendStr(b, "ver"), r.Version)
	}
	if r.RingVersion != 0 {
		b = appendUint(appendStr(b, "rv"), r.RingVersion)
	}
	if r.HasOld {
		b = append(appendKey(b, 'o'), mpTrue)
	}
	if len(r.Members) != 0 {
		b = appendArrayLen(appendKey(b, 'm'), len(r.Members))
		for i := range r.Members {
			m := &r.Members[i]
			if m.RespAddr != "" {
				b = append(b, 0x85)
			} else {
				b = append(b, 0x84)
			}
			b = appendStr(appendKey(b, 'n'), m.Name)
			b = appendStr(appendKey(b, 'g'), m.GossipAddr)
			b = appendStr(appendKey(b, 'd'), m.DataAddr)
			b = appendStr(appendKey(b, 's'), m.State)
			if m.RespAddr != "" {
				b = appendStr(appendKey(b, 'r'), m.RespAddr)
			}
		}
	}
	if len(r.Keys) != 0 {
		b = appendArrayLen(appendStr(b, "ks"), len(r.Keys))
		for _, k := range r.Keys {
			b = appendStr(b, k)
		}
	}
	if s := r.Stats; s != nil {
		b = append(appendStr(b, "st"), 0x8f) // fixmap of 15 fields
		b = appendInt(appendKey(b, 'e'), s.Entries)
		b = appendInt(appendKey(b, 'b'), s.Bytes)
		b = appendInt(appendKey(b, 'm'), s.MaxMemory)
		b = appendInt(appendKey(b, 'h'), s.Hits)
		b = appendInt(appendKey(b, 'x'), s.Misses)
		b = appendInt(appendKey(b, 'v'), s.Evictions)
		b = appendInt(appendKey(b, 'p'), s.Expirations)
		b = appendInt(appendKey(b, 'f'), s.Forwarded)
		b = appendInt(appendKey(b, 'l'), s.Local)
		b = appendInt(appendKey(b, 'r'), s.Replicated)
		b = appendInt(appendKey(b, 'a'), s.FallbackHits)
		b = appendInt(appendKey(b, 'k'), s.KeysMoved)
		b = appendInt(appendKey(b, 'y'), s.BytesMoved)
		b = appendInt(appendKey(b, 'd'), s.HandoffMillis)
		b = appendInt(appendKey(b, 'u'), s.UnderReplicated)
	}
	return b
}

// requestSizeHint is a lower bound on the encoded size of r, used to refuse
// an oversized request before encoding (and allocating) it.
func requestSizeHint(r *Request) int { return len(r.Key) + len(r.Value) }

// responseSizeHint is a lower bound on the encoded size of r.
func responseSizeHint(r *Response) int {
	n := len(r.Err) + len(r.Value)
	for i := range r.Members {
		m := &r.Members[i]
		n += len(m.Name) + len(m.GossipAddr) + len(m.DataAddr) + len(m.State) + len(m.RespAddr)
	}
	for _, k := range r.Keys {
		n += len(k)
	}
	return n
}

// ---- decoding ----

// decoder reads msgpack values from b. It never panics: every read checks
// the remaining length first.
type decoder struct {
	b   []byte
	off int
	// alias lets decoded []byte fields point into b instead of copying; set
	// only when b is a fresh buffer nobody else reuses.
	alias bool
}

func (d *decoder) rest() int { return len(d.b) - d.off }

func (d *decoder) byte1() (byte, error) {
	if d.off >= len(d.b) {
		return 0, errTruncated
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

// take returns the next n bytes. n comes from the wire, so it is checked as
// an unsigned 64-bit value before any slicing.
func (d *decoder) take(n uint64) ([]byte, error) {
	if n > uint64(d.rest()) {
		return nil, errTruncated
	}
	s := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return s, nil
}

// uintN reads a big-endian unsigned integer of size bytes.
func (d *decoder) uintN(size int) (uint64, error) {
	s, err := d.take(uint64(size))
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(s[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(s)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(s)), nil
	}
	return binary.BigEndian.Uint64(s), nil
}

// peekNil consumes a nil and reports whether there was one.
func (d *decoder) peekNil() bool {
	if d.off < len(d.b) && d.b[d.off] == mpNil {
		d.off++
		return true
	}
	return false
}

// integer reads any msgpack integer. neg reports a negative value, in which
// case the result is the value as int64 bits.
func (d *decoder) integer() (v uint64, neg bool, err error) {
	c, err := d.byte1()
	if err != nil {
		return 0, false, err
	}
	switch {
	case c < 0x80:
		return uint64(c), false, nil
	case c >= 0xe0:
		return uint64(int64(int8(c))), true, nil
	case c >= mpUint8 && c <= mpUint64:
		v, err = d.uintN(1 << (c - mpUint8))
		return v, false, err
	case c >= mpInt8 && c <= mpInt64:
		size := 1 << (c - mpInt8)
		u, err := d.uintN(size)
		if err != nil {
			return 0, false, err
		}
		shift := 64 - 8*size
		s := int64(u<<shift) >> shift // sign-extend
		return uint64(s), s < 0, nil
	}
	return 0, false, errWantInt
}

// uintMax reads a non-negative integer no larger than max (nil reads as 0).
func (d *decoder) uintMax(max uint64) (uint64, error) {
	if d.peekNil() {
		return 0, nil
	}
	v, neg, err := d.integer()
	if err != nil {
		return 0, err
	}
	if neg || v > max {
		return 0, errIntRange
	}
	return v, nil
}

// int64v reads a signed 64-bit integer (nil reads as 0).
func (d *decoder) int64v() (int64, error) {
	if d.peekNil() {
		return 0, nil
	}
	v, neg, err := d.integer()
	if err != nil {
		return 0, err
	}
	if !neg && v > math.MaxInt64 {
		return 0, errIntRange
	}
	return int64(v), nil
}

// strLen reads a string header; bin is accepted too when allowBin is set.
func (d *decoder) strLen(allowBin bool) (uint64, error) {
	c, err := d.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return uint64(c & 0x1f), nil
	case c >= mpStr8 && c <= mpStr32:
		return d.uintN(1 << (c - mpStr8))
	case allowBin && c >= mpBin8 && c <= mpBin32:
		return d.uintN(1 << (c - mpBin8))
	}
	if allowBin {
		return 0, errWantBytes
	}
	return 0, errWantStr
}

// rawStr returns the bytes of a string, aliasing the input.
func (d *decoder) rawStr() ([]byte, error) {
	n, err := d.strLen(false)
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

// str reads a string (nil reads as "").
func (d *decoder) str() (string, error) {
	if d.peekNil() {
		return "", nil
	}
	s, err := d.rawStr()
	return string(s), err
}

// sharedStr is str with the string's bytes copied into keys (see
// KeyChunk) rather than allocated on their own.
func (d *decoder) sharedStr(keys *KeyChunk) (string, error) {
	if d.peekNil() {
		return "", nil
	}
	s, err := d.rawStr()
	if err != nil {
		return "", err
	}
	return keys.String(s), nil
}

// KeyChunk makes strings of short keys, and copies of short values,
// without an allocation each: it copies them into a shared chunk and makes
// the strings and slices point into it (unsafe.String; a value's slice is
// capped at its length, so appending to it reallocates). No byte of a
// chunk is written again once something has been copied there, which is
// what keeps those strings immutable; a full chunk is left to whoever
// still uses it and a new one begun. A key or value that is kept keeps its
// chunk alive, at most 4 KiB, so a chunk suits requests that use them only
// while served (see SharesKey); whoever keeps one for long should keep a
// copy (strings.Clone, bytes.Clone). Anything over 256 bytes gets an
// allocation of its own. The zero value is ready; a KeyChunk must not be
// used by two goroutines at once. A server's read loop keeps one per
// connection, and so does a RESP front end.
type KeyChunk struct{ b []byte }

const (
	keyChunkSize = 4096
	maxChunkKey  = 256
)

// String returns b as a string, in the chunk if it is short.
func (c *KeyChunk) String(b []byte) string {
	if len(b) == 0 || len(b) > maxChunkKey {
		return string(b)
	}
	s := c.copy(b)
	return unsafe.String(&s[0], len(s))
}

// Bytes returns a copy of b, in the chunk if it is short.
func (c *KeyChunk) Bytes(b []byte) []byte {
	if len(b) == 0 || len(b) > maxChunkKey {
		return bytes.Clone(b)
	}
	return c.copy(b)
}

// copy appends b to the chunk, starting a new one if it does not fit, and
// returns where it landed, capped at its length.
func (c *KeyChunk) copy(b []byte) []byte {
	if cap(c.b)-len(c.b) < len(b) {
		c.b = make([]byte, 0, keyChunkSize)
	}
	n := len(c.b)
	c.b = append(c.b, b...)
	return c.b[n:len(c.b):len(c.b)]
}

// SharesKey reports whether a request of op uses its key and value only
// while it is served, so that both may be made with a KeyChunk. That is
// every keyed operation, a replica's copy and a lookup: the store copies
// what it keeps, a write's copies to its replicas are sent within
// ReplicaTimeout, and hints clone the keys they remember. Not OpLoad,
// whose key goes to a loader that may keep it, nor the control operations
// that remember their key.
func (o Op) SharesKey() bool {
	return o.Keyed() || o == OpReplicate || o == OpLookup
}

// sharedBytes is bytes with the copy made in keys (see KeyChunk).
func (d *decoder) sharedBytes(keys *KeyChunk) ([]byte, error) {
	s, err := d.rawBytes()
	if s == nil {
		return nil, err
	}
	return keys.Bytes(s), nil
}

// bytes reads bin or str data (nil reads as nil). The result is a copy
// unless d.alias is set.
func (d *decoder) bytes() ([]byte, error) {
	s, err := d.rawBytes()
	if s == nil || d.alias {
		return s, err
	}
	out := make([]byte, len(s))
	copy(out, s)
	return out, nil
}

// rawBytes reads bin or str data as a slice of the message itself: nil
// for nil, for no bytes, and on error.
func (d *decoder) rawBytes() ([]byte, error) {
	if d.peekNil() {
		return nil, nil
	}
	n, err := d.strLen(true)
	if err != nil {
		return nil, err
	}
	s, err := d.take(n)
	if err != nil || len(s) == 0 {
		return nil, err
	}
	return s, nil
}

// containerLen reads a map (isMap) or array header. Each element takes at
// least one byte, so a count larger than what is left is rejected before
// anyone sizes an allocation by it.
func (d *decoder) containerLen(isMap bool) (int, error) {
	c, err := d.byte1()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case isMap && c >= 0x80 && c <= 0x8f:
		n = uint64(c & 0x0f)
	case isMap && (c == mpMap16 || c == mpMap32):
		n, err = d.uintN(2 << (c - mpMap16))
	case !isMap && c >= 0x90 && c <= 0x9f:
		n = uint64(c & 0x0f)
	case !isMap && (c == mpArray16 || c == mpArray32):
		n, err = d.uintN(2 << (c - mpArray16))
	case isMap:
		return 0, errWantMap
	default:
		return 0, errWantArray
	}
	if err != nil {
		return 0, err
	}
	per := uint64(1)
	if isMap {
		per = 2
	}
	if n > uint64(d.rest())/per {
		return 0, errLenTooLarge
	}
	return int(n), nil
}

// skip steps over one value of any type, for fields this version does not
// know (the schema is append-only, so newer peers may send more).
func (d *decoder) skip(depth int) error {
	if depth > maxSkipDepth {
		return errTooDeep
	}
	c, err := d.byte1()
	if err != nil {
		return err
	}
	var n uint64 // bytes to step over
	switch {
	case c < 0x80 || c >= 0xe0 || c == mpNil || c == mpFalse || c == mpTrue:
		return nil
	case c <= 0x8f, c == mpMap16, c == mpMap32, c <= 0x9f, c == mpArray16, c == mpArray32:
		d.off--
		isMap := c <= 0x8f || c == mpMap16 || c == mpMap32
		cnt, err := d.containerLen(isMap)
		if err != nil {
			return err
		}
		if isMap {
			cnt *= 2
		}
		for range cnt {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case c <= 0xbf:
		n = uint64(c & 0x1f)
	case c >= mpBin8 && c <= mpBin32:
		n, err = d.uintN(1 << (c - mpBin8))
	case c >= mpStr8 && c <= mpStr32:
		n, err = d.uintN(1 << (c - mpStr8))
	case c >= mpExt8 && c <= mpExt32:
		n, err = d.uintN(1 << (c - mpExt8))
		n++ // type byte
	case c == mpFloat32:
		n = 4
	case c == mpFloat64:
		n = 8
	case c >= mpUint8 && c <= mpUint64:
		n = 1 << (c - mpUint8)
	case c >= mpInt8 && c <= mpInt64:
		n = 1 << (c - mpInt8)
	case c >= mpFixExt1 && c <= mpFixExt16:
		n = 1 + 1<<(c-mpFixExt1)
	default: // 0xc1 is never used
		return errBadCode
	}
	if err != nil {
		return err
	}
	_, err = d.take(n)
	return err
}

// decodeRequest decodes b into r, which should be zero. Fields are set as
// they are read, so after an error r.ID may still be usable to answer with
// an error response. alias lets r.Value point into b.
func decodeRequest(b []byte, r *Request, alias bool, keys *KeyChunk) error {
	d := decoder{b: b, alias: alias}
	n, err := d.containerLen(true)
	if err != nil {
		return err
	}
	shared := false      // r.Key points into keys
	sharedValue := false // r.Value may point into keys
	for range n {
		k, err := d.rawStr()
		if err != nil {
			return err
		}
		var v uint64
		switch string(k) { // no allocation: the compiler compares in place
		case "i":
			r.ID, err = d.uintMax(math.MaxUint64)
		case "o":
			v, err = d.uintMax(math.MaxUint8)
			r.Op = Op(v)
		case "f":
			v, err = d.uintMax(math.MaxUint16)
			r.Flags = Flags(v)
		case "k":
			// The op comes first in what Client sends; a key read before
			// it gets an allocation of its own.
			shared = keys != nil && r.Op.SharesKey()
			if shared {
				r.Key, err = d.sharedStr(keys)
			} else {
				r.Key, err = d.str()
			}
		case "v":
			if keys != nil && !alias && r.Op.SharesKey() {
				r.Value, err = d.sharedBytes(keys)
				sharedValue = len(r.Value) > 0 && len(r.Value) <= maxChunkKey
			} else {
				r.Value, err = d.bytes()
			}
		case "t":
			r.TTL, err = d.int64v()
		case "d":
			r.Delta, err = d.int64v()
		case "ver":
			r.Version, err = d.uintMax(math.MaxUint64)
		case "x":
			r.ExpireAt, err = d.int64v()
		case "dl":
			r.Deadline, err = d.int64v()
		default:
			err = d.skip(0)
		}
		if err != nil {
			return err
		}
	}
	if d.rest() != 0 {
		return errTrailing
	}
	if !r.Op.SharesKey() {
		// A message may repeat a field: the op that decided to share the
		// key need not be the op the request ends up with. (A request that
		// fails to decode is only answered with an error, by ID.)
		if shared {
			r.Key = strings.Clone(r.Key)
		}
		if sharedValue {
			r.Value = bytes.Clone(r.Value)
		}
	}
	return nil
}

// decodeResponse decodes b into r, which should be zero.
func decodeResponse(b []byte, r *Response, alias bool) error {
	d := decoder{b: b, alias: alias}
	n, err := d.containerLen(true)
	if err != nil {
		return err
	}
	for range n {
		k, err := d.rawStr()
		if err != nil {
			return err
		}
		var v uint64
		switch string(k) {
		case "i":
			r.ID, err = d.uintMax(math.MaxUint64)
		case "c":
			v, err = d.uintMax(math.MaxUint8)
			r.Code = Code(v)
		case "e":
			r.Err, err = d.str()
		case "v":
			r.Value, err = d.bytes()
		case "t":
			r.TTL, err = d.int64v()
		case "n":
			r.Int, err = d.int64v()
		case "ver":
			r.Version, err = d.uintMax(math.MaxUint64)
		case "rv":
			r.RingVersion, err = d.uintMax(math.MaxUint64)
		case "o":
			r.HasOld, err = d.boolean()
		case "m":
			r.Members, err = d.members()
		case "ks":
			r.Keys, err = d.strs()
		case "st":
			r.Stats, err = d.stats()
		default:
			err = d.skip(0)
		}
		if err != nil {
			return err
		}
	}
	if d.rest() != 0 {
		return errTrailing
	}
	return nil
}

// boolean reads a bool (nil reads as false).
func (d *decoder) boolean() (bool, error) {
	c, err := d.byte1()
	switch {
	case err != nil:
		return false, err
	case c == mpTrue:
		return true, nil
	case c == mpFalse || c == mpNil:
		return false, nil
	}
	return false, errWantBool
}

// stats decodes a Stats map (nil reads as nil).
func (d *decoder) stats() (*Stats, error) {
	if d.peekNil() {
		return nil, nil
	}
	n, err := d.containerLen(true)
	if err != nil {
		return nil, err
	}
	s := new(Stats)
	for range n {
		k, err := d.rawStr()
		if err != nil {
			return nil, err
		}
		var p *int64
		switch string(k) {
		case "e":
			p = &s.Entries
		case "b":
			p = &s.Bytes
		case "m":
			p = &s.MaxMemory
		case "h":
			p = &s.Hits
		case "x":
			p = &s.Misses
		case "v":
			p = &s.Evictions
		case "p":
			p = &s.Expirations
		case "f":
			p = &s.Forwarded
		case "l":
			p = &s.Local
		case "r":
			p = &s.Replicated
		case "a":
			p = &s.FallbackHits
		case "k":
			p = &s.KeysMoved
		case "y":
			p = &s.BytesMoved
		case "d":
			p = &s.HandoffMillis
		case "u":
			p = &s.UnderReplicated
		}
		if p == nil {
			err = d.skip(0)
		} else {
			*p, err = d.int64v()
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// strs decodes a string array (nil reads as nil).
func (d *decoder) strs() ([]string, error) {
	if d.peekNil() {
		return nil, nil
	}
	n, err := d.containerLen(false)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]string, n) // n <= bytes left in the frame
	for i := range out {
		if out[i], err = d.str(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// members decodes a Member array (nil reads as nil).
func (d *decoder) members() ([]Member, error) {
	if d.peekNil() {
		return nil, nil
	}
	n, err := d.containerLen(false)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]Member, n) // n <= bytes left in the frame
	for i := range out {
		m := &out[i]
		if d.peekNil() {
			continue
		}
		fields, err := d.containerLen(true)
		if err != nil {
			return nil, err
		}
		for range fields {
			k, err := d.rawStr()
			if err != nil {
				return nil, err
			}
			switch string(k) {
			case "n":
				m.Name, err = d.str()
			case "g":
				m.GossipAddr, err = d.str()
			case "d":
				m.DataAddr, err = d.str()
			case "s":
				m.State, err = d.str()
			case "r":
				m.RespAddr, err = d.str()
			default:
				err = d.skip(0)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
