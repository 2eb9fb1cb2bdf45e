package transport

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Hostile peers. Each test checks that the server refuses or closes the
// bad connection (never a hang, never unbounded memory) and that a
// well-behaved client on another connection is answered meanwhile.

// goodClient returns a client for addr with its whole pool dialled.
func goodClient(t *testing.T, cfg Config, addr string) *Client {
	t.Helper()
	c := newTestClient(t, cfg)
	stillServes(t, c, addr)
	return c
}

// serverSide waits for the server's end of conn to be accepted.
func serverSide(t *testing.T, srv *Server, conn net.Conn) *serverConn {
	t.Helper()
	var found *serverConn
	eventually(t, "the connection to be accepted", func() bool {
		for _, sc := range srv.connsOf() {
			if sc.raw.RemoteAddr().String() == conn.LocalAddr().String() {
				found = sc
				return true
			}
		}
		return false
	})
	return found
}

// serverClosed waits until the server has let go of its end of conn.
func serverClosed(t *testing.T, srv *Server, conn net.Conn) {
	t.Helper()
	eventually(t, "the server to close the connection", func() bool {
		for _, sc := range srv.connsOf() {
			if sc.raw.RemoteAddr().String() == conn.LocalAddr().String() {
				return false
			}
		}
		return true
	})
}

// stillServes makes a few calls with c, failing the test on any error.
func stillServes(t *testing.T, c *Client, addr string) {
	t.Helper()
	for range 2 * c.cfg.ConnsPerPeer {
		mustCall(t, c, addr, &Request{Op: OpPing})
	}
}

// TestHostileInput: garbage, truncated frames, absurd lengths and
// slowloris trickles each cost only their own connection, which the server
// closes (at once, or after IdleTimeout for a stream that merely stalls).
func TestHostileInput(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.IdleTimeout = 200 * time.Millisecond
		srv, addr := startServer(t, cfg, echo)
		gc := goodClient(t, cfg, addr)

		t.Run("random bytes", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 7))
			conns := make([]net.Conn, 8)
			for i := range conns {
				junk := make([]byte, 64<<10)
				for j := range junk {
					junk[j] = byte(rng.Uint32())
				}
				conns[i] = rawConn(t, nw, addr)
				go conns[i].Write(junk)
			}
			stillServes(t, gc, addr)
			for _, conn := range conns {
				readUntilClosed(t, conn)
				serverClosed(t, srv, conn)
			}
		})

		t.Run("truncated frame then close", func(t *testing.T) {
			for _, size := range []int{10, 3 * bufferSize} { // read in place, and into a buffer of its own
				f := requestFrame(&Request{ID: 1, Op: OpSet, Key: "k", Value: make([]byte, size)})
				conn := rawConn(t, nw, addr)
				if _, err := conn.Write(f[:len(f)/2]); err != nil {
					t.Fatal(err)
				}
				serverSide(t, srv, conn)
				stillServes(t, gc, addr)
				conn.Close()
				serverClosed(t, srv, conn)
			}
		})

		t.Run("4 GiB frame header", func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 16 {
				conn := rawConn(t, nw, addr)
				go conn.Write([]byte{0xff, 0xff, 0xff, 0xff, byte(kindRequest), 1, 2, 3})
				readUntilClosed(t, conn)
				serverClosed(t, srv, conn)
			}
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
				t.Fatalf("refusing 16 4-GiB headers allocated %d bytes", grew)
			}
			stillServes(t, gc, addr)
		})

		t.Run("slowloris", func(t *testing.T) {
			// One byte per 10 ms: the 64-byte request would take 640 ms,
			// but the whole frame must arrive within IdleTimeout (200 ms):
			// each byte does not restart the clock.
			f := requestFrame(&Request{ID: 1, Op: OpGet, Key: string(make([]byte, 50))})
			conn := rawConn(t, nw, addr)
			trickled := make(chan int, 1)
			go func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				n := 0
				for ; n < len(f); n++ {
					<-tick.C
					if _, err := conn.Write(f[n : n+1]); err != nil {
						break
					}
				}
				trickled <- n
			}()
			serverSide(t, srv, conn)
			stillServes(t, gc, addr)
			if got := readUntilClosed(t, conn); len(got) != 0 {
				t.Fatalf("the trickled request was answered: %q", got)
			}
			if n := <-trickled; n == len(f) {
				t.Fatal("the server waited for the whole trickled frame")
			}
			serverClosed(t, srv, conn)
		})
	})
}

