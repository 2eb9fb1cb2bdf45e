// Package transport owns starling's wire: framing, msgpack encoding,
// connection pools, deadlines, and the mapping between response codes and
// sentinel errors. It carries Requests from clients and peers to a node and
// Responses back, and knows nothing of keys' owners, the ring or the store:
// a Handler is how it calls into the node.
//
// # Wire format
//
// Each message on a stream is one frame: a 4-byte big-endian body length, a
// 1-byte kind (request or response; an append-only enum) and a msgpack body
// (a map keyed by the one- or two-letter names in the struct tags of
// message.go). The length is checked against Config.MaxFrameSize before
// anything is allocated; an oversized or malformed frame closes only the
// connection that carried it. Requests carry an ID and replies echo it, so a
// connection carries many requests at once and replies may come back in any
// order.
//
// # Server
//
// Server runs one read goroutine per connection. It decodes each request and
// calls Handler.ServeRequest in arrival order; fast requests are answered
// inline, slow ones from another goroutine. Replies are buffered and written
// in one batch when the read goroutine runs out of buffered input, or at
// once when they come from another goroutine while the read goroutine is
// waiting. A connection stops reading when MaxInflightPerConn requests await
// replies (backpressure), is closed after IdleTimeout without traffic, and
// after WriteTimeout if its peer stops reading.
//
// # Client
//
// Client keeps ConnsPerPeer connections per address, dialled on first use,
// and pipelines concurrent calls over them: each caller encodes its request
// into the connection's buffer and the first one to find no write in
// progress writes everything buffered, so requests that are pending together
// leave in one syscall without a writer goroutine. A read goroutine per
// connection hands replies to their callers.
//
// # Errors
//
// Call and CallBatch return an error only for transport failures; a peer's
// answer, including an application error, is in the Response (see
// Response.Error and CodeOf). Transport failures are typed: ErrUnreachable
// (refused or failed dial, broken connection: fail over to a replica),
// ErrConnLost (the connection broke with the request in flight; also
// ErrUnreachable), ErrTimeout (also context.DeadlineExceeded), ErrClosed and
// ErrFrameTooLarge.
//
// # Testing
//
// Network abstracts dialling and listening. TCPNetwork is the default;
// InmemNetwork connects nodes in one process through pipes and can cut an
// address off (Disconnect) and restore it (Reconnect). The package's own
// tests run one suite against both.
package transport
