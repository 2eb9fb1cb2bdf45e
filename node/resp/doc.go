// Package resp is starling's Redis front end: a RESP2 server (RESP3 after
// HELLO 3) that turns Redis commands into transport.Requests, hands them to
// a Backend (the node, which serves each locally or forwards it to the
// key's owner) and writes Redis-compatible replies. Every Redis client,
// redis-cli and redis-benchmark work against any node.
//
// Pipelining is the fast path. A connection parses every complete command
// already in its read buffer, translates them all into one batch of
// requests (a multi-key command such as MGET, MSET, DEL or EXISTS becomes
// one request per key, reassembled in the caller's order), calls
// Backend.Do once for the batch, writes the replies in order and flushes
// only when no further complete command is buffered. The Backend sends the
// requests for each owner in one round trip, owners in parallel.
//
// Multi-key commands are not atomic across owners. MSET may leave some
// pairs written if an owner fails; MSETNX checks that no key exists and
// then sets each key only if it is still absent, so it never overwrites a
// key, but a concurrent writer can make it report 0 after setting some of
// its keys. EXPIRE's NX, XX, GT and LT options read the TTL and then set it,
// not atomically. DBSIZE, FLUSHALL and INFO's keyspace go to every member;
// SCAN and KEYS walk the members in turn (Backend.Scan), each listing the
// keys it is the primary owner of, matched on that member.
//
// Replies are written by the connection's goroutine while the client keeps
// up. A client that sends a long pipeline before reading anything would
// otherwise deadlock against a server blocked on writing replies, so a
// write that does not complete quickly hands the output to a writer
// goroutine and the connection keeps reading, buffering up to
// Config.MaxReplyBuffer of replies, as Redis buffers them.
//
// The parser is written for this package rather than taken from a RESP
// library (tidwall/redcon was measured against it with redis-benchmark and
// was slower with pipelining): it enforces Redis's limits before allocating
// (bulk and multibulk lengths, line lengths, a query buffer bound, tighter
// limits before AUTH), parses a command that arrives in pieces
// incrementally, and hands out arguments that alias its buffer, so that a
// pipelined batch is translated without per-command allocations (keys
// share chunks: transport.KeyChunk).
//
// Connections are cheap while idle: one that has no command in hand gives
// its read and write buffers back to pools shared by the server and waits
// for its socket to become readable without a buffer, so an idle client
// costs about 6 KiB, mostly its goroutine. Hostile clients are bounded:
// besides Redis's limits, Config.CommandTimeout disconnects a client that
// takes too long to send one command (a slowloris, which IdleTimeout never
// catches), Config.HandshakeTimeout one that never completes a TLS
// handshake (Config.TLS), and MaxReplyBuffer stops reading from one that
// does not read its replies.
package resp
