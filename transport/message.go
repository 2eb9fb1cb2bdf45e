package transport

import (
	"errors"
	"fmt"
)

// Op says what a Request asks for. The values are part of the wire format:
// append new ones at the end, never renumber.
type Op uint8

// Operations understood by nodes. Later protocol versions append to this list.
const (
	// OpPing checks that a peer is alive and speaking the protocol.
	OpPing Op = iota + 1
	// OpGet reads Key; the reply carries Value and the remaining TTL.
	OpGet
	// OpSet stores Value under Key for TTL milliseconds (0: no expiry).
	OpSet
	// OpDelete removes Key; the reply's Code is CodeNotFound if it was absent.
	OpDelete
	// OpMembers asks a node for the members it currently sees.
	OpMembers
	// OpGetDel reads Key and deletes it in one step.
	OpGetDel
	// OpExpire sets Key's TTL to TTL milliseconds from now; with
	// FlagPersist it removes the expiry instead. Int is 1 if the key exists.
	OpExpire
	// OpTTL reports Key's remaining TTL (0: no expiry); CodeNotFound if absent.
	OpTTL
	// OpIncr adds Delta to the 64-bit integer stored at Key (absent: 0) and
	// returns the result in Int.
	OpIncr
	// OpAppend appends Value to Key (creating it) and returns the new length
	// in Int.
	OpAppend
	// OpExists reports in Int whether Key exists (1 or 0).
	OpExists
	// OpGetEx reads Key and, with TTL > 0 or FlagPersist, changes its expiry.
	OpGetEx
	// OpDBSize reports the number of keys held by the receiving node alone
	// in Int; cluster-wide counts are summed by the caller. With Delta 1 it
	// also reports how many of them have an expiry in Version, and their
	// average remaining time to live, in milliseconds, in TTL (INFO's
	// keyspace line; -1 if the receiver could not estimate it).
	OpDBSize
	// OpFlushAll removes every key held by the receiving node alone.
	OpFlushAll
	// OpStats returns the receiving node's counters in Stats.
	OpStats
	// OpReplicate applies one key's full state (Value or, with
	// FlagTombstone, a deletion; ExpireAt; Version) if Version is newer than
	// what the receiver holds. Replication, hinted hand-off and rebalancing
	// all move data with it. Int is 1 if the entry was applied.
	OpReplicate
	// OpLeave asks the receiving node to hand off its keys, leave the
	// cluster and stop, as on SIGTERM. The reply comes before it stops.
	OpLeave
	// OpLookup reads Key's full state from the receiver's own store,
	// tombstones included: Value, TTL and Version, with Int 1 for a
	// tombstone; CodeNotFound if it holds nothing. A new owner fetching a
	// key mid-hand-off uses it, so it can tell "deleted" from "absent".
	OpLookup
	// OpLoad reads Key through a read-through group: Value holds the
	// group's name. On a miss the node owning Key calls the group's loader
	// once, however many callers wait for it, and stores the result. A
	// node that does not host the group forwards the load to one that
	// does.
	OpLoad
	// OpHandoffDone tells a member that the sender (Key) has finished
	// handing over its keys for the ring change from ring version Delta
	// (as uint64) to Version, so the receiver need not ask the sender for
	// keys it misses any more.
	OpHandoffDone
	// OpScan lists some of the keys the receiving node is the primary
	// owner of, resuming a walk of its store: Version is the walk's cursor
	// (0 starts one), Delta about how many index slots to visit (more
	// where the receiver's index is sparse: Delta/2 keys' worth), and Key
	// a Redis glob pattern the keys must match ("*": every key). The
	// reply's Keys are the keys found and its Version where to resume (0:
	// the walk is done). A key the receiver holds and owns for the whole
	// walk is listed at least once; it may be listed twice.
	OpScan
	// OpIncrFloat adds Value, a decimal floating-point number, to the
	// number stored at Key (absent: 0), keeping its expiry, and returns the
	// new value's text in Value, as Redis's INCRBYFLOAT does (CodeNotFloat
	// if either is not a number, CodeNotFinite if the sum is not finite).
	OpIncrFloat
)

// ScanCursorBits is how many low bits an OpScan cursor uses. A walk over
// every member (SCAN) visits the members in their ring's (sorted) order
// and keeps the member's position in the bits above, so that nodes and
// clients continue one another's walks.
const ScanCursorBits = 54

