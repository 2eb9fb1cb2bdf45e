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
)

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
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Flags modify how a node treats a Request.
type Flags uint8

const (
	// FlagForwarded marks a request that one node has already routed to
	// another. The receiver serves it locally whatever its own ring says, so
	// two nodes whose rings briefly disagree can never forward in a loop.
	FlagForwarded Flags = 1 << iota
)

// Request is one call from a client or peer to a node. Field tags are short
// because every byte is paid on every request.
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
)

// Member describes one cluster member as a node sees it.
type Member struct {
	Name       string `msgpack:"n"`
	GossipAddr string `msgpack:"g"`
	DataAddr   string `msgpack:"d"`
	State      string `msgpack:"s"`
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
	TTL     int64    `msgpack:"t,omitempty"`
	Members []Member `msgpack:"m,omitempty"`
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
)

var codeErrors = [...]error{
	CodeNotFound:    ErrNotFound,
	CodeBadRequest:  ErrBadRequest,
	CodeTooLarge:    ErrTooLarge,
	CodeUnknownOp:   ErrUnknownOp,
	CodeUnavailable: ErrUnavailable,
	CodeInternal:    ErrInternal,
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
	return fmt.Errorf("%w: %s", base, r.Err)
}

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
	}
	return CodeInternal
}
