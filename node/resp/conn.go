package resp

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"sync"
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
type conn struct {
	s   *Server
	nc  net.Conn
	ctx context.Context
	rd  *reader
	out *output
	wr  writer
	// imm holds replies known at parse time while requests ahead of them
	// are still waiting for the batch to execute.
	imm writer

	id      int64
	addr    string
	created time.Time
	authed  bool
	quit    bool
	werr    error
	ncmds   int64

	// The batch: reqs[i] is answered by resps[i]; pool keeps the Request
	// structs for reuse (reqs[i] == pool[i]).
	reqs  []*transport.Request
	resps []*transport.Response
	pool  []*transport.Request
	pend  []pending

	lower [maxCmdName]byte

	// nameMu guards name, which CLIENT LIST on other connections reads.
	nameMu sync.Mutex
	name   string
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

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:       s,
		nc:      nc,
		ctx:     s.baseCtx,
		id:      s.nextID.Add(1),
		addr:    nc.RemoteAddr().String(),
		created: time.Now(),
		authed:  s.cfg.RequirePass == "",
		wr:      writer{b: make([]byte, 0, readBufSize), proto: 2},
		imm:     writer{proto: 2},
	}
	c.rd = newReader(nc, &s.cfg)
	c.out = newOutput(nc, s.cfg.MaxReplyBuffer)
	c.rd.unauth = !c.authed
	return c
}

// stopReading makes the connection's next read fail, so that it finishes
// the batch in hand, answers it and closes. Called by Shutdown from another
// goroutine.
func (c *conn) stopReading() {
	// TCP and Unix connections can stop reading for good; a deadline set
	// here could be pushed back by the idle timeout.
	if hc, ok := c.nc.(interface{ CloseRead() error }); ok && hc.CloseRead() == nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
}

func (c *conn) serve() {
	defer func() {
		// A bug in a command must cost one connection, not the node.
		if v := recover(); v != nil {
			c.s.log.Error("resp: panic serving client; connection closed", "client", c.addr, "panic", v, "stack", string(debug.Stack()))
			_ = c.nc.Close()
		}
	}()
	err := c.loop()
	c.out.wait()
	_ = c.nc.Close()
	c.s.totalCmds.Add(c.ncmds)
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, ErrProtocol):
		c.s.log.Debug("resp: closing client after protocol error", "client", c.addr, "err", err)
	default:
		c.s.log.Debug("resp: client connection ended", "client", c.addr, "err", err)
	}
}

func (c *conn) loop() error {
	maxPipe := c.s.cfg.MaxPipeline
	for {
		for {
			args, ok, err := c.rd.next()
			if err != nil {
				c.execute()
				var pe *protocolError
				if errors.As(err, &pe) {
					c.wr.errorString("ERR " + pe.Error())
				}
				c.flush()
				return err
			}
			if !ok {
				break
			}
			c.dispatch(args)
			if c.quit {
				c.flush()
				return nil
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
		if d := c.s.cfg.IdleTimeout; d > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(d))
		}
		if err := c.rd.fill(); err != nil {
			var pe *protocolError
			if errors.As(err, &pe) {
				c.wr.errorString("ERR " + pe.Error())
				c.flush()
			}
			return err
		}
	}
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
		c.immError("NOAUTH Authentication required.")
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
	*r = transport.Request{Op: op, Key: string(key)}
	c.reqs = append(c.reqs, r)
	return r
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
	c.s.backend.Do(c.ctx, c.reqs, rs)
	for i, r := range rs {
		if r == nil {
			rs[i] = &transport.Response{Code: transport.CodeInternal, Err: "backend returned no response"}
		}
	}
	return rs
}

// execute runs the batch and writes every pending reply in order.
func (c *conn) execute() {
	if len(c.pend) == 0 {
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

// resetBatch forgets the batch, dropping references to response data so
// it can be collected, and releases buffers one unusually large batch grew.
// Pooled requests keep their last key and value until reused; newReq
// resets them.
func (c *conn) resetBatch() {
	clear(c.resps[:len(c.reqs)])
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
			c.wr.b = make([]byte, 0, readBufSize)
		}
	}
	c.wr.b = c.wr.b[:0]
	if cap(c.wr.b) > keepWriteBuf {
		c.wr.b = make([]byte, 0, readBufSize)
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
	case transport.CodeNotFound:
		return "ERR no such key"
	}
	msg := r.Err
	if msg == "" {
		msg = r.Error().Error()
	}
	return "ERR " + msg
}
