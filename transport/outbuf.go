package transport

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// outbufKeep is the largest buffer a connection keeps between writes.
const outbufKeep = 256 << 10

// outbufHigh is the high-water mark of a write buffer. Past it, a server
// connection's sender writes the buffer out (waiting for a write in
// progress first) instead of leaving it for later, and a client caller
// waits for room, by its deadline, before it adds a request
// (clientConn.makeRoomLocked). Without it, a pipeline of small requests
// for big values could make a server buffer every reply before writing,
// and callers could pile requests up for a peer that stopped reading.
const outbufHigh = 128 << 10

// outbuf batches encoded frames for one connection. Goroutines append
// frames under the connection's mutex; the first one to find nobody writing
// becomes the writer and keeps writing until the buffer is empty, so frames
// appended while a write is in progress leave in the next single write.
// Server connections have no writer goroutine, so no hand-off on the fast
// path; client connections add one under load (see
// clientConn.flushSoonLocked).
//
// Its fields are guarded by the owning connection's mutex.
type outbuf struct {
	buf     []byte    // frames waiting to be written
	spare   []byte    // the other buffer, reused across writes
	writing bool      // a goroutine is inside flushLocked's write loop
	err     error     // first write error; nothing is written after it
	armedTo time.Time // current write deadline
	peak    int       // the largest len(buf) seen, for tests of the bound
	// sent counts the bytes Write has taken on this connection, partial
	// writes included, and inWrite the bytes of the write in progress:
	// a frame appended now ends at end(). A client uses them to tell a
	// request that never wholly left from one that may have (see
	// clientConn.failLocked).
	sent    int64
	inWrite int
	// wrote, when not nil, is closed when a writer next takes the buffer
	// (room again) or a write ends: goroutines waiting for either make it,
	// so only waiting costs a channel. A channel rather than a sync.Cond
	// lets a waiter also watch its own deadline.
	wrote chan struct{}
}

// wroteLocked returns a channel closed when a writer next takes the
// buffer, a write ends, or the connection closes (see wakeLocked).
func (o *outbuf) wroteLocked() <-chan struct{} {
	if o.wrote == nil {
		o.wrote = make(chan struct{})
	}
	return o.wrote
}

// wakeLocked wakes every goroutine waiting on wroteLocked.
func (o *outbuf) wakeLocked() {
	if o.wrote != nil {
		close(o.wrote)
		o.wrote = nil
	}
}

// waitLocked waits, with mu released, until a writer takes the buffer or a
// write ends; callers check again what they wait for.
func (o *outbuf) waitLocked(mu *sync.Mutex) {
	ch := o.wroteLocked()
	mu.Unlock()
	<-ch
	mu.Lock()
}

// end is where the last byte buffered so far lies in the connection's
// byte stream.
func (o *outbuf) end() int64 { return o.sent + int64(o.inWrite) + int64(len(o.buf)) }

// overHigh reports whether the buffer is past its high-water mark.
func (o *outbuf) overHigh() bool { return len(o.buf) >= outbufHigh }

// drainLocked writes the buffer out now, first waiting for a write in
// progress to finish. A server connection's senders call it when
// overHigh; it bounds the buffer to about outbufHigh plus one frame per
// sending goroutine.
func (o *outbuf) drainLocked(mu *sync.Mutex, conn net.Conn, timeout time.Duration) error {
	for o.writing && o.err == nil {
		o.waitLocked(mu)
	}
	return o.flushLocked(mu, conn, timeout)
}

// flushLocked writes everything buffered, including what other goroutines
// append meanwhile, and returns the connection's write error if any. It
// must be called with mu held; it releases mu around each write and holds
// it again on return. If another goroutine is already writing it returns at
// once: that writer will send what is buffered.
func (o *outbuf) flushLocked(mu *sync.Mutex, conn net.Conn, timeout time.Duration) error {
	return o.flushByLocked(mu, conn, timeout, time.Time{})
}

// flushByLocked is flushLocked for a caller that must be done by a
// deadline of its own (by; zero: none): it makes one write, which fails
// the connection rather than block past by, and none at all if by has
// passed; what is left buffered (appended meanwhile, or not written) is
// for the caller to hand on.
func (o *outbuf) flushByLocked(mu *sync.Mutex, conn net.Conn, timeout time.Duration, by time.Time) error {
	if o.writing {
		return o.err
	}
	o.writing = true
	for len(o.buf) > 0 && o.err == nil {
		now := time.Now()
		if !by.IsZero() {
			if !by.After(now) {
				break // no time left: a write cut at once would only fail the connection
			}
			// With now's monotonic reading, as armedTo must have: by is
			// a wall-clock time (Request.Deadline).
			by = now.Add(by.Sub(now))
		}
		out := o.buf
		o.buf, o.spare = o.spare[:0], nil
		o.inWrite = len(out)
		o.wakeLocked() // the buffer has room again; waiters need not wait for the write
		// Re-arm the write deadline only when half of it is used up: this
		// saves a timer update on nearly every write, and a write still
		// never blocks for less than timeout/2 or more than timeout.
		arm := o.armedTo.Sub(now) < timeout/2
		if arm {
			o.armedTo = now.Add(timeout)
		}
		if !by.IsZero() && by.Before(o.armedTo) {
			// The next writer re-arms, armedTo being this close.
			o.armedTo, arm = by, true
		}
		deadline := o.armedTo
		mu.Unlock()
		var err error
		var n int
		if arm {
			err = conn.SetWriteDeadline(deadline)
		}
		if err == nil {
			n, err = conn.Write(out)
		}
		mu.Lock()
		o.sent += int64(n)
		o.inWrite = 0
		if err != nil {
			o.err = err
			o.buf = nil
		}
		if cap(out) <= outbufKeep {
			o.spare = out[:0]
		}
		o.wakeLocked()
		if !by.IsZero() {
			break
		}
	}
	o.writing = false
	o.wakeLocked()
	return o.err
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
