package gossip

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"strconv"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// MetaMaxSize is the largest encoded Meta memberlist accepts. memberlist
// panics on larger metadata instead of returning an error, so every encode
// is checked against it before the bytes are handed over.
const MetaMaxSize = memberlist.MetaMaxSize

// Meta is what a node publishes about itself to every other member, so that
// they can reach its services without asking it. It travels in memberlist's
// node metadata, msgpack-encoded with one-letter keys; unknown keys are
// ignored on decode, so fields can be added without breaking older nodes.
type Meta struct {
	// DataAddr is the host:port of the node's msgpack transport. A member
	// without one does not serve data (or published metadata that could not
	// be decoded) and must be left out of the ring.
	DataAddr string
	// RespAddr is the host:port of the node's RESP listener, "" if none.
	RespAddr string
	// HTTPAddr is the host:port of the node's HTTP listener, "" if none.
	HTTPAddr string
	// Proto is the node's data protocol version.
	Proto uint8
	// Boot identifies one run of the node's process (random at start).
	// A member whose Boot changed was restarted, even if gossip never saw
	// it leave: it has lost its memory and must be sent its keys again.
	Boot uint64
	// Groups names the read-through groups whose loaders run on this node,
	// so a node without a group's loader can send loads to one that has it.
	// Names count against MetaMaxSize.
	Groups []string
}

// wireMeta is the encoded form of Meta. It carries, besides the public
// fields, the leaving flag a node raises before a graceful leave: memberlist
// v0.7.0 does not tell an event delegate whether a departed node left or
// failed (Node.State is never filled in), so the flag in the node's last
// metadata is how the others tell the two apart.
type wireMeta struct {
	DataAddr string   `msgpack:"d,omitempty"`
	RespAddr string   `msgpack:"r,omitempty"`
	HTTPAddr string   `msgpack:"h,omitempty"`
	Proto    int64    `msgpack:"p,omitempty"` // wider than uint8, so out-of-range values are caught, not wrapped
	Leaving  bool     `msgpack:"l,omitempty"`
	Boot     uint64   `msgpack:"b,omitempty"`
	Groups   []string `msgpack:"g,omitempty"`
}

// validate checks that every address present is a host:port with a usable
// port, so a member's metadata is either usable or rejected whole.
func (m Meta) validate() error {
	for _, f := range []struct{ name, addr string }{
		{"DataAddr", m.DataAddr},
		{"RespAddr", m.RespAddr},
		{"HTTPAddr", m.HTTPAddr},
	} {
		if f.addr == "" {
			continue
		}
		if err := checkHostPort(f.addr, false); err != nil {
			return fmt.Errorf("%s %q: %w", f.name, f.addr, err)
		}
	}
	return nil
}

// encodeMeta encodes m (with the leaving flag) for memberlist. The size is
// checked with the flag raised whatever leaving says, so a Meta accepted now
// still fits when Leave raises the flag.
func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	w := wireMeta{
		DataAddr: m.DataAddr,
		RespAddr: m.RespAddr,
		HTTPAddr: m.HTTPAddr,
		Proto:    int64(m.Proto),
		Leaving:  true,
		Boot:     m.Boot,
		Groups:   m.Groups,
	}
	b, err := marshalWire(&w)
	if err != nil {
		return nil, err
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrMetaTooLarge, len(b), MetaMaxSize)
	}
	if leaving {
		return b, nil
	}
	w.Leaving = false
	return marshalWire(&w)
}

// marshalWire encodes w with the smallest integer encodings.
func marshalWire(w *wireMeta) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	return buf.Bytes(), nil
}

// decodeMeta decodes metadata received from the network. Empty input (a
// node that publishes nothing) is the zero Meta. Anything that is not one
// well-formed msgpack map with valid addresses is ErrBadMeta; it never
// panics, whatever the input. Input over MetaMaxSize, which no well-behaved
// memberlist node can publish, is refused before decoding: it bounds the
// decoder's work and its recursion depth on nested unknown fields.
func decodeMeta(b []byte) (Meta, bool, error) {
	if len(b) == 0 {
		return Meta{}, false, nil
	}
	if len(b) > MetaMaxSize {
		return Meta{}, false, fmt.Errorf("%w: %d bytes, limit %d", ErrBadMeta, len(b), MetaMaxSize)
	}
	if _, err := checkLengths(b); err != nil {
		return Meta{}, false, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	var w wireMeta
	if err := dec.Decode(&w); err != nil {
		return Meta{}, false, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	if r.Len() != 0 {
		return Meta{}, false, fmt.Errorf("%w: %d trailing bytes", ErrBadMeta, r.Len())
	}
	if w.Proto < 0 || w.Proto > math.MaxUint8 {
		return Meta{}, false, fmt.Errorf("%w: protocol version %d out of range", ErrBadMeta, w.Proto)
	}
	if len(w.Groups) == 0 {
		// An empty list and no list mean the same. Decoding both to nil
		// makes a decoded Meta re-encode to the bytes it would have come
		// from and compare equal to one built with no groups.
		w.Groups = nil
	}
	m := Meta{DataAddr: w.DataAddr, RespAddr: w.RespAddr, HTTPAddr: w.HTTPAddr, Proto: uint8(w.Proto), Boot: w.Boot, Groups: w.Groups}
	if err := m.validate(); err != nil {
		return Meta{}, false, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	return m, w.Leaving, nil
}

// checkHostPort reports whether s is host:port with a non-empty host and a
// numeric port (1-65535, or 0 as well when allowZero).
func checkHostPort(s string, allowZero bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("missing host")
	}
	_, err = parsePort(port, allowZero)
	return err
}

// parsePort parses a decimal port number.
func parsePort(s string, allowZero bool) (int, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	if p == 0 && !allowZero {
		return 0, fmt.Errorf("port 0 is not a reachable port")
	}
	return int(p), nil
}
