package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/starlingcache/starling/transport"
)

const (
	// flushAt is the output size at which replies are written out even in
	// the middle of a batch, so that a batch of large values does not pile
	// up in memory.
	flushAt = 64 << 10
	// keepWriteBuf and keepBatch bound the buffers a connection keeps
	// between batches; larger ones, grown by one big reply or command, are
	// released.
	keepWriteBuf = 1 << 20
	keepBatch    = 4096
	// maxCmdName is the longest command name looked up.
	maxCmdName = 32
)

// replyFunc writes the reply to one command from the responses to the
// requests it queued (rs has one entry per request, in queue order).
type replyFunc func(c *conn, p *pending, rs []*transport.Response)

// pending is a command of the current batch, waiting for its reply to be
// written in order.
type pending struct {
	// reply writes the reply; nil means the reply was known when the
	// command was parsed and is imm.b[from:to].
	reply replyFunc
	// first and n locate the command's requests in the batch.
	first, n int
	from, to int
	// mode carries command-specific details from parse time to reply time.
	mode int64
}

// conn serves one client connection. Everything in it belongs to the
// connection's goroutine.
//
// The loop: parse every complete command in the read buffer (up to
// MaxPipeline), turning each into requests appended to one batch; hand the
// batch to Backend.Do in one call; write all replies in order; flush only
// when the read buffer holds no further complete command; read again.
//
// An idle connection (one that has sent no part of a next command) holds
// no buffers: its read and write buffers and its batch go back to the
// server's pools, and it waits for the socket to become readable without
// a buffer (see readIdle), so that thousands of idle clients cost little
// more than their goroutines.
type conn struct {
	s  *Server
	nc net.Conn // a *tls.Conn over raw with TLS, else raw
	// raw is the accepted connection, under TLS if any.
	raw net.Conn
	// rawc reads a plain socket directly; nil for other connections (TLS,
	// tests' in-memory connections), which read through nc.
	rawc syscall.RawConn
	// readFn is c.readRaw, allocated once; rerr is its outcome.
	readFn func(fd uintptr) bool
	rerr   error

	ctx context.Context
	rd  reader
	out output
	wr  writer
	// batch is the state of the commands being served, nil while the
	// connection is idle.
	*batch

	id      int64
	addr    string
	created time.Time
	authed  bool
	quit    bool
	werr    error
	ncmds   int64

	// deadline is the read deadline set on nc; cmdDeadline is when the
	// command that has begun must be complete (zero if none has begun).
	deadline, cmdDeadline time.Time

	lower [maxCmdName]byte

	// nameMu guards name, which CLIENT LIST on other connections reads.
	nameMu sync.Mutex
	name   string
}

// batch is the state a connection needs only while it has commands in
// hand; connections share them through the server's pool.
type batch struct {
	// imm holds replies known at parse time while requests ahead of them
	// are still waiting for the batch to execute.
	imm writer
	// The batch: reqs[i] is answered by resps[i]; pool keeps the Request
	// structs for reuse (reqs[i] == pool[i]).
	reqs  []*transport.Request
	resps []*transport.Response
	pool  []*transport.Request
	pend  []pending
	// keys makes the keys of keyed requests (see keyString).
	keys transport.KeyChunk
	// scratch is where a ScratchBackend builds the answers; nil until the
	// first batch of a backend that is one.
	scratch Scratch
}

func (c *conn) setName(name string) {
	c.nameMu.Lock()
	c.name = name
	c.nameMu.Unlock()
}

func (c *conn) getName() string {
	c.nameMu.Lock()
	defer c.nameMu.Unlock()
	return c.name
}

// newConn prepares to serve nc, which is raw or a TLS connection over raw.
func newConn(s *Server, nc, raw net.Conn) *conn {
	c := &conn{
		s:       s,
		nc:      nc,
		raw:     raw,
		ctx:     s.baseCtx,
		id:      s.nextID.Add(1),
		addr:    raw.RemoteAddr().String(),
		created: time.Now(),
		authed:  s.cfg.RequirePass == "",
		wr:      writer{proto: 2},
	}
	c.rd.init(nc, &s.cfg, &s.bufs)
	c.rd.unauth = !c.authed
	c.out.init(nc, s.cfg.MaxReplyBuffer, nc != raw, &s.bufs)
	if nc == raw {
		c.rawc = rawConnOf(nc)
		if c.rawc != nil {
			c.readFn = c.readRaw
		}
	}
	return c
}

