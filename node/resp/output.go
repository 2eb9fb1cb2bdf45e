package resp

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// inlineWriteWait is how long the connection goroutine waits on a write
// before handing the rest of its output to a writer goroutine.
const inlineWriteWait = 10 * time.Millisecond

// output writes a connection's replies. Normally the connection goroutine
// writes them itself, which is the fastest path. But a client that sends a
// long pipeline without reading replies until it has sent everything
// (go-redis pipelines do) fills both directions' socket buffers: the
// client blocks writing commands, the server blocks writing replies, and
// neither ever reads. Redis avoids this by buffering replies; so does this
// connection once a write has not completed within inlineWriteWait: the
// rest goes to a writer goroutine, which runs until it has caught up, while
// the connection goroutine keeps reading. At most maxPending bytes wait in
// the queue; beyond that the connection goroutine waits for the writer.
//
// A TLS connection cannot take that path: after a write times out, a
// tls.Conn fails every later write. Its replies always go through the
// writer goroutine (queued, so the connection goroutine never blocks on a
// slow reader), which gives each standard buffer back to bufs once written.
type output struct {
	nc         net.Conn
	maxPending int
	queueAll   bool
	bufs       *bufPool

	mu   sync.Mutex
	cond sync.Cond
	// queue holds replies handed to the writer goroutine, pending their
	// total size; active is true while the writer goroutine runs.
	queue   [][]byte
	pending int
	active  bool
	err     error
}

// init prepares o, which must not be copied afterwards. queueAll sends
// every write through the writer goroutine (for TLS).
func (o *output) init(nc net.Conn, maxPending int, queueAll bool, bufs *bufPool) {
	o.nc, o.maxPending, o.queueAll, o.bufs = nc, maxPending, queueAll, bufs
	o.cond.L = &o.mu
}

// write sends b to the client, returning whether the caller may reuse b.
// It returns false when b now belongs to the writer goroutine. After a
// failed write every later write fails with the same error.
func (o *output) write(b []byte) (reusable bool, err error) {
	o.mu.Lock()
	if o.err != nil {
		err = o.err
		o.mu.Unlock()
		return true, err
	}
	if o.active || o.queueAll {
		o.enqueueLocked(b)
		err = o.err
		o.mu.Unlock()
		return false, err
	}
	o.mu.Unlock()

	// Only this goroutine writes while the writer is not running.
	_ = o.nc.SetWriteDeadline(time.Now().Add(inlineWriteWait))
	n, err := o.nc.Write(b)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		o.mu.Lock()
		o.err = err
		o.mu.Unlock()
		return true, err
	}
	o.mu.Lock()
	o.enqueueLocked(b[n:])
	o.mu.Unlock()
	return false, nil
}

// enqueueLocked queues b for the writer goroutine, starting it if it is
// not running, after waiting while too much is queued already.
func (o *output) enqueueLocked(b []byte) {
	for o.pending > o.maxPending && o.active && o.err == nil {
		o.cond.Wait()
	}
	if o.err != nil {
		return
	}
	o.queue = append(o.queue, b)
	o.pending += len(b)
	if !o.active {
		o.active = true
		go o.run()
	}
}

// run is the writer goroutine: it writes queued replies until the queue is
// empty or a write fails.
func (o *output) run() {
	_ = o.nc.SetWriteDeadline(time.Time{})
	o.mu.Lock()
	for len(o.queue) > 0 && o.err == nil {
		b := o.queue[0]
		o.queue[0] = nil
		o.queue = o.queue[1:]
		o.mu.Unlock()
		_, err := o.nc.Write(b)
		if o.queueAll {
			o.bufs.put(b)
		}
		o.mu.Lock()
		o.pending -= len(b)
		if err != nil {
			o.err = err
		}
		o.cond.Broadcast()
	}
	o.queue, o.pending = nil, 0
	o.active = false
	o.cond.Broadcast()
	o.mu.Unlock()
}

// wait blocks until the writer goroutine, if running, has written
// everything queued (or failed).
func (o *output) wait() {
	o.mu.Lock()
	for o.active {
		o.cond.Wait()
	}
	o.mu.Unlock()
}
