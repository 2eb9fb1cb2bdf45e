package transport

import (
	"context"
	"errors"
	"net"
	"runtime"

	"sync"
	"testing"
	"time"
)

// testNetworks is the table every suite test runs over, hashicorp/raft
// style: the same behaviour is required of real sockets and of the
// in-memory network that node tests use.
var testNetworks = []struct {
	name string
	new  func() Network
}{
	{"tcp", func() Network { return TCPNetwork{} }},
	{"inmem", func() Network { return NewInmemNetwork() }},
}

// forEachNetwork runs fn as a subtest per network, checking for leaked
// goroutines after each.
func forEachNetwork(t *testing.T, fn func(t *testing.T, nw Network)) {
	t.Helper()
	for _, tn := range testNetworks {
		t.Run(tn.name, func(t *testing.T) {
			checkNoLeaks(t)
			fn(t, tn.new())
		})
	}
}

// waitTimeout bounds every wait for a condition in these tests. It is a
// safety net for a broken build, not a speed assertion.
const waitTimeout = 10 * time.Second

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkNoLeaks fails the test if, once its cleanups have run, more
// goroutines remain than when it started.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitTimeout)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// testConfig is DefaultConfig on nw with a generous call timeout: tests
// that want timeouts set them explicitly.
func testConfig(nw Network) Config {
	cfg := DefaultConfig()
	cfg.Network = nw
	cfg.CallTimeout = waitTimeout
	cfg.DialTimeout = waitTimeout
	return cfg
}

// startServer serves h on a fresh address of cfg.Network and closes the
// server when the test ends, checking that Serve returned ErrServerClosed.
func startServer(t testing.TB, cfg Config, h Handler) (*Server, string) {
	t.Helper()
	ln, err := cfg.Network.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, ln.Addr().String()
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo answers inline with the request's key, value and TTL reflected.
var echo = HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
	w.Reply(&Response{ID: req.ID, Value: req.Value, TTL: req.TTL, Err: req.Key, Int: req.Delta})
})

// held is a handler that keeps every request unanswered until the test
// answers it, to control timing and order.
type held struct {
	mu   sync.Mutex
	reqs []heldReq
	// reply, if set, answers ping requests inline (to probe liveness).
	pings bool
}

type heldReq struct {
	req *Request
	w   ResponseWriter
}

func (h *held) ServeRequest(_ context.Context, req *Request, w ResponseWriter) {
	if h.pings && req.Op == OpPing {
		w.Reply(&Response{ID: req.ID})
		return
	}
	h.mu.Lock()
	h.reqs = append(h.reqs, heldReq{req, w})
	h.mu.Unlock()
}

func (h *held) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reqs)
}

// take removes and returns the held requests.
func (h *held) take() []heldReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.reqs
	h.reqs = nil
	return r
}

// rawConn dials addr for tests that speak bytes directly.
func rawConn(t *testing.T, nw Network, addr string) net.Conn {
	t.Helper()
	conn, err := nw.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readUntilClosed reads from conn until the peer closes it, returning
// what arrived, or fails the test if it stays open.
func readUntilClosed(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if isTimeout(err) {
				t.Fatal("connection was not closed by the server")
			}
			return got
		}
	}
}

// readResponses reads n responses from a raw connection.
func readResponses(t *testing.T, conn net.Conn, n int) []*Response {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	fr := newFrameReader(conn, MinFrameSize)
	var out []*Response
	for range n {
		kind, body, owned, err := fr.next()
		if err != nil {
			t.Fatalf("reading response %d: %v", len(out), err)
		}
		if kind != kindResponse {
			t.Fatalf("frame kind %d", kind)
		}
		r := new(Response)
		if err := decodeResponse(body, r, owned); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// connsOf returns the server's open connections.
func (s *Server) connsOf() []*serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

func errIs(err error, targets ...error) bool {
	for _, t := range targets {
		if !errors.Is(err, t) {
			return false
		}
	}
	return err != nil
}

func mustCall(t *testing.T, c *Client, addr string, req *Request) *Response {
	t.Helper()
	resp, err := c.Call(context.Background(), addr, req)
	if err != nil {
		t.Fatalf("call %v: %v", req.Op, err)
	}
	return resp
}

// pingFrames returns n ping request frames, IDs 1 to n, back to back.
func pingFrames(n int) []byte {
	var in []byte
	for i := range n {
		in = append(in, requestFrame(&Request{ID: uint64(i + 1), Op: OpPing})...)
	}
	return in
}

// inOrder fails the test unless resps answer IDs 1, 2, ... in order.
func inOrder(t *testing.T, resps []*Response) {
	t.Helper()
	for i, r := range resps {
		if r.ID != uint64(i+1) {
			t.Fatalf("reply %d has ID %d", i, r.ID)
		}
	}
}

// dialPool dials every connection of c's pool to addr, as sustained load
// would (one caller at a time keeps to the first connection: see
// spillAt).
func dialPool(t testing.TB, c *Client, addr string) {
	t.Helper()
	p, err := c.peer(addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.slots {
		s := &p.slots[i]
		if cc := s.cc.Load(); cc != nil && !cc.broken.Load() {
			continue
		}
		ds, err := p.startDial(s)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ds.done:
			if ds.err != nil {
				t.Fatalf("dial %s: %v", addr, ds.err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("dial %s: no answer in %v", addr, waitTimeout)
		}
	}
}