// stopReading makes the connection's next read fail, so that it finishes
// the batch in hand, answers it and closes. Called by Shutdown from another
// goroutine.
func (c *conn) stopReading() {
	// TCP and Unix connections can stop reading for good (under TLS too);
	// a deadline set here could be pushed back by the connection's own.
	if hc, ok := c.raw.(interface{ CloseRead() error }); ok && hc.CloseRead() == nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
}

// serve runs the connection until it ends. It alternates between waiting,
// idle, for a command to begin (readIdle) and serving commands until none
// has begun (work). The goroutine of an idle connection is parked in
// readIdle, a few small frames deep, so that the garbage collector can
// halve a stack that serving grew for as long as less than a quarter of it
// is in use (the runtime counts 800 bytes of guard on top of the frames,
// so 4 KiB is as far as it goes).
func (c *conn) serve() {
	defer c.recoverPanic()
	err := c.handshake()
	for err == nil {
		if err = c.readIdle(); err == nil {
			err = c.work()
		}
	}
	c.end(err)
}

// recoverPanic closes the connection after a panic: a bug in a command
// must cost one connection, not the node.
func (c *conn) recoverPanic() {
	if v := recover(); v != nil {
		c.s.log.Error("resp: panic serving client; connection closed", "client", c.addr, "panic", v, "stack", string(debug.Stack()))
		_ = c.nc.Close()
	}
}

// errQuit ends a connection after QUIT.
var errQuit = errors.New("resp: client quit")

// end closes the connection once its replies are written.
func (c *conn) end(err error) {
	c.out.wait()
	_ = c.nc.Close()
	c.release()
	c.s.totalCmds.Add(c.ncmds)
	switch {
	case errors.Is(err, errQuit), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, ErrProtocol):
		c.s.log.Debug("resp: closing client after protocol error", "client", c.addr, "err", err)
	default:
		c.s.log.Debug("resp: client connection ended", "client", c.addr, "err", err)
	}
}

// handshake completes a TLS handshake within HandshakeTimeout, so that a
// client that never sends one does not keep its connection slot.
func (c *conn) handshake() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	_ = c.nc.SetDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		return fmt.Errorf("resp: TLS handshake: %w", err)
	}
	return c.nc.SetDeadline(time.Time{})
}

// work serves the commands in the read buffer, reading more while a
// command is incomplete, until no command has begun: it returns nil then,
// with every reply flushed, and an error when the connection must end.
func (c *conn) work() error {
	maxPipe := c.s.cfg.MaxPipeline
	for {
		parsed := false
		for {
			args, ok, err := c.rd.next()
			if err != nil {
				return c.fail(err)
			}
			if !ok {
				break
			}
			parsed = true
			c.dispatch(args)
			if c.quit {
				c.flush()
				return errQuit
			}
			if len(c.pend) >= maxPipe {
				c.execute()
			}
			if c.werr != nil {
				return c.werr
			}
		}
		c.execute()
		c.flush()
		if c.werr != nil {
			return c.werr
		}
		if c.ncmds >= 1024 {
			c.s.totalCmds.Add(c.ncmds)
			c.ncmds = 0
		}
		if !c.rd.partial() {
			return nil
		}
		c.setDeadline(true, parsed)
		if err := c.rd.fill(); err != nil {
			return c.fail(err)
		}
	}
}

// fail answers the commands parsed before a read error and, for a protocol
// error, tells the client what was wrong before the connection closes.
func (c *conn) fail(err error) error {
	c.execute()
	var pe *protocolError
	if errors.As(err, &pe) {
		c.wr.errorString("ERR " + pe.Error())
	}
	c.flush()
	return err
}

