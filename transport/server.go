package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler serves requests arriving on server connections. node.Node is the
// real one; it is how the transport calls into the layer that knows keys.
type Handler interface {
	// ServeRequest is called on the connection's read goroutine, one
	// request at a time, in arrival order. The handler must call w.Reply
	// exactly once for req: before returning for fast operations (no
	// goroutine hand-off), or later from another goroutine for a request
	// that must wait on another node, so that it does not stall the
	// connection. req belongs to the handler after the call; the Key and
	// a short Value of a keyed request (see Op.SharesKey) share memory
	// with other requests' (KeyChunk), so a handler that keeps either for
	// long should keep a copy (strings.Clone, bytes.Clone). ctx is
	// cancelled when the connection closes or the server is stopped
	// forcibly; a handler waiting on something else should give up then.
	ServeRequest(ctx context.Context, req *Request, w ResponseWriter)
}

// BatchHandler is a Handler that can also take several requests at once.
// The server calls ServeBatch, instead of ServeRequest for each, with every
// request it decoded from one read of a connection (a peer's pipelined or
// batched requests), so the handler can group the work they cause — a
// node replicates a forwarded batch's writes in one round trip per
// replica. The rules of ServeRequest apply to each request: Reply exactly
// once, inline or later. The slice is only valid during the call; the
// requests in it belong to the handler.
type BatchHandler interface {
	Handler
	ServeBatch(ctx context.Context, reqs []*Request, w ResponseWriter)
}

// maxServeBatch bounds how many requests one ServeBatch call gets.
const maxServeBatch = 256

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, req *Request, w ResponseWriter)

// ServeRequest calls f.
func (f HandlerFunc) ServeRequest(ctx context.Context, req *Request, w ResponseWriter) {
	f(ctx, req, w)
}

// ResponseWriter sends replies on the connection a request came from. It is
// the connection itself, so passing it costs no allocation; it is safe for
// concurrent use and may be kept until the reply is sent.
type ResponseWriter interface {
	// Reply sends resp. The handler must set resp.ID = req.ID first: the
	// client pairs replies with requests by ID. resp is encoded before
	// Reply returns, so the caller may reuse it afterwards. A reply larger
	// than Config.MaxFrameSize is replaced by a CodeTooLarge error. Reply
	// never fails: if the connection is gone, the reply is dropped. Reply
	// called from the read goroutine only buffers; the read loop writes
	// the batch when it runs out of buffered requests. Called from another
	// goroutine, it writes at once (together with whatever else is
	// pending), blocking for at most Config.WriteTimeout.
	Reply(resp *Response)
	// ReplyAll is Reply for each of resps, in order, with one write for
	// all of them: a handler answering a batch from another goroutine
	// costs the connection one system call, not one per reply.
	ReplyAll(resps []*Response)
}

// Server accepts connections and feeds the requests on them to a Handler.
// Create it with NewServer, start it with Serve, stop it with Shutdown or
// Close.
type Server struct {
	cfg     Config
	handler Handler
	log     *slog.Logger
	// baseCtx is the parent of every connection's context; killing the
	// server cancels it.
	baseCtx context.Context
	kill    context.CancelFunc
	expired atomic.Int64  // requests refused as read after their deadline
	warned  atomic.Int64  // when expired requests were last logged, Unix ns
	quit    chan struct{} // closed when shutdown begins
	done    chan struct{} // closed when every goroutine has exited after shutdown
	wg      sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	addr      net.Addr
	shutdown  bool
}

// NewServer returns a Server that passes requests to h. It does not listen
// yet: see Serve and ListenAndServe.
func NewServer(cfg Config, h Handler) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil Handler", ErrInvalidConfig)
	}
	if !validServerTLS(cfg.TLS) {
		return nil, fmt.Errorf("%w: TLS config without a certificate", ErrInvalidConfig)
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	ctx, kill := context.WithCancel(context.Background())
	return &Server{
		cfg:       cfg,
		handler:   h,
		log:       cfg.logger().With("component", "transport-server"),
		baseCtx:   ctx,
		kill:      kill,
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*serverConn]struct{}),
	}, nil
}