// TestClientNeverReads: a peer that sends requests but never reads the
// replies cannot make the server buffer them without bound, block other
// connections, or keep its connection past WriteTimeout.
func TestClientNeverReads(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		const inflight = 64
		cfg := testConfig(nw)
		cfg.WriteTimeout = 300 * time.Millisecond
		cfg.MaxInflightPerConn = inflight
		big := make([]byte, 256<<10) // 64 replies: 16 MiB, more than socket buffers hold
		var replying atomic.Int64
		srv, addr := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			if req.Op == OpPing {
				w.Reply(&Response{ID: req.ID})
				return
			}
			go func() { // as a node answers forwarded requests
				replying.Add(1)
				w.Reply(&Response{ID: req.ID, Value: big})
			}()
		}))
		gc := goodClient(t, cfg, addr)

		conn := rawConn(t, nw, addr)
		var in []byte
		for i := range 4 * inflight {
			in = append(in, requestFrame(&Request{ID: uint64(i + 1), Op: OpGet})...)
		}
		go conn.Write(in)
		sc := serverSide(t, srv, conn)
		eventually(t, "every in-flight request to be replying", func() bool { return replying.Load() >= inflight })
		stillServes(t, gc, addr)
		serverClosed(t, srv, conn) // by WriteTimeout
		stillServes(t, gc, addr)

		sc.mu.Lock()
		peak := sc.out.peak
		sc.mu.Unlock()
		if limit := outbufHigh + len(big) + 1024; peak > limit {
			t.Fatalf("the server buffered %d bytes of replies for a peer that does not read; bound %d", peak, limit)
		}
	})
}

// TestInflightLimit: more requests than MaxInflightPerConn are not
// queued. A server connection at the limit reads no further (the peer's
// writes stall), a client call waits for a slot, and other connections
// are served meanwhile.
func TestInflightLimit(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		const limit = 8
		cfg := testConfig(nw)
		cfg.MaxInflightPerConn = limit
		cfg.ConnsPerPeer = 1
		h := &held{pings: true}
		srv, addr := startServer(t, cfg, h)
		gc := goodClient(t, cfg, addr)

		// Server side: a raw peer pipelines 1,000 requests.
		conn := rawConn(t, nw, addr)
		var in []byte
		for i := range 1000 {
			in = append(in, requestFrame(&Request{ID: uint64(i + 1), Op: OpGet})...)
		}
		go conn.Write(in)
		sc := serverSide(t, srv, conn)
		eventually(t, "the read loop to block at the limit", func() bool { return sc.blocked.Load() })
		stillServes(t, gc, addr)
		if got := h.count(); got != limit {
			t.Fatalf("the handler got %d requests, want the limit %d", got, limit)
		}
		// The connection is not read while at the limit, so it notices its
		// peer hung up only once its handlers have replied (into the void).
		conn.Close()
		eventually(t, "the server to close the connection", func() bool {
			for _, r := range h.take() { // it may read a few more buffered requests first
				r.w.Reply(&Response{ID: r.req.ID})
			}
			for _, c := range srv.connsOf() {
				if c == sc {
					return false
				}
			}
			return true
		})
		for _, r := range h.take() {
			r.w.Reply(&Response{ID: r.req.ID})
		}

		// Client side: 3× the limit concurrent calls on one connection.
		c := newTestClient(t, cfg)
		const calls = 3 * limit
		errs := make(chan error, calls)
		for range calls {
			go func() {
				_, err := c.Call(context.Background(), addr, &Request{Op: OpGet})
				errs <- err
			}()
		}
		eventually(t, "the limit to be reached", func() bool { return h.count() == limit })
		cc := (*c.peers.Load())[addr].slots[0].cc.Load()
		cc.mu.Lock()
		pending := cc.pending.len()
		cc.mu.Unlock()
		if pending != limit || cc.slots.load() != limit {
			t.Fatalf("%d calls pending, %d slots taken; want the limit %d", pending, cc.slots.load(), limit)
		}
		stillServes(t, gc, addr)
		if got := h.count(); got != limit {
			t.Fatalf("the handler got %d requests, want the limit %d", got, limit)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // answer as requests come, until every call is done
			defer wg.Done()
			deadline := time.Now().Add(waitTimeout)
			for answered := 0; answered < calls && time.Now().Before(deadline); {
				for _, r := range h.take() {
					r.w.Reply(&Response{ID: r.req.ID})
					answered++
				}
				time.Sleep(time.Millisecond)
			}
		}()
		for range calls {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
	})
}

// TestMaxConnsRefusal: connections over MaxConns are closed on accept,
// which a client sees as ErrUnreachable (the node is overloaded, not
// misconfigured: with a secret too), while established ones carry on.
func TestMaxConnsRefusal(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.MaxConns = 3
		cfg.ConnsPerPeer = 1
		cfg.Secret = testSecret
		cfg.HandshakeTimeout = waitTimeout // the idle raw connections hold their slots
		srv, addr := startServer(t, cfg, echo)
		gc := goodClient(t, cfg, addr)
		idle := []net.Conn{rawConn(t, nw, addr), rawConn(t, nw, addr)}
		eventually(t, "the server to be full", func() bool { return len(srv.connsOf()) == cfg.MaxConns })

		c := newTestClient(t, cfg)
		for range 3 {
			_, err := c.Call(context.Background(), addr, &Request{Op: OpPing})
			if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrAuth) {
				t.Fatalf("call over MaxConns: %v, want ErrUnreachable", err)
			}
			stillServes(t, gc, addr)
		}
		if n := len(srv.connsOf()); n > cfg.MaxConns {
			t.Fatalf("%d connections, limit %d", n, cfg.MaxConns)
		}
		idle[0].Close()
		eventually(t, "a slot to free up", func() bool { return len(srv.connsOf()) < cfg.MaxConns })
		mustCall(t, c, addr, &Request{Op: OpPing})
	})
}