// MaxScanMembers is the largest cluster a walk's cursor can name every
// member of.
const MaxScanMembers = 1 << (64 - ScanCursorBits)

// SplitScanCursor splits a walk's cursor into the position of the member
// whose turn it is and that member's own OpScan cursor.
func SplitScanCursor(cursor uint64) (member uint64, own uint64) {
	return cursor >> ScanCursorBits, cursor & (1<<ScanCursorBits - 1)
}

// NextScanCursor is a walk's cursor after a step at member, of members,
// whose reply carried own (0: that member's walk is done): 0 once the last
// member is done.
func NextScanCursor(member uint64, members int, own uint64) uint64 {
	switch {
	case own != 0:
		return member<<ScanCursorBits | own&(1<<ScanCursorBits-1)
	case member+1 < uint64(members):
		return (member + 1) << ScanCursorBits
	}
	return 0
}

// String returns the operation's name, for logs and errors.
func (o Op) String() string {
	switch o {
	case OpPing:
		return "ping"
	case OpGet:
		return "get"
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpMembers:
		return "members"
	case OpGetDel:
		return "getdel"
	case OpExpire:
		return "expire"
	case OpTTL:
		return "ttl"
	case OpIncr:
		return "incr"
	case OpAppend:
		return "append"
	case OpExists:
		return "exists"
	case OpGetEx:
		return "getex"
	case OpDBSize:
		return "dbsize"
	case OpFlushAll:
		return "flushall"
	case OpStats:
		return "stats"
	case OpReplicate:
		return "replicate"
	case OpLeave:
		return "leave"
	case OpLookup:
		return "lookup"
	case OpLoad:
		return "load"
	case OpHandoffDone:
		return "handoffdone"
	case OpScan:
		return "scan"
	case OpIncrFloat:
		return "incrbyfloat"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Keyed reports whether the operation acts on one Key, and so is routed to
// that key's owners. Nodes and smart clients route by it.
func (o Op) Keyed() bool {
	switch o {
	case OpGet, OpSet, OpDelete, OpGetDel, OpExpire, OpTTL, OpIncr, OpAppend, OpExists, OpGetEx, OpIncrFloat:
		return true
	}
	return false
}

// ReadOnly reports whether the operation changes nothing, so that it may
// be sent to another replica whatever became of an earlier attempt.
func (o Op) ReadOnly() bool {
	switch o {
	case OpGet, OpTTL, OpExists, OpPing, OpMembers, OpStats, OpDBSize, OpScan:
		return true
	}
	return false
}

// Repeatable reports whether r may be sent again, to another replica,
// after an attempt whose outcome is unknown (it timed out, or its
// connection broke once it had been handed over): the first owner may
// have applied it, or may still, if it reads it within its deadline and
// the allowed clock skew. A read may; so may a plain SET, DEL, EXPIRE or
// GETEX, which leave the same state applied once or twice (last writer
// wins; a repeated DEL whose first copy was applied answers "not found",
// but leaves the key deleted, as asked). An INCR, INCRBYFLOAT, APPEND,
// GETDEL or a conditional or value-returning SET may not: it could count
// twice or hand back a value that is gone, so it goes elsewhere only if
// it never reached a peer at all (see Unreached). Nodes and smart clients
// both decide by it.
func (r *Request) Repeatable() bool {
	switch r.Op {
	case OpSet:
		return r.Flags&(FlagIfAbsent|FlagIfPresent|FlagGetOld) == 0
	case OpDelete, OpExpire, OpGetEx:
		return true
	}
	return r.Op.ReadOnly()
}

// Flags modify how a node treats a Request.
type Flags uint16

const (
	// FlagForwarded marks a request that one node has already routed to
	// another. The receiver serves it locally whatever its own ring says, so
	// two nodes whose rings briefly disagree can never forward in a loop.
	FlagForwarded Flags = 1 << iota
	// FlagIfAbsent makes OpSet store only if the key does not exist (NX).
	FlagIfAbsent
	// FlagIfPresent makes OpSet store only if the key exists (XX).
	FlagIfPresent
	// FlagKeepTTL makes OpSet keep the key's current expiry.
	FlagKeepTTL
	// FlagGetOld makes OpSet return the previous value (SET ... GET).
	FlagGetOld
	// FlagPersist makes OpExpire and OpGetEx remove the key's expiry.
	FlagPersist
	// FlagTombstone marks an OpReplicate that carries a deletion.
	FlagTombstone
	// FlagLocalOnly asks the receiver to answer from its own store with no
	// further routing or fallback: a new owner asking a previous owner for a
	// key it has not received yet.
	FlagLocalOnly
	// FlagRerouted marks a forwarded request that its receiver, no longer
	// the owner in its own ring, sent on once more. A rerouted request is
	// always served where it lands, so a request makes at most two hops.
	FlagRerouted
)

// Request is one call from a client or peer to a node. Field tags are short
// because every byte is paid on every request.
//
// Adding a field to Request, Response, Member or Stats? Teach codec.go too:
// the wire codec is hand-written, and TestCodecCoversEveryField fails until
// the new field round-trips.
type Request struct {
	// ID pairs the request with its Response on a multiplexed connection.
	// The transport client assigns it; callers leave it zero.
	ID    uint64 `msgpack:"i"`
	Op    Op     `msgpack:"o"`
	Flags Flags  `msgpack:"f,omitempty"`
	Key   string `msgpack:"k,omitempty"`
	Value []byte `msgpack:"v,omitempty"`
	// TTL is in milliseconds; 0 means the entry never expires.
	TTL int64 `msgpack:"t,omitempty"`
	// Delta is the increment of OpIncr.
	Delta int64 `msgpack:"d,omitempty"`
	// Version orders writes cluster-wide (see node/hlc); set on OpReplicate.
	Version uint64 `msgpack:"ver,omitempty"`
	// ExpireAt is an absolute expiry in Unix nanoseconds (0: none), used by
	// OpReplicate so every copy expires at the same instant.
	ExpireAt int64 `msgpack:"x,omitempty"`
	// Deadline is when the sender stops waiting for the reply, in Unix
	// milliseconds; 0 means none. Client sets it on every call. A server
	// that reads the request after it (plus Config.MaxClockSkew) refuses it
	// unexecuted: the sender has given up and may have retried elsewhere,
	// so applying a write now — say on a node that was stopped with the
	// request in its socket buffer — could overwrite newer data.
	Deadline int64 `msgpack:"dl,omitempty"`
}

// Code is a response's outcome. The values are part of the wire format:
// append only.
type Code uint8

// Response codes. Each non-OK code maps to one sentinel error below.
const (
	CodeOK Code = iota
	CodeNotFound
	CodeBadRequest
	CodeTooLarge
	CodeUnknownOp
	CodeUnavailable
	CodeInternal
	// CodeNotInteger: OpIncr on a value that is not a 64-bit integer.
	CodeNotInteger
	// CodeOverflow: OpIncr whose result would overflow 64 bits.
	CodeOverflow
	// CodeNotFloat: OpIncrFloat on a value, or with an increment, that is
	// not a floating-point number.
	CodeNotFloat
	// CodeNotFinite: OpIncrFloat whose result would be infinite or NaN.
	CodeNotFinite
)

// Member describes one cluster member as a node sees it.
type Member struct {
	Name       string `msgpack:"n" json:"name"`
	GossipAddr string `msgpack:"g" json:"gossip_addr"`
	DataAddr   string `msgpack:"d" json:"data_addr"`
	State      string `msgpack:"s" json:"state"`
	RespAddr   string `msgpack:"r,omitempty" json:"resp_addr,omitempty"`
}

// Stats are one node's counters, as reported by OpStats.
type Stats struct {
	Entries     int64 `msgpack:"e" json:"entries"`
	Bytes       int64 `msgpack:"b" json:"bytes"`
	MaxMemory   int64 `msgpack:"m" json:"max_memory"`
	Hits        int64 `msgpack:"h" json:"hits"`
	Misses      int64 `msgpack:"x" json:"misses"`
	Evictions   int64 `msgpack:"v" json:"evictions"`
	Expirations int64 `msgpack:"p" json:"expirations"`
	Forwarded   int64 `msgpack:"f" json:"forwarded"`
	Local       int64 `msgpack:"l" json:"local"`
	// Replication and rebalancing (see node/rebalance.go).
	Replicated      int64 `msgpack:"r" json:"replicated"`
	FallbackHits    int64 `msgpack:"a" json:"fallback_hits"`
	KeysMoved       int64 `msgpack:"k" json:"keys_moved"`
	BytesMoved      int64 `msgpack:"y" json:"bytes_moved"`
	HandoffMillis   int64 `msgpack:"d" json:"last_handoff_ms"`
	UnderReplicated int64 `msgpack:"u" json:"under_replicated"`
}

// Response answers one Request.
type Response struct {
	// ID equals the ID of the Request this answers.
	ID   uint64 `msgpack:"i"`
	Code Code   `msgpack:"c,omitempty"`
	// Err carries a human-readable explanation for a non-OK Code.
	Err   string `msgpack:"e,omitempty"`
	Value []byte `msgpack:"v,omitempty"`
	// TTL is the remaining time to live in milliseconds (0: no expiry).
	TTL int64 `msgpack:"t,omitempty"`
	// Int carries numeric results: OpIncr's new value, OpAppend's length,
	// OpDBSize's count, 1/0 for OpExists, OpExpire and a conditional OpSet.
	Int int64 `msgpack:"n,omitempty"`
	// Version is the version of the entry read or written.
	Version uint64 `msgpack:"ver,omitempty"`
	// RingVersion is the replying node's ring version (ring.Version): a
	// smart client that routes by its own copy of the ring refreshes it
	// when this differs from the version it holds.
	RingVersion uint64 `msgpack:"rv,omitempty"`
	// HasOld says Value holds the previous value of an OpSet with FlagGetOld.
	HasOld  bool     `msgpack:"o,omitempty"`
	Members []Member `msgpack:"m,omitempty"`
	// Keys are the keys an OpScan found.
	Keys  []string `msgpack:"ks,omitempty"`
	Stats *Stats   `msgpack:"st,omitempty"`
}

// Errors a Response can carry, so callers can branch with errors.Is whether
// the failure happened on this node or on a peer.
var (
	// ErrNotFound reports that a key does not exist (or has expired).
	ErrNotFound = errors.New("not found")
	// ErrBadRequest reports a request the node could not make sense of.
	ErrBadRequest = errors.New("bad request")
	// ErrTooLarge reports a key, value or frame over the configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnknownOp reports an operation this node does not implement.
	ErrUnknownOp = errors.New("unknown operation")
	// ErrUnavailable reports that the node that owns a key could not be reached.
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal reports a failure inside the node.
	ErrInternal = errors.New("internal error")
	// ErrNotInteger reports arithmetic on a value that is not an integer.
	ErrNotInteger = errors.New("value is not an integer or out of range")
	// ErrOverflow reports arithmetic whose result would overflow.
	ErrOverflow = errors.New("increment or decrement would overflow")
	// ErrNotFloat reports floating-point arithmetic on a value, or with an
	// increment, that is not a number.
	ErrNotFloat = errors.New("value is not a valid float")
	// ErrNotFinite reports floating-point arithmetic whose result would be
	// infinite or NaN.
	ErrNotFinite = errors.New("increment would produce NaN or Infinity")
)

var codeErrors = [...]error{
	CodeNotFound:    ErrNotFound,
	CodeBadRequest:  ErrBadRequest,
	CodeTooLarge:    ErrTooLarge,
	CodeUnknownOp:   ErrUnknownOp,
	CodeUnavailable: ErrUnavailable,
	CodeInternal:    ErrInternal,
	CodeNotInteger:  ErrNotInteger,
	CodeOverflow:    ErrOverflow,
	CodeNotFloat:    ErrNotFloat,
	CodeNotFinite:   ErrNotFinite,
}

// Error returns nil for CodeOK and otherwise the code's sentinel error,
// wrapped with the explanation the node sent.
func (r *Response) Error() error {
	if r.Code == CodeOK {
		return nil
	}
	var base error = ErrInternal
	if int(r.Code) < len(codeErrors) && codeErrors[r.Code] != nil {
		base = codeErrors[r.Code]
	}
	if r.Err == "" || r.Err == base.Error() {
		return base
	}
	return &remoteError{base: base, msg: r.Err}
}

// remoteError is an error a node sent: its text as sent, matching its
// sentinel under errors.Is.
type remoteError struct {
	base error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.base }

// CodeOf maps an error to the Code that carries it over the wire, so a
// handler can answer with whatever error its store or peer returned.
func CodeOf(err error) Code {
	switch {
	case err == nil:
		return CodeOK
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrBadRequest):
		return CodeBadRequest
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrUnknownOp):
		return CodeUnknownOp
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, ErrNotInteger):
		return CodeNotInteger
	case errors.Is(err, ErrOverflow):
		return CodeOverflow
	case errors.Is(err, ErrNotFloat):
		return CodeNotFloat
	case errors.Is(err, ErrNotFinite):
		return CodeNotFinite
	}
	return CodeInternal
}