// ListenAndServe listens on addr through Config.Network and serves it; see
// Serve.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := s.cfg.network().Listen(addr)
	if err != nil {
		return fmt.Errorf("transport: listen on %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln, each served by its own goroutine, until
// Shutdown or Close, and then returns ErrServerClosed. It closes ln when it
// returns. It may be called for several listeners.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	if s.addr == nil {
		s.addr = ln.Addr()
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer ln.Close()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-s.quit:
				return ErrServerClosed
			default:
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("transport: accept on %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors and the like: wait and retry,
			// rather than spin or give up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		if len(s.conns) >= s.cfg.MaxConns {
			s.mu.Unlock()
			s.log.Warn("connection refused: too many connections", "remote", conn.RemoteAddr(), "max", s.cfg.MaxConns)
			conn.Close()
			continue
		}
		c := newServerConn(s, conn)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func temporaryAcceptError(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	return isTimeout(err) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// Addr returns the address of the first listener passed to Serve, or nil
// before Serve has been called.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops the server gracefully: it closes the listeners, stops
// reading new requests, lets the requests already read finish and their
// replies go out, then closes the connections. If ctx ends first it closes
// every connection at once (cancelling the handlers' contexts) and returns
// ctx's error without waiting further. It is safe to call more than once,
// and concurrently with Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.forceClose()
		return ctx.Err()
	}
}

// Close stops the server at once: listeners and connections are closed,
// pending replies dropped, handlers' contexts cancelled. It waits for the
// server's goroutines to exit (a handler blocking the read goroutine
// delays that, which Handler's contract forbids).
func (s *Server) Close() error {
	s.beginShutdown()
	s.forceClose()
	<-s.done
	return nil
}

func (s *Server) beginShutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return
	}
	s.shutdown = true
	close(s.quit)
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.stopReading()
	}
	go func() {
		s.wg.Wait()
		close(s.done)
	}()
}

func (s *Server) forceClose() {
	s.kill()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.raw.Close()
	}
}

