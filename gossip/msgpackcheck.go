package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errLength is why checkLengths refuses a message.
var errLength = errors.New("msgpack length past the end of the message")

// maxCheckDepth bounds how deeply checkLengths follows nested arrays and
// maps: metadata and user state nest two levels at most (a future field
// nested deeper than this would be refused).
const maxCheckDepth = 16

// checkLengths walks the msgpack values in b and refuses any string,
// binary, extension, array or map whose declared length runs past the end
// of b (an array or map element takes at least one byte, so a real
// message never declares more elements than it has bytes left). The
// msgpack library sizes what it allocates by the declared length, up to a
// million elements: without this check a dozen hostile bytes from a peer
// cost 16 MB and a millisecond and a half to decode. It returns how many
// bytes the first value took.
func checkLengths(b []byte) (int, error) {
	return checkValue(b, 0, 0)
}

func checkValue(b []byte, off, depth int) (int, error) {
	if depth > maxCheckDepth {
		return 0, fmt.Errorf("%w: nested deeper than %d", errLength, maxCheckDepth)
	}
	if off >= len(b) {
		return 0, errLength
	}
	c := b[off]
	off++
	switch {
	case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		return off, nil
	case c&0xf0 == 0x80: // fixmap
		return checkElems(b, off, 2*uint64(c&0x0f), depth)
	case c&0xf0 == 0x90: // fixarray
		return checkElems(b, off, uint64(c&0x0f), depth)
	case c&0xe0 == 0xa0: // fixstr
		return skip(b, off, uint64(c&0x1f))
	}
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return off, nil
	case 0xc4, 0xd9: // bin8, str8
		n, off, err := length(b, off, 1)
		if err != nil {
			return 0, err
		}
		return skip(b, off, n)
	case 0xc5, 0xda: // bin16, str16
		n, off, err := length(b, off, 2)
		if err != nil {
			return 0, err
		}
		return skip(b, off, n)
	case 0xc6, 0xdb: // bin32, str32
		n, off, err := length(b, off, 4)
		if err != nil {
			return 0, err
		}
		return skip(b, off, n)
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32: length, type, data
		n, off, err := length(b, off, 1<<(c-0xc7))
		if err != nil {
			return 0, err
		}
		return skip(b, off, n+1)
	case 0xcc, 0xd0: // uint8, int8
		return skip(b, off, 1)
	case 0xcd, 0xd1: // uint16, int16
		return skip(b, off, 2)
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return skip(b, off, 4)
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return skip(b, off, 8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type, data
		return skip(b, off, 1+1<<(c-0xd4))
	case 0xdc, 0xde: // array16, map16
		n, off, err := length(b, off, 2)
		if err != nil {
			return 0, err
		}
		return checkElems(b, off, count(c, n), depth)
	case 0xdd, 0xdf: // array32, map32
		n, off, err := length(b, off, 4)
		if err != nil {
			return 0, err
		}
		return checkElems(b, off, count(c, n), depth)
	}
	return 0, fmt.Errorf("%w: byte 0x%02x is not msgpack", errLength, c) // 0xc1
}

// count is how many values an array or map header of n entries holds
// (n < 2^32, so doubling it cannot overflow).
func count(c byte, n uint64) uint64 {
	if c == 0xde || c == 0xdf {
		n *= 2 // a map's keys and values
	}
	return n
}

// checkElems checks the n values from off, after refusing an n larger
// than the bytes left. n is compared as a uint64, before any conversion
// to int, so that no length wraps on a 32-bit platform.
func checkElems(b []byte, off int, n uint64, depth int) (int, error) {
	if n > uint64(len(b)-off) {
		return 0, fmt.Errorf("%w: %d elements in %d bytes", errLength, n, len(b)-off)
	}
	var err error
	for range int(n) {
		if off, err = checkValue(b, off, depth+1); err != nil {
			return 0, err
		}
	}
	return off, nil
}

// length reads a size-byte big-endian length at off.
func length(b []byte, off, size int) (n uint64, next int, err error) {
	if size > len(b)-off {
		return 0, 0, errLength
	}
	switch size {
	case 1:
		n = uint64(b[off])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b[off:]))
	default:
		n = uint64(binary.BigEndian.Uint32(b[off:]))
	}
	return n, off + size, nil
}

// skip steps over n bytes of data, refusing to step past the end.
func skip(b []byte, off int, n uint64) (int, error) {
	if n > uint64(len(b)-off) {
		return 0, fmt.Errorf("%w: %d bytes in %d", errLength, n, len(b)-off)
	}
	return off + int(n), nil
}