// setDeadline sets the read deadline: IdleTimeout from now, and
// CommandTimeout from when the command now incomplete (partial) was first
// seen; parsed says whether commands were completed since the last read,
// which makes an incomplete command a new one.
func (c *conn) setDeadline(partial, parsed bool) {
	idle, cmd := c.s.cfg.IdleTimeout, c.s.cfg.CommandTimeout
	var now time.Time
	if idle > 0 || partial && cmd > 0 {
		now = time.Now()
	}
	switch {
	case !partial || cmd == 0:
		c.cmdDeadline = time.Time{}
	case parsed || c.cmdDeadline.IsZero():
		c.cmdDeadline = now.Add(cmd)
	}
	dl := c.cmdDeadline
	if idle > 0 && (dl.IsZero() || now.Add(idle).Before(dl)) {
		dl = now.Add(idle)
	}
	if !dl.Equal(c.deadline) {
		c.deadline = dl
		_ = c.nc.SetReadDeadline(dl)
	}
}

// readIdle reads the first bytes of a next command. On a plain socket the
// connection first gives its buffers back and waits for the socket to be
// readable without one: RawConn.Read calls readRaw, which reads if bytes
// are there and otherwise releases the buffers and lets the netpoller
// park the goroutine until they come.
func (c *conn) readIdle() error {
	c.setDeadline(false, false)
	c.rd.r, c.rd.w = 0, 0
	if c.rawc == nil {
		c.acquire()
		return c.rd.fill()
	}
	c.rerr = nil
	if err := c.rawc.Read(c.readFn); err != nil {
		return err
	}
	return c.rerr
}

// acquire takes the buffers and batch state an idle connection gave back.
func (c *conn) acquire() {
	if c.batch == nil {
		b, _ := c.s.batches.Get().(*batch)
		if b == nil {
			b = new(batch)
		}
		b.imm.proto = c.wr.proto
		c.batch = b
	}
	if c.rd.buf == nil {
		c.rd.buf = c.s.bufs.get()
	}
	if c.wr.b == nil {
		c.wr.b = c.s.bufs.get()[:0]
	}
}

// release gives the buffers and batch state back to the server's pools.
// The connection must have no command begun, and its replies flushed.
func (c *conn) release() {
	if c.batch != nil {
		c.resetBatch()
		c.s.batches.Put(c.batch)
		c.batch = nil
	}
	c.rd.idle()
	c.s.bufs.put(c.wr.b)
	c.wr.b = nil
}

// dispatch checks one command (name, arity, authentication) and queues it.
func (c *conn) dispatch(args [][]byte) {
	c.ncmds++
	cmd := c.lookup(args[0])
	if cmd == nil {
		c.immError(unknownCommand(args))
		return
	}
	if !arityOK(cmd.arity, len(args)) {
		c.immError(arityError(cmd.name))
		return
	}
	if !c.authed && !cmd.noAuth {
		c.immError(errNoAuth)
		return
	}
	if cmd.exec != nil {
		// Commands that change how later replies are encoded, span several
		// round trips or ask every member run on their own, after the
		// commands ahead of them have been answered.
		c.execute()
		cmd.exec(c, args)
		return
	}
	cmd.prepare(c, args)
}

// lookup finds a command by its case-insensitive name without allocating.
func (c *conn) lookup(name []byte) *command {
	if len(name) > maxCmdName {
		return nil
	}
	// GET and SET dominate real traffic: skip the map for them.
	if len(name) == 3 {
		switch {
		case eqFold(name, "get"):
			return c.s.cmdGet
		case eqFold(name, "set"):
			return c.s.cmdSet
		}
	}
	b := c.lower[:len(name)]
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		b[i] = ch
	}
	return c.s.cmds[string(b)]
}

func arityOK(arity, n int) bool {
	if arity >= 0 {
		return n == arity
	}
	return n >= -arity
}

// newReq appends a request to the batch, reusing a pooled Request.
func (c *conn) newReq(op transport.Op, key []byte) *transport.Request {
	i := len(c.reqs)
	if i == len(c.pool) {
		c.pool = append(c.pool, new(transport.Request))
	}
	r := c.pool[i]
	*r = transport.Request{Op: op, Key: c.keyString(op, key)}
	c.reqs = append(c.reqs, r)
	return r
}

// keyString returns key as a string for a request of type op. Keyed
// requests use their key only while served (see transport.Op.SharesKey),
// so they share allocations (transport.KeyChunk); any other gets a string
// of its own.
func (c *conn) keyString(op transport.Op, key []byte) string {
	if !op.SharesKey() {
		return string(key)
	}
	return c.keys.String(key)
}

