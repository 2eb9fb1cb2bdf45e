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
// # Connection set-up: TLS and the cluster secret
//
// With Config.TLS set, every connection is TLS (1.3 with LoadTLS), and with
// ClientAuth tls.RequireAndVerifyClientCert mutual: LoadTLS builds both
// sides from the PEM files behind --tls-cert, --tls-key and --tls-ca.
//
// With Config.Secret set, the client then runs a challenge-response
// handshake before its first request, in frames of kinds of their own:
//
//	client -> server  hello      version 1 | client nonce (32 random bytes)
//	server -> client  challenge  server nonce (32 random bytes)
//	client -> server  proof      HMAC-SHA256(secret, "starling transport auth v1 client" | 0 | cnonce | snonce | binding)
//	server -> client  ok         HMAC-SHA256(secret, "starling transport auth v1 server" | 0 | cnonce | snonce | binding)
//
// binding is empty over plain TCP and 32 bytes of the TLS session's
// exported keying material over TLS. Both sides prove the secret, proofs
// are compared in constant time, fresh nonces make a recorded proof
// useless on another connection, and the secret never crosses the wire.
// Instead of the challenge or the ok, a server that refuses sends a "fail"
// frame with the reason (no or wrong secret, or a hello although it has no
// secret itself) and closes the connection; a client that sent requests
// without a hello gets the same frame in reply. A TLS server answers a
// plaintext client with the same frame, and a plaintext server answers a
// TLS client with a TLS handshake_failure alert, so every mismatch fails at
// once with a reason instead of a timeout. Request and response frames are
// unchanged. The secret authenticates the connection's set-up only: use
// TLS where the network itself cannot be trusted.
//
// Config.HandshakeTimeout bounds both handshakes together, from the
// server's accept; a connection counts against MaxConns from then on.
//
// # Server
//
// Server runs one read goroutine per connection. It decodes each request and
// calls Handler.ServeRequest in arrival order; fast requests are answered
// inline, slow ones from another goroutine. Replies are buffered and written
// in one batch when the read goroutine runs out of buffered input, or at
// once when they come from another goroutine while the read goroutine is
// waiting. A connection stops reading when MaxInflightPerConn requests await
// replies (backpressure), is closed after IdleTimeout without traffic (a
// frame must arrive whole within it: trickling bytes does not reset it),
// and after WriteTimeout if its peer stops reading; meanwhile replies wait
// for the blocked write rather than pile up, so such a peer costs about
// 128 KiB plus one reply. Connections beyond MaxConns are closed as soon as
// they are accepted.
//
// # Client
//
// Client keeps ConnsPerPeer connections per address, dialled on first use,
// and pipelines concurrent calls over them: each caller encodes its request
// into the connection's buffer. On a connection with nothing else in
// flight the caller writes it at once; under load it wakes the
// connection's writer goroutine, which yields once before writing so that
// every caller already runnable appends first: a node forwarding for many
// clients pays one write system call (and its peer one read) for many
// requests. A read goroutine per connection hands replies to their
// callers. Start sends a batch and returns without waiting (Flight.Wait
// collects it, with one wake-up for the whole batch), so a caller with
// batches for several peers sends them all before waiting for any; it
// never blocks on a peer that is still dialling or out of in-flight slots.
// A connection whose buffer is past its high-water mark (a peer that reads
// slowly or not at all) makes callers wait for room before they add to
// it, Start included, but never past the caller's deadline or context;
// one that gives up adds nothing more (a call fails with ErrNotSent, and
// a flight's Sent counts only what it added).
//
// # Errors
//
// Call, CallBatch and Flight.Wait return an error only for transport failures; a peer's
// answer, including an application error, is in the Response (see
// Response.Error and CodeOf). Transport failures are typed: ErrUnreachable
// (refused or failed dial, broken connection: fail over to a replica),
// ErrConnLost (the connection broke with the request in flight; also
// ErrUnreachable), ErrTimeout (also context.DeadlineExceeded), ErrClosed,
// ErrFrameTooLarge and ErrAuth. Any of them may also be ErrNotSent: the
// failure came before the request was handed to a connection, so the peer
// never saw it, and a caller may send even a request that must not be
// applied twice elsewhere (a flight's Sent says how many of its requests
// were handed over). Without ErrNotSent a timed-out or lost request may
// have been applied.
//
// ErrAuth (a refused or failed TLS or secret handshake, or a TLS/plaintext
// mismatch) is deliberately not ErrUnreachable: the peer is up, no
// request was applied, and failing over or marking the peer down would
// hide a misconfiguration that every replica is likely to share. I/O
// failures during a handshake (the peer hung up or stalled, or refused the
// connection over MaxConns) remain ErrUnreachable.
//
// # Testing
//
// Network abstracts dialling and listening. TCPNetwork is the default;
// InmemNetwork connects nodes in one process through pipes and can cut an
// address off (Disconnect) and restore it (Reconnect). The package's own
// tests run one suite against both.
package transport