func (s *Server) removeConn(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// serverConn is one accepted connection. Its read goroutine runs the
// handshakes, then decodes requests and calls the handler; replies are
// written by whoever produces them (see outbuf), batched.
type serverConn struct {
	srv *Server
	// raw is the accepted connection and conn what requests travel on:
	// raw itself, or a TLS connection over it. Deadlines are set and the
	// connection closed on raw: closing a TLS connection could block
	// sending an alert to a peer that does not read.
	raw     net.Conn
	conn    net.Conn
	fr      *frameReader
	ctx     context.Context
	cancel  context.CancelFunc
	maxBody int
	maxInfl int32
	log     *slog.Logger

	// inflight counts requests handed to the handler and not yet replied.
	inflight atomic.Int32
	// draining is set when the read loop has stopped and waits for
	// inflight to reach zero; Reply then signals wake at zero.
	draining atomic.Bool
	// wake is signalled when inflight drops below the limit (or to zero
	// while draining).
	wake chan struct{}
	// blocked is set while the read loop waits for a free slot (tests).
	blocked atomic.Bool
	// stop is closed by Shutdown: read no more requests.
	stop chan struct{}

	// rmu orders the read loop's deadline updates against stopReading, so
	// a stop can never be undone by a deadline set just after it.
	rmu      sync.Mutex
	stopping bool

	// mu guards the write side.
	mu  sync.Mutex
	out outbuf
	// inBatch is set while the read loop is working through buffered
	// requests; replies made meanwhile are left for it to flush.
	inBatch bool
	closed  bool
}

func newServerConn(s *Server, raw net.Conn) *serverConn {
	ctx, cancel := context.WithCancel(s.baseCtx)
	conn := raw
	if s.cfg.TLS != nil {
		conn = tls.Server(raw, s.cfg.TLS) // the handshake runs in serve
	}
	c := &serverConn{
		srv:     s,
		raw:     raw,
		conn:    conn,
		fr:      newFrameReader(conn, s.cfg.MaxFrameSize),
		ctx:     ctx,
		cancel:  cancel,
		maxBody: s.cfg.MaxFrameSize,
		maxInfl: int32(min(s.cfg.MaxInflightPerConn, 1<<30)),
		log:     s.log,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	return c
}

// serve is the connection's goroutine: handshakes, then the read loop.
func (c *serverConn) serve() {
	graceful := false
	if c.handshake() {
		graceful = c.readLoop()
		if graceful && c.endBatch() {
			c.drain()
		}
	}
	c.mu.Lock()
	if graceful {
		c.inBatch = false
		_ = c.out.flushLocked(&c.mu, c.conn, c.srv.cfg.WriteTimeout)
	}
	c.closed = true
	c.out.buf, c.out.spare = nil, nil
	c.out.wakeLocked() // release senders waiting for room
	c.mu.Unlock()
	c.raw.Close()
	c.cancel()
	c.srv.removeConn(c)
}

// maxLinger bounds how long a refused connection is kept open for its peer
// to read why (see linger), and maxLingerBytes what is read from it
// meanwhile.
const (
	maxLinger      = time.Second
	maxLingerBytes = 1 << 20
)

// handshake runs the TLS handshake and the secret handshake, as
// configured, within HandshakeTimeout of the accept. It reports whether
// the connection may carry requests. A refused peer is told why (a TLS
// alert or a kindAuthFail frame) before the connection is closed.
func (c *serverConn) handshake() bool {
	cfg := &c.srv.cfg
	tc, isTLS := c.conn.(*tls.Conn)
	if !isTLS && len(cfg.Secret) == 0 {
		return true
	}
	if !c.setDeadline(time.Now().Add(cfg.HandshakeTimeout)) {
		return false
	}
	remote := c.raw.RemoteAddr()
	var binding []byte
	if isTLS {
		if err := tc.HandshakeContext(c.ctx); err != nil {
			var rhe tls.RecordHeaderError
			switch {
			case errors.As(err, &rhe) && rhe.Conn != nil:
				c.log.Warn("connection refused: plaintext client on a TLS server", "remote", remote)
				c.refuse(rhe.Conn, "this server requires TLS")
			case isIOError(err):
				c.log.Debug("TLS handshake cut short", "remote", remote, "err", err)
			default:
				c.log.Warn("connection refused: TLS handshake failed", "remote", remote, "err", err)
				c.linger() // let the peer read the alert
			}
			return false
		}
		var err error
		if binding, err = tlsBinding(tc); err != nil {
			c.log.Warn("connection refused: no TLS keying material", "remote", remote, "err", err)
			return false
		}
	} else if hdr, err := c.fr.br.Peek(frameHeaderSize); err == nil && looksLikeTLS(hdr) {
		c.refuseTLSClient()
		return false
	}
	if len(cfg.Secret) > 0 {
		if err := serverAuth(c.conn, c.fr, cfg.Secret, binding, rand.Reader); err != nil {
			if errors.Is(err, ErrAuth) {
				c.log.Warn("connection refused", "remote", remote, "err", err)
				c.linger()
			} else {
				c.log.Debug("secret handshake cut short", "remote", remote, "err", err)
			}
			return false
		}
	}
	// From here on IdleTimeout and WriteTimeout bound each read and write.
	return c.setDeadline(time.Time{})
}

// refuse tells the peer, over w, why its connection is refused, and
// lingers (see linger) for it to read that.
func (c *serverConn) refuse(w io.Writer, reason string) {
	if c.setDeadline(time.Now().Add(min(c.srv.cfg.HandshakeTimeout, c.srv.cfg.WriteTimeout))) {
		_ = refuse(w, reason)
		c.linger()
	}
}

// refuseTLSClient answers a TLS client on a plaintext server with a TLS
// alert, so that it fails at once and knows why.
func (c *serverConn) refuseTLSClient() {
	c.log.Warn("connection refused: TLS client on a plaintext server", "remote", c.raw.RemoteAddr())
	if c.setDeadline(time.Now().Add(min(c.srv.cfg.HandshakeTimeout, c.srv.cfg.WriteTimeout))) {
		_, _ = c.raw.Write(tlsHandshakeFailure)
		c.linger()
	}
}

// linger lets a refused peer read why before the connection goes: it
// half-closes the connection, then reads and discards what the peer still
// sends until it hangs up, for a bounded time and amount. Closing with
// unread input would make TCP reset the connection, which can destroy the
// refusal on its way.
func (c *serverConn) linger() {
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if c.setReadDeadline(time.Now().Add(min(c.srv.cfg.HandshakeTimeout, maxLinger))) {
		_, _ = io.CopyN(io.Discard, c.raw, maxLingerBytes)
	}
}

// readLoop reads and dispatches requests until the connection ends. It
// reports whether it ended gracefully (Shutdown), in which case in-flight
// requests are still answered; otherwise the connection is closed at once
// and the handlers' context cancelled.
func (c *serverConn) readLoop() (graceful bool) {
	// batching mirrors c.inBatch, which only this goroutine sets, to save
	// taking the lock for every request of a batch.
	batching := false
	bh, _ := c.srv.handler.(BatchHandler)
	var pending []*Request // decoded but not yet handed to bh
	var reqs chunk[Request]
	var keys KeyChunk
	// nowMs is the clock expired compares deadlines with, read once per
	// network read rather than once per request (0: read it), and again
	// after anything that may have blocked the loop.
	var nowMs int64
	dispatch := func() {
		if len(pending) > 0 {
			bh.ServeBatch(c.ctx, pending, c)
			clear(pending)
			pending = pending[:0]
			nowMs = 0
		}
	}
	defer dispatch() // requests already counted in flight still get served
	first := true    // no frame read yet
	for {
		if c.inflight.Load() >= c.maxInfl {
			dispatch()
			batching = false
			if !c.waitSlot() {
				return c.isStopping()
			}
			nowMs = 0
		}
		if !c.fr.buffered() || len(pending) >= maxServeBatch {
			dispatch()
		}
		if !c.fr.buffered() {
			// About to block on the network: send what is ready first.
			batching = false
			if !c.endBatch() {
				return false
			}
			if !c.armRead() {
				return true
			}
			nowMs = 0
		}
		kind, body, owned, err := c.fr.next()
		if err != nil {
			if !c.fr.broken && isTimeout(err) {
				if c.isStopping() {
					return true
				}
				if c.inflight.Load() > 0 {
					continue // waiting on our own handlers is not idleness
				}
				c.log.Debug("closing idle connection", "remote", c.conn.RemoteAddr())
				return false
			}
			if errors.Is(err, io.EOF) {
				// The peer hung up: replies could not reach it, so cancel
				// the handlers' work rather than wait for it.
				return false
			}
			if first && errors.Is(err, ErrFrameTooLarge) && c.srv.cfg.TLS == nil && looksLikeTLS(c.fr.peekHeader()) {
				c.refuseTLSClient()
				return false
			}
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformed) {
				c.log.Warn("closing connection on bad input", "remote", c.conn.RemoteAddr(), "err", err)
			} else {
				c.log.Debug("connection read failed", "remote", c.conn.RemoteAddr(), "err", err)
			}
			return false
		}
		if kind >= kindAuthHello && kind <= kindAuthFail {
			// Handshake frames are valid only at the start, and only when
			// both sides use a secret (then handshake consumed them).
			if kind == kindAuthHello && first && len(c.srv.cfg.Secret) == 0 {
				c.log.Warn("connection refused: client uses a cluster secret, this server none", "remote", c.conn.RemoteAddr())
				c.refuse(c.conn, "this server does not use a cluster secret")
			} else {
				c.log.Warn("closing connection on unexpected handshake frame", "remote", c.conn.RemoteAddr(), "kind", kind)
			}
			return false
		}
		first = false
		if !batching {
			c.beginBatch()
			batching = true
		}
		if kind != kindRequest {
			// A kind from a newer protocol, or a stray response: answer it
			// if we can tell which request it was.
			var probe Request
			_ = decodeRequest(body, &probe, true, nil)
			if probe.ID == 0 {
				c.log.Warn("closing connection on unexpected frame", "remote", c.conn.RemoteAddr(), "kind", kind)
				return false
			}
			c.sendOne(&Response{ID: probe.ID, Code: CodeBadRequest, Err: fmt.Sprintf("unsupported frame kind %d", kind)})
			continue
		}
		req := reqs.next(owned)
		if err := decodeRequest(body, req, owned, &keys); err != nil {
			if req.ID == 0 {
				c.log.Warn("closing connection on undecodable request", "remote", c.conn.RemoteAddr(), "err", err)
				return false
			}
			c.sendOne(&Response{ID: req.ID, Code: CodeBadRequest, Err: err.Error()})
			continue
		}
		if c.expired(req, &nowMs) {
			continue
		}
		c.inflight.Add(1)
		if bh != nil {
			pending = append(pending, req)
			continue
		}
		c.srv.handler.ServeRequest(c.ctx, req, c)
	}
}

// expired refuses req, unexecuted, if its sender stopped waiting for it
// before we read it (see Request.Deadline), and reports whether it did.
// *nowMs caches the clock for the requests of one read (0: read it).
func (c *serverConn) expired(req *Request, nowMs *int64) bool {
	skew := c.srv.cfg.MaxClockSkew
	if req.Deadline == 0 || skew < 0 {
		return false
	}
	if *nowMs == 0 {
		*nowMs = time.Now().UnixMilli()
	}
	late := *nowMs - req.Deadline
	if late <= skew.Milliseconds() {
		return false
	}
	n := c.srv.expired.Add(1)
	// After a long stall many requests expire at once: log once a second.
	if now, last := time.Now().UnixNano(), c.srv.warned.Load(); now-last > int64(time.Second) && c.srv.warned.CompareAndSwap(last, now) {
		c.log.Warn("refused requests read after their sender's deadline (was this process stopped?)",
			"remote", c.conn.RemoteAddr(), "op", req.Op, "late", time.Duration(late)*time.Millisecond, "expired_total", n)
	}
	c.sendOne(&Response{ID: req.ID, Code: CodeUnavailable, Err: fmt.Sprintf("request read %dms after its deadline; not executed", late)})
	return true
}

// Expired returns how many requests the server refused because they were
// read after their sender's deadline (see Request.Deadline).
func (s *Server) Expired() int64 { return s.expired.Load() }

// waitSlot blocks while the connection is at its in-flight limit. This is
// the backpressure: no more requests are read, so the peer's writes stall
// in its socket buffer. It reports false if the connection must stop.
func (c *serverConn) waitSlot() bool {
	if !c.endBatch() {
		return false
	}
	for c.inflight.Load() >= c.maxInfl {
		c.blocked.Store(true)
		select {
		case <-c.wake:
		case <-c.stop:
			c.blocked.Store(false)
			return false
		case <-c.ctx.Done():
			c.blocked.Store(false)
			return false
		}
	}
	c.blocked.Store(false)
	return true
}

// drain waits until every request handed to the handler has been replied
// to, or the connection is killed (Shutdown's context ended), or
// IdleTimeout passes: a handler that never replies must not hold the
// connection forever.
func (c *serverConn) drain() {
	c.draining.Store(true)
	if c.inflight.Load() <= 0 {
		return
	}
	t := time.NewTimer(c.srv.cfg.IdleTimeout)
	defer t.Stop()
	for c.inflight.Load() > 0 {
		select {
		case <-c.wake:
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.log.Warn("closing connection with requests unanswered", "remote", c.conn.RemoteAddr(), "inflight", c.inflight.Load())
			return
		}
	}
}

func (c *serverConn) beginBatch() {
	c.mu.Lock()
	c.inBatch = true
	c.mu.Unlock()
}

// endBatch writes the replies the read loop has been holding back. It
// reports false if the connection is broken.
func (c *serverConn) endBatch() bool {
	c.mu.Lock()
	c.inBatch = false
	err := c.out.flushLocked(&c.mu, c.conn, c.srv.cfg.WriteTimeout)
	c.mu.Unlock()
	if err != nil {
		c.log.Debug("connection write failed", "remote", c.conn.RemoteAddr(), "err", err)
		return false
	}
	return true
}

// armRead sets the idle deadline for the next read, unless the connection
// is stopping.
func (c *serverConn) armRead() bool {
	return c.setReadDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
}

// setReadDeadline sets the read deadline unless the connection is
// stopping, whose deadline in the past must stay.
func (c *serverConn) setReadDeadline(t time.Time) bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.stopping {
		return false
	}
	_ = c.raw.SetReadDeadline(t)
	return true
}