// await queues the reply of a command whose requests are reqs[first:].
func (c *conn) await(first int, reply replyFunc, mode int64) {
	c.pend = append(c.pend, pending{reply: reply, first: first, n: len(c.reqs) - first, mode: mode})
}

// immEnd queues a reply known at parse time, written to imm from offset
// from on; execute replays it in order.
func (c *conn) immEnd(from int) {
	c.pend = append(c.pend, pending{from: from, to: len(c.imm.b)})
}

func (c *conn) immError(msg string) {
	from := len(c.imm.b)
	c.imm.errorString(msg)
	c.immEnd(from)
}

func (c *conn) immOK() {
	from := len(c.imm.b)
	c.imm.ok()
	c.immEnd(from)
}

// run sends the batch's requests to the backend in one call.
func (c *conn) run() []*transport.Response {
	n := len(c.reqs)
	if n == 0 {
		return nil
	}
	if cap(c.resps) < n {
		c.resps = make([]*transport.Response, n, max(n, 2*cap(c.resps)))
	}
	rs := c.resps[:n]
	if sb, ok := c.s.backend.(ScratchBackend); ok {
		if c.scratch == nil {
			c.scratch = sb.NewScratch()
		}
		sb.DoScratch(c.ctx, c.reqs, rs, c.scratch)
	} else {
		c.s.backend.Do(c.ctx, c.reqs, rs)
	}
	for i, r := range rs {
		if r == nil {
			rs[i] = &transport.Response{Code: transport.CodeInternal, Err: "backend returned no response"}
		}
	}
	return rs
}

// execute runs the batch and writes every pending reply in order.
func (c *conn) execute() {
	if c.batch == nil || len(c.pend) == 0 {
		return
	}
	rs := c.run()
	for i := range c.pend {
		p := &c.pend[i]
		if p.reply == nil {
			c.wr.b = append(c.wr.b, c.imm.b[p.from:p.to]...)
		} else {
			p.reply(c, p, rs[p.first:p.first+p.n])
		}
		if len(c.wr.b) >= flushAt {
			c.flush()
		}
	}
	c.resetBatch()
}

// resetBatch forgets the batch, dropping references to request and
// response data (values alias the read buffer, which may be a large one
// about to be dropped) so it can be collected, and releases buffers one
// unusually large batch grew.
func (c *conn) resetBatch() {
	clear(c.resps[:min(len(c.reqs), cap(c.resps))])
	if c.scratch != nil {
		c.scratch.Reset() // every reply of the batch is encoded by now
	}
	for _, r := range c.reqs {
		*r = transport.Request{}
	}
	c.reqs = c.reqs[:0]
	c.pend = c.pend[:0]
	c.imm.b = c.imm.b[:0]
	if len(c.pool) > keepBatch {
		c.pool = slices.Clone(c.pool[:keepBatch])
		c.reqs = nil
		c.resps = nil
	}
	if cap(c.pend) > keepBatch {
		c.pend = nil
	}
	if cap(c.imm.b) > keepWriteBuf {
		c.imm.b = nil
	}
}

// flush writes buffered replies to the client. After a write error the
// connection only drains: further replies are discarded.
func (c *conn) flush() {
	if len(c.wr.b) > 0 && c.werr == nil {
		reusable, err := c.out.write(c.wr.b)
		c.werr = err
		if !reusable {
			// The writer goroutine owns it now.
			c.wr.b = c.s.bufs.get()
		}
	}
	c.wr.b = c.wr.b[:0]
	if cap(c.wr.b) > keepWriteBuf {
		c.wr.b = c.s.bufs.get()[:0]
	}
}

// backendError writes the Redis error for a failed response.
func (c *conn) backendError(r *transport.Response) {
	c.wr.errorString(errorText(r))
}

func errorText(r *transport.Response) string {
	switch r.Code {
	case transport.CodeNotInteger:
		return "ERR value is not an integer or out of range"
	case transport.CodeOverflow:
		return "ERR increment or decrement would overflow"
	case transport.CodeNotFloat:
		return "ERR value is not a valid float"
	case transport.CodeNotFinite:
		return "ERR increment would produce NaN or Infinity"
	case transport.CodeNotFound:
		return "ERR no such key"
	}
	msg := r.Err
	if msg == "" {
		msg = r.Error().Error()
	}
	return "ERR " + msg
}