// setDeadline is setReadDeadline for both directions.
func (c *serverConn) setDeadline(t time.Time) bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.stopping {
		return false
	}
	_ = c.raw.SetDeadline(t)
	return true
}

// stopReading asks the read loop to stop after the requests it has already
// buffered; a blocked read is woken by a deadline in the past.
func (c *serverConn) stopReading() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.stopping {
		return
	}
	c.stopping = true
	close(c.stop)
	_ = c.raw.SetReadDeadline(time.Unix(1, 0))
}

func (c *serverConn) isStopping() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.stopping
}

// Reply implements ResponseWriter.
func (c *serverConn) Reply(resp *Response) {
	one := [1]*Response{resp}
	c.ReplyAll(one[:])
}

// ReplyAll implements ResponseWriter.
func (c *serverConn) ReplyAll(resps []*Response) {
	if len(resps) == 0 {
		return
	}
	c.send(resps)
	k := int32(len(resps))
	n := c.inflight.Add(-k)
	if n < 0 {
		// A handler replied twice; keep the count honest (the replies
		// that were due may still have freed slots: wake below).
		c.inflight.Add(-n)
		c.log.Error("handler replied more than once", "id", resps[0].ID)
		n = 0
	}
	if (n < c.maxInfl && n+k >= c.maxInfl) || (n == 0 && c.draining.Load()) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// send encodes resps into the write buffer and, unless the read loop will,
// writes them out. While the buffer is past its high-water mark and being
// written, it waits before adding to it: a peer that stops reading then
// costs at most about outbufHigh plus one reply, however many handlers
// reply meanwhile, until WriteTimeout closes its connection.
func (c *serverConn) send(resps []*Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for _, resp := range resps {
		for c.out.overHigh() && c.out.writing && c.out.err == nil && !c.closed {
			c.out.waitLocked(&c.mu)
		}
		if c.closed || c.out.err != nil {
			return
		}
		c.out.buf = c.appendReply(c.out.buf, resp)
		c.out.peak = max(c.out.peak, len(c.out.buf))
		if c.out.overHigh() {
			if err = c.out.drainLocked(&c.mu, c.conn, c.srv.cfg.WriteTimeout); err != nil {
				break
			}
		}
	}
	if err == nil && !c.inBatch {
		// Called from the read loop, the batch is written when it runs
		// out of input; from another goroutine, now.
		err = c.out.flushLocked(&c.mu, c.conn, c.srv.cfg.WriteTimeout)
	}
	if err != nil {
		// Wake the read loop so the connection is torn down.
		c.raw.Close()
	}
}

// sendOne sends a reply the server makes itself (no handler involved).
func (c *serverConn) sendOne(resp *Response) {
	one := [1]*Response{resp}
	c.send(one[:])
}

// appendReply appends resp as a frame, or a CodeTooLarge error in its place
// if it does not fit in one.
func (c *serverConn) appendReply(b []byte, resp *Response) []byte {
	start := len(b)
	if responseSizeHint(resp) <= c.maxBody {
		b = appendResponse(appendFrameHeader(b, kindResponse), resp)
		if finishFrame(b, start, c.maxBody) {
			return b
		}
		b = b[:start]
	}
	tooLarge := Response{ID: resp.ID, Code: CodeTooLarge, Err: "reply exceeds the maximum frame size"}
	b = appendResponse(appendFrameHeader(b, kindResponse), &tooLarge)
	finishFrame(b, start, c.maxBody)
	return b
}
