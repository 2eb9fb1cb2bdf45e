package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		_, addr := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		for _, size := range []int{0, 1, 100, bufferSize, maxValueSize} {
			val := bytes.Repeat([]byte{'x'}, size)
			req := &Request{Op: OpSet, Key: "k", Value: val, TTL: 1234, Delta: -7}
			resp := mustCall(t, c, addr, req)
			if req.ID == 0 || resp.ID != req.ID {
				t.Fatalf("ids: request %d, response %d", req.ID, resp.ID)
			}
			if !bytes.Equal(resp.Value, val) || resp.TTL != 1234 || resp.Err != "k" || resp.Int != -7 {
				t.Fatalf("size %d: bad echo %+v", size, resp)
			}
		}
		// Application errors travel in the Response, not the error.
		_, addr2 := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			w.Reply(&Response{ID: req.ID, Code: CodeOf(ErrNotFound), Err: "key k",
				Members: []Member{{Name: "n1", DataAddr: "d"}}, Stats: &Stats{Hits: 3}})
		}))
		resp := mustCall(t, c, addr2, &Request{Op: OpGet, Key: "k"})
		if !errors.Is(resp.Error(), ErrNotFound) || resp.Members[0].Name != "n1" || resp.Stats.Hits != 3 {
			t.Fatalf("error response: %+v", resp)
		}
	})
}

// TestManyInflightOutOfOrder puts 1,000 requests in flight on one
// connection and answers them asynchronously in random order.
func TestManyInflightOutOfOrder(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		const n = 1000
		cfg := testConfig(nw)
		cfg.ConnsPerPeer = 1
		cfg.MaxInflightPerConn = n
		h := &held{}
		srv, addr := startServer(t, cfg, h)
		c := newTestClient(t, cfg)

		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("key-%d", i)
				resp, err := c.Call(context.Background(), addr, &Request{Op: OpGet, Key: key})
				switch {
				case err != nil:
					errs <- err
				case string(resp.Value) != key:
					errs <- fmt.Errorf("call for %s got the reply for %s", key, resp.Value)
				}
			}()
		}
		eventually(t, "all requests to arrive", func() bool { return h.count() == n })
		if got := len(srv.connsOf()); got != 1 {
			t.Fatalf("%d connections, want 1", got)
		}
		reqs := h.take()
		rng := rand.New(rand.NewPCG(1, 2))
		rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
		var rwg sync.WaitGroup
		for part := range 4 { // four goroutines answer concurrently
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				for i := part; i < len(reqs); i += 4 {
					r := reqs[i]
					r.w.Reply(&Response{ID: r.req.ID, Value: []byte(r.req.Key)})
				}
			}()
		}
		rwg.Wait()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestPeerClosesMidRequest: when the server goes away, every pending call
// fails at once with ErrConnLost (which is ErrUnreachable), and the next
// call dials afresh.
func TestPeerClosesMidRequest(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.CallTimeout = time.Hour // a hang would show as a test timeout
		h := &held{}
		ln, err := nw.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		srv, err := NewServer(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		c := newTestClient(t, cfg)

		const n = 10
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := c.Call(context.Background(), addr, &Request{Op: OpGet, Key: "k"})
				errs <- err
			}()
		}
		eventually(t, "requests to arrive", func() bool { return h.count() == n })
		srv.Close()
		for range n {
			if err := <-errs; !errIs(err, ErrConnLost, ErrUnreachable) {
				t.Fatalf("pending call: err = %v, want ErrConnLost", err)
			}
		}
		// The peer is gone: a new call fails to dial, also as unreachable.
		if _, err := c.Call(context.Background(), addr, &Request{Op: OpPing}); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("call after the peer died: %v", err)
		}
		// It comes back on the same address: calls work again.
		ln2, err := nw.Listen(addr)
		if err != nil {
			t.Skipf("cannot re-listen on %s: %v", addr, err)
		}
		srv2, err := NewServer(cfg, echo)
		if err != nil {
			t.Fatal(err)
		}
		go srv2.Serve(ln2)
		defer srv2.Close()
		mustCall(t, c, addr, &Request{Op: OpPing})
	})
}

func TestDialClosedPortUnreachable(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		ln, err := nw.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg := testConfig(nw)
		c := newTestClient(t, cfg)
		for range 3 {
			_, err := c.Call(context.Background(), addr, &Request{Op: OpPing})
			if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrTimeout) {
				t.Fatalf("err = %v, want ErrUnreachable (refused, not a timeout)", err)
			}
		}
		resps, err := c.CallBatch(context.Background(), addr, []*Request{{Op: OpPing}, {Op: OpPing}})
		if !errors.Is(err, ErrUnreachable) || resps[0] != nil || resps[1] != nil {
			t.Fatalf("batch: %v, %v", resps, err)
		}
	})
}

// TestOversizedFrames: too-large frames are refused in both directions and
// cost only the connection that carried them.
func TestOversizedFrames(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.MaxFrameSize = MinFrameSize
		srv, addr := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			if req.Op == OpGet { // a reply too large to send
				w.Reply(&Response{ID: req.ID, Value: make([]byte, MinFrameSize+1)})
				return
			}
			echo(context.Background(), req, w)
		}))
		c := newTestClient(t, cfg)

		// Client -> server, raw: a header claiming 4 GiB closes the connection.
		conn := rawConn(t, nw, addr)
		go conn.Write([]byte{0xff, 0xff, 0xff, 0xff, byte(kindRequest), 1, 2, 3})
		readUntilClosed(t, conn)

		// Client -> server via Client: refused before sending.
		_, err := c.Call(context.Background(), addr, &Request{Op: OpSet, Key: "k", Value: make([]byte, MinFrameSize+1)})
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("oversized request: %v", err)
		}
		_, err = c.CallBatch(context.Background(), addr, []*Request{{Op: OpPing}, {Op: OpSet, Value: make([]byte, MinFrameSize+1)}})
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("oversized request in batch: %v", err)
		}
		// Just under the limit once encoded, but over it: refused too.
		_, err = c.Call(context.Background(), addr, &Request{Op: OpSet, Key: "k", Value: make([]byte, MinFrameSize-5)})
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("request over the limit once encoded: %v", err)
		}
		// Server -> client: a reply too large is replaced by an error.
		resp := mustCall(t, c, addr, &Request{Op: OpGet, Key: "k"})
		if resp.Code != CodeTooLarge {
			t.Fatalf("oversized reply: %+v", resp)
		}
		// The server still serves everyone.
		if r := mustCall(t, c, addr, &Request{Op: OpSet, Key: "k", Value: []byte("v")}); string(r.Value) != "v" {
			t.Fatalf("echo after oversized frames: %+v", r)
		}
		eventually(t, "the bad connection to close", func() bool { return len(srv.connsOf()) <= cfg.ConnsPerPeer })

		// Server -> client, raw fake server announcing a 4 GiB reply.
		fake, err := nw.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer fake.Close()
		fakeDone := make(chan struct{})
		go func() {
			defer close(fakeDone)
			conn, err := fake.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			buf := make([]byte, 64)
			conn.Read(buf)
			conn.Write([]byte{0xff, 0xff, 0xff, 0xff, byte(kindResponse)})
			conn.Read(buf) // until the client hangs up
		}()
		_, err = c.Call(context.Background(), fake.Addr().String(), &Request{Op: OpPing})
		if !errIs(err, ErrFrameTooLarge, ErrConnLost) {
			t.Fatalf("oversized reply header: %v", err)
		}
		<-fakeDone
	})
}

// TestBadInput: garbage closes only its own connection; a well-framed
// request that cannot be decoded, or a frame of an unknown kind, is
// answered with CodeBadRequest when its ID can be read.
func TestBadInput(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		_, addr := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		mustCall(t, c, addr, &Request{Op: OpPing})

		garbage := [][]byte{
			[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
			{0, 0, 0, 4, 0, 1, 2, 3, 4}, // kind 0
			frame(kindRequest, []byte{0xc1, 0xc1}),
			frame(kindRequest, nil),
			frame(kindResponse, appendResponse(nil, &Response{})),
		}
		for i, g := range garbage {
			conn := rawConn(t, nw, addr)
			go conn.Write(g)
			if got := readUntilClosed(t, conn); len(got) != 0 {
				t.Fatalf("garbage %d: server sent %q before closing", i, got)
			}
			mustCall(t, c, addr, &Request{Op: OpPing})
		}

		conn := rawConn(t, nw, addr)
		var in []byte
		in = append(in, frame(kindRequest, []byte{0x82, 0xa1, 'i', 0x07, 0xa1, 'o', mpStr8})...) // truncated after the ID
		in = append(in, frame(9, appendRequest(nil, &Request{ID: 8}))...)                        // a kind from the future
		in = append(in, requestFrame(&Request{ID: 9, Op: OpSet, Key: "still here"})...)
		go conn.Write(in)
		resps := readResponses(t, conn, 3)
		if resps[0].ID != 7 || resps[0].Code != CodeBadRequest || !errors.Is(resps[0].Error(), ErrBadRequest) {
			t.Fatalf("undecodable request: %+v", resps[0])
		}
		if resps[1].ID != 8 || resps[1].Code != CodeBadRequest {
			t.Fatalf("unknown kind: %+v", resps[1])
		}
		if resps[2].ID != 9 || resps[2].Err != "still here" {
			t.Fatalf("request after bad ones: %+v", resps[2])
		}
	})
}

func TestContextDeadline(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		h := &held{pings: true}
		_, addr := startServer(t, cfg, h)
		c := newTestClient(t, cfg)

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Call(ctx, addr, &Request{Op: OpGet})
		if !errIs(err, ErrTimeout, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
			t.Fatalf("ctx deadline: err = %v", err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("timeout is not a net.Error with Timeout(): %v", err)
		}

		ctx, cancel = context.WithCancel(context.Background())
		go func() {
			eventually(t, "the request to arrive", func() bool { return h.count() == 2 })
			cancel()
		}()
		if _, err := c.Call(ctx, addr, &Request{Op: OpGet}); !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("cancelled ctx: err = %v", err)
		}

		// No deadline in ctx: Config.CallTimeout applies.
		cfg2 := cfg
		cfg2.CallTimeout = 20 * time.Millisecond
		c2 := newTestClient(t, cfg2)
		if _, err := c2.Call(context.Background(), addr, &Request{Op: OpGet}); !errIs(err, ErrTimeout, context.DeadlineExceeded) {
			t.Fatalf("CallTimeout: err = %v", err)
		}
		if _, err := c2.CallBatch(context.Background(), addr, []*Request{{Op: OpPing}, {Op: OpGet}, {Op: OpGet}}); !errors.Is(err, ErrTimeout) {
			t.Fatalf("CallTimeout in batch: err = %v", err)
		}

		// Late replies to abandoned calls are dropped and the connections
		// keep working.
		for _, r := range h.take() {
			r.w.Reply(&Response{ID: r.req.ID})
		}
		mustCall(t, c, addr, &Request{Op: OpPing})
		mustCall(t, c2, addr, &Request{Op: OpPing})
	})
}

func TestCallBatch(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.MaxInflightPerConn = 8 // smaller than the batch: it must flow through
		var inline, async atomic.Int64
		_, addr := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			resp := &Response{ID: req.ID, Value: []byte(req.Key)}
			if req.TTL%3 == 0 {
				async.Add(1)
				go w.Reply(resp)
				return
			}
			inline.Add(1)
			w.Reply(resp)
		}))
		c := newTestClient(t, cfg)
		reqs := make([]*Request, 50)
		for i := range reqs {
			reqs[i] = &Request{Op: OpGet, Key: fmt.Sprint("k", i), TTL: int64(i)}
		}
		resps, err := c.CallBatch(context.Background(), addr, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range resps {
			if r == nil || string(r.Value) != reqs[i].Key || r.ID != reqs[i].ID {
				t.Fatalf("resps[%d] = %+v for %+v", i, r, reqs[i])
			}
		}
		if inline.Load() == 0 || async.Load() == 0 {
			t.Fatalf("handler paths: %d inline, %d async", inline.Load(), async.Load())
		}
		if resps, err := c.CallBatch(context.Background(), addr, nil); err != nil || len(resps) != 0 {
			t.Fatalf("empty batch: %v, %v", resps, err)
		}
	})
}

// TestShutdownWithInflight: Shutdown stops accepting, lets in-flight
// requests finish, and only then closes the connections.
func TestShutdownWithInflight(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		h := &held{}
		ln, err := nw.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		srv, err := NewServer(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		c := newTestClient(t, cfg)

		const n = 5
		results := make(chan error, n)
		for i := range n {
			go func() {
				resp, err := c.Call(context.Background(), addr, &Request{Op: OpGet, Key: fmt.Sprint(i)})
				if err == nil && string(resp.Value) != fmt.Sprint(i) {
					err = fmt.Errorf("wrong reply %q", resp.Value)
				}
				results <- err
			}()
		}
		eventually(t, "requests to arrive", func() bool { return h.count() == n })

		shut := make(chan error, 1)
		go func() { shut <- srv.Shutdown(context.Background()) }()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		// Not accepting any more...
		if conn, err := nw.Dial(context.Background(), addr); err == nil {
			conn.Close()
			t.Fatal("dial succeeded after Shutdown began")
		}
		// ...but still waiting for the in-flight requests.
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with requests in flight", err)
		default:
		}
		for _, r := range h.take() {
			go r.w.Reply(&Response{ID: r.req.ID, Value: []byte(r.req.Key)})
		}
		for range n {
			if err := <-results; err != nil {
				t.Fatalf("in-flight call during Shutdown: %v", err)
			}
		}
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
		if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	})
}

// TestShutdownDeadline: requests that never finish cannot hold Shutdown
// past its context; their callers learn the connection was lost.
func TestShutdownDeadline(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		h := &held{}
		ln, err := nw.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := NewServer(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		c := newTestClient(t, cfg)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Call(context.Background(), ln.Addr().String(), &Request{Op: OpGet})
			errc <- err
		}()
		eventually(t, "the request to arrive", func() bool { return h.count() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrConnLost) {
			t.Fatalf("call cut by Shutdown: %v", err)
		}
		// A reply after the fact goes nowhere and does no harm.
		for _, r := range h.take() {
			r.w.Reply(&Response{ID: r.req.ID})
		}
		srv.Close()
	})
}

// TestBackpressure: a connection at its in-flight limit is not read any
// further, so a handler that never replies bounds what one peer can queue.
func TestBackpressure(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		const limit = 8
		cfg := testConfig(nw)
		cfg.MaxInflightPerConn = limit
		h := &held{}
		srv, addr := startServer(t, cfg, h)

		conn := rawConn(t, nw, addr)
		var in []byte
		for i := range 100 {
			in = append(in, requestFrame(&Request{ID: uint64(i + 1), Op: OpGet})...)
		}
		go conn.Write(in) // with net.Pipe this blocks until read; fine
		var sc *serverConn
		eventually(t, "the read loop to block at the limit", func() bool {
			conns := srv.connsOf()
			if len(conns) != 1 {
				return false
			}
			sc = conns[0]
			return sc.blocked.Load()
		})
		if got := h.count(); got != limit {
			t.Fatalf("handler got %d requests, want the limit %d", got, limit)
		}
		// One reply frees one slot: exactly one more request is read. (The
		// reply is sent from another goroutine: on an unbuffered pipe the
		// write completes only as this test reads it.)
		first := h.take()
		go first[0].w.Reply(&Response{ID: first[0].req.ID})
		if r := readResponses(t, conn, 1); r[0].ID != 1 {
			t.Fatalf("reply %+v", r[0])
		}
		eventually(t, "the next request", func() bool { return h.count() == 1 && sc.blocked.Load() })
		if got := sc.inflight.Load(); got != limit {
			t.Fatalf("in flight = %d, want %d", got, limit)
		}
	})
}

// TestIdleTimeout: the server closes a connection nobody uses, the client
// retires its own before that, and calls keep working.
func TestIdleTimeout(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.IdleTimeout = 50 * time.Millisecond
		srv, addr := startServer(t, cfg, echo)
		conn := rawConn(t, nw, addr)
		readUntilClosed(t, conn)

		c := newTestClient(t, cfg)
		mustCall(t, c, addr, &Request{Op: OpPing})
		eventually(t, "idle connections to close", func() bool { return len(srv.connsOf()) == 0 })
		for range 3 {
			mustCall(t, c, addr, &Request{Op: OpPing})
		}
	})
}

// TestWriteTimeout: a peer that sends requests but never reads replies is
// disconnected after WriteTimeout instead of pinning buffers.
func TestWriteTimeout(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.WriteTimeout = 50 * time.Millisecond
		big := make([]byte, maxValueSize)
		srv, addr := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			w.Reply(&Response{ID: req.ID, Value: big})
		}))
		conn := rawConn(t, nw, addr)
		var in []byte
		for i := range 64 { // 64 MiB of replies: more than any socket buffer
			in = append(in, requestFrame(&Request{ID: uint64(i + 1), Op: OpGet})...)
		}
		go conn.Write(in)
		eventually(t, "the server to drop the connection", func() bool { return len(srv.connsOf()) == 0 })
	})
}

func TestMaxConns(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.MaxConns = 1
		srv, addr := startServer(t, cfg, echo)
		first := rawConn(t, nw, addr)
		go first.Write(requestFrame(&Request{ID: 1, Op: OpPing}))
		readResponses(t, first, 1)
		second := rawConn(t, nw, addr)
		readUntilClosed(t, second)
		first.Close()
		eventually(t, "the first connection to go", func() bool { return len(srv.connsOf()) == 0 })
		third := rawConn(t, nw, addr)
		go third.Write(requestFrame(&Request{ID: 3, Op: OpPing}))
		readResponses(t, third, 1)
	})
}

// Callers that meet a new address at once share one pool for it, whoever
// creates it, and none is handed out, old or new, after Close.
func TestPeerLookupSharesOnePoolAndStopsAtClose(t *testing.T) {
	c, err := NewClient(testConfig(TCPNetwork{}))
	if err != nil {
		t.Fatal(err)
	}
	const callers, addrs = 16, 8
	got := make([][addrs]*peer, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			for j := range addrs {
				k := (i + j) % addrs // callers meet the addresses in different orders
				p, err := c.peer(fmt.Sprintf("127.0.0.1:%d", 1+k))
				if err != nil {
					t.Error(err)
					return
				}
				got[i][k] = p
			}
		})
	}
	wg.Wait()
	for i := range callers {
		if got[i] != got[0] {
			t.Fatalf("caller %d got other pools than caller 0: %v, %v", i, got[i], got[0])
		}
	}
	if n := len(*c.peers.Load()); n != addrs {
		t.Fatalf("%d pools for %d addresses", n, addrs)
	}
	// Two callers that both missed an address in the map get to addPeer
	// one after the other (the race above makes that happen only
	// sometimes): the second must find the first's pool.
	first, err := c.addPeer("127.0.0.1:100")
	if err != nil {
		t.Fatal(err)
	}
	if second, err := c.addPeer("127.0.0.1:100"); second != first || err != nil {
		t.Fatalf("a second caller that missed the address: %p, %v; want the first's pool %p", second, err, first)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"127.0.0.1:1", "127.0.0.1:9999"} { // known, new
		if p, err := c.peer(addr); p != nil || !errors.Is(err, ErrClosed) {
			t.Fatalf("peer(%s) after Close: %v, %v; want ErrClosed", addr, p, err)
		}
	}
	if p, err := c.addPeer("127.0.0.1:9999"); p != nil || !errors.Is(err, ErrClosed) {
		t.Fatalf("addPeer after Close: %v, %v; want ErrClosed", p, err)
	}
	if n := len(*c.peers.Load()); n != addrs+1 {
		t.Fatalf("%d pools after Close, want the %d from before", n, addrs+1)
	}
}

func TestClientClose(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		h := &held{}
		_, addr := startServer(t, cfg, h)
		c, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := c.Call(context.Background(), addr, &Request{Op: OpGet})
			errc <- err
		}()
		eventually(t, "the request to arrive", func() bool { return h.count() == 1 })
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("pending call: %v", err)
		}
		if _, err := c.Call(context.Background(), addr, &Request{Op: OpPing}); !errors.Is(err, ErrClosed) {
			t.Fatalf("call after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// TestConcurrentMixed runs callers, batches, timeouts and a server restart
// together, mainly for the race detector.
func TestConcurrentMixed(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.MaxInflightPerConn = 16
		_, addr := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			resp := &Response{ID: req.ID, Value: req.Value}
			if req.TTL%2 == 1 {
				go w.Reply(resp)
				return
			}
			w.Reply(resp)
		}))
		c := newTestClient(t, cfg)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					val := []byte(fmt.Sprint(g, "/", i))
					if i%10 == 0 {
						reqs := []*Request{{Op: OpGet, Value: val, TTL: 1}, {Op: OpGet, Value: val}}
						resps, err := c.CallBatch(context.Background(), addr, reqs)
						if err != nil || !bytes.Equal(resps[0].Value, val) || !bytes.Equal(resps[1].Value, val) {
							t.Errorf("batch: %v %v", resps, err)
							return
						}
						continue
					}
					resp, err := c.Call(context.Background(), addr, &Request{Op: OpGet, Value: val, TTL: int64(i)})
					if err != nil || !bytes.Equal(resp.Value, val) {
						t.Errorf("call: %v %v", resp, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
}

// TestInmemFaults exercises the in-memory network's fault injection the
// way node tests use it: a disconnected peer is unreachable (pending calls
// fail, dials are refused), and reachable again after Reconnect.
func TestInmemFaults(t *testing.T) {
	checkNoLeaks(t)
	nw := NewInmemNetwork()
	cfg := testConfig(nw)
	h := &held{pings: true}
	_, addr := startServer(t, cfg, h)
	c := newTestClient(t, cfg)
	mustCall(t, c, addr, &Request{Op: OpPing})

	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), addr, &Request{Op: OpGet})
		errc <- err
	}()
	eventually(t, "the request to arrive", func() bool { return h.count() == 1 })
	nw.Disconnect(addr)
	if err := <-errc; !errIs(err, ErrConnLost, ErrUnreachable) {
		t.Fatalf("pending call on disconnect: %v", err)
	}
	if _, err := c.Call(context.Background(), addr, &Request{Op: OpPing}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call while disconnected: %v", err)
	}
	if nw.Conns(addr) != 0 {
		t.Fatalf("%d connections left after Disconnect", nw.Conns(addr))
	}
	nw.Reconnect(addr)
	mustCall(t, c, addr, &Request{Op: OpPing})
	h.take()

	if _, err := nw.Listen(addr); err == nil {
		t.Fatal("second listener on one address")
	}
	if _, err := nw.Listen("no-port"); err == nil {
		t.Fatal("listen on an address without a port")
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Config){
		func(c *Config) { c.MaxFrameSize = maxValueSize },
		func(c *Config) { c.MaxFrameSize = 2 << 30 },
		func(c *Config) { c.DialTimeout = 0 },
		func(c *Config) { c.CallTimeout = -1 },
		func(c *Config) { c.ConnsPerPeer = 0 },
		func(c *Config) { c.IdleTimeout = 0 },
		func(c *Config) { c.WriteTimeout = 0 },
		func(c *Config) { c.MaxConns = 0 },
		func(c *Config) { c.MaxInflightPerConn = 0 },
		func(c *Config) { c.HandshakeTimeout = 0 },
		func(c *Config) { c.Secret = []byte("short") },
	}
	for i, mod := range bad {
		cfg := DefaultConfig()
		mod(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("case %d: Validate = %v", i, err)
		}
		if _, err := NewClient(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("case %d: NewClient = %v", i, err)
		}
		if _, err := NewServer(cfg, echo); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("case %d: NewServer = %v", i, err)
		}
	}
	if _, err := NewServer(good, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil handler: %v", err)
	}
	// A nil Network means TCP, a nil Logger discards.
	good.Network = nil
	if c, err := NewClient(good); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
}

func TestErrorsClassify(t *testing.T) {
	if !errors.Is(ErrConnLost, ErrUnreachable) {
		t.Error("ErrConnLost is not ErrUnreachable")
	}
	if !errors.Is(ErrTimeout, context.DeadlineExceeded) || errors.Is(ErrTimeout, ErrUnreachable) {
		t.Error("ErrTimeout classification")
	}
}

// TestDialTimeout: a peer that never accepts is unreachable after
// DialTimeout, while a caller whose own deadline is shorter gets ErrTimeout.
// (In-memory only: real TCP cannot black-hole a loopback dial.)
func TestDialTimeout(t *testing.T) {
	checkNoLeaks(t)
	nw := NewInmemNetwork()
	ln, err := nw.Listen("127.0.0.1:0") // nobody calls Accept
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(nw)
	cfg.DialTimeout = 20 * time.Millisecond
	c := newTestClient(t, cfg)
	_, err = c.Call(context.Background(), ln.Addr().String(), &Request{Op: OpPing})
	if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrTimeout) {
		t.Fatalf("dial timeout: %v", err)
	}

	cfg.DialTimeout = waitTimeout
	c2 := newTestClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = c2.Call(ctx, ln.Addr().String(), &Request{Op: OpPing})
	if !errIs(err, ErrTimeout, context.DeadlineExceeded) {
		t.Fatalf("caller deadline during dial: %v", err)
	}
	ln.Close() // ends the dial still in progress
}

// TestHandlerContext: the context a handler gets ends when its connection
// does, so a handler waiting on a peer can give up.
func TestHandlerContext(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		ctxs := make(chan context.Context, 1)
		_, addr := startServer(t, cfg, HandlerFunc(func(ctx context.Context, req *Request, w ResponseWriter) {
			ctxs <- ctx
			go func() {
				<-ctx.Done()
				w.Reply(&Response{ID: req.ID}) // dropped: the connection is gone
			}()
		}))
		c := newTestClient(t, cfg)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Call(context.Background(), addr, &Request{Op: OpGet})
			errc <- err
		}()
		ctx := <-ctxs
		if ctx.Err() != nil {
			t.Fatal("handler context ended early")
		}
		c.Close()
		<-ctx.Done()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("call: %v", err)
		}
	})
}

// countingNetwork wraps a Network to count writes, optionally holding the
// first client write until gate is closed.
type countingNetwork struct {
	Network
	clientWrites atomic.Int64
	serverWrites atomic.Int64
	gate         chan struct{} // nil: no gate
	gated        chan struct{} // closed when the first client write is held
	once         sync.Once
}

type countingConn struct {
	net.Conn
	n      *countingNetwork
	client bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	if !c.client {
		c.n.serverWrites.Add(1)
		return c.Conn.Write(b)
	}
	if c.n.clientWrites.Add(1) == 1 && c.n.gate != nil {
		c.n.once.Do(func() { close(c.n.gated) })
		<-c.n.gate
	}
	return c.Conn.Write(b)
}

type countingListener struct {
	net.Listener
	n *countingNetwork
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, n: l.n}, nil
}

func (n *countingNetwork) Listen(addr string) (net.Listener, error) {
	ln, err := n.Network.Listen(addr)
	if err != nil {
		return nil, err
	}
	return countingListener{ln, n}, nil
}

func (n *countingNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := n.Network.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, n: n, client: true}, nil
}

// TestClientWritesCoalesce: requests that pile up while a write is in
// progress leave together in the next write.
func TestClientWritesCoalesce(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cn := &countingNetwork{Network: nw, gate: make(chan struct{}), gated: make(chan struct{})}
		cfg := testConfig(cn)
		cfg.ConnsPerPeer = 1
		_, addr := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		const n = 10
		errs := make(chan error, n)
		call := func() {
			_, err := c.Call(context.Background(), addr, &Request{Op: OpPing})
			errs <- err
		}
		go call()
		<-cn.gated // the first request is stuck inside Write
		for range n - 1 {
			go call()
		}
		cc := (*c.peers.Load())[addr].slots[0].cc.Load()
		eventually(t, "all requests to be queued", func() bool {
			cc.mu.Lock()
			defer cc.mu.Unlock()
			return cc.pending.len() == n
		})
		close(cn.gate)
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if got := cn.clientWrites.Load(); got != 2 {
			t.Fatalf("%d client writes for %d requests, want 2 (one held, then one for the other %d)", got, n, n-1)
		}
	})
}

// TestServerRepliesBatch: replies to requests that arrived together leave
// in one write. (In-memory only, where one write is one read; TCP may
// split it.)
func TestServerRepliesBatch(t *testing.T) {
	checkNoLeaks(t)
	cn := &countingNetwork{Network: NewInmemNetwork()}
	cfg := testConfig(cn)
	_, addr := startServer(t, cfg, echo)
	conn := rawConn(t, cn.Network, addr)
	in := pingFrames(20)
	go conn.Write(in)
	inOrder(t, readResponses(t, conn, 20))
	if got := cn.serverWrites.Load(); got != 1 {
		t.Fatalf("%d server writes for 20 pipelined requests, want 1", got)
	}
}

// TestCallBatchTimeoutWhileWaitingForSlots: a batch larger than the
// in-flight limit, to a peer that never replies, ends at CallTimeout even
// though the deadline passes while it waits for a slot.
func TestCallBatchTimeoutWhileWaitingForSlots(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.MaxInflightPerConn = 4
		h := &held{}
		_, addr := startServer(t, cfg, h)
		cfg.CallTimeout = 30 * time.Millisecond
		c := newTestClient(t, cfg)
		reqs := make([]*Request, 10)
		for i := range reqs {
			reqs[i] = &Request{Op: OpGet}
		}
		resps, err := c.CallBatch(context.Background(), addr, reqs)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
		for i, r := range resps {
			if r != nil {
				t.Fatalf("resps[%d] = %+v", i, r)
			}
		}
		eventually(t, "the sent requests to arrive", func() bool { return h.count() == 4 })
		for _, r := range h.take() {
			r.w.Reply(&Response{ID: r.req.ID})
		}
	})
}

// TestServerReplyAllOneWrite: a handler answering a batch later, from its
// own goroutine, with ReplyAll sends every reply in one write, and the
// in-flight count drops by the whole batch (the connection reads on).
func TestServerReplyAllOneWrite(t *testing.T) {
	checkNoLeaks(t)
	cn := &countingNetwork{Network: NewInmemNetwork()}
	cfg := testConfig(cn)
	cfg.MaxInflightPerConn = 20
	h := &held{}
	_, addr := startServer(t, cfg, h)
	conn := rawConn(t, cn.Network, addr)
	in := pingFrames(20)
	go conn.Write(in)
	eventually(t, "all 20 requests to reach the handler", func() bool { return h.count() == 20 })
	before := cn.serverWrites.Load()
	held := h.take()
	resps := make([]*Response, len(held))
	for i, r := range held {
		resps[i] = &Response{ID: r.req.ID}
	}
	go held[0].w.ReplyAll(resps) // in-memory writes wait for the reader
	inOrder(t, readResponses(t, conn, 20))
	if w := cn.serverWrites.Load() - before; w != 1 {
		t.Fatalf("%d server writes for a ReplyAll of 20, want 1", w)
	}
	// The slots came back: 20 more requests are read and served.
	go conn.Write(in)
	eventually(t, "20 more requests to reach the handler", func() bool { return h.count() == 20 })
	go func() {
		for _, r := range h.take() {
			r.w.Reply(&Response{ID: r.req.ID})
		}
	}()
	readResponses(t, conn, 20)
}

// stallNetwork is a Network whose dials to one address hang until their
// context ends, like a peer that drops SYNs.
type stallNetwork struct {
	Network
	stalled string
}

func (n stallNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if addr == n.stalled {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return n.Network.Dial(ctx, addr)
}

// TestStartDoesNotBlockOnSlowPeer: Start returns at once even when the
// peer has no connection yet and dialling it hangs, so a flight started
// after it to a healthy peer is answered promptly, and the stalled one
// fails on its own deadline.
func TestStartDoesNotBlockOnSlowPeer(t *testing.T) {
	checkNoLeaks(t)
	inner := NewInmemNetwork()
	cfg := testConfig(inner)
	_, good := startServer(t, cfg, echo)
	cfg.Network = stallNetwork{Network: inner, stalled: "10.9.9.9:1"}
	cfg.DialTimeout = 2 * time.Second
	c := newTestClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	mk := func() []*Request { return []*Request{{Op: OpPing}, {Op: OpPing}} }
	begin := time.Now()
	slow := c.Start(ctx, "10.9.9.9:1", mk())
	fast := c.Start(ctx, good, mk())
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Fatalf("starting two flights took %v: Start waited for the stalled dial", d)
	}
	resps, err := fast.Wait()
	if err != nil {
		t.Fatalf("healthy peer: %v", err)
	}
	for i, r := range resps {
		if r == nil || r.Code != CodeOK {
			t.Fatalf("healthy peer reply %d: %+v", i, r)
		}
	}
	if d := time.Since(begin); d > 250*time.Millisecond {
		t.Fatalf("healthy peer answered after %v", d)
	}
	resps, err = slow.Wait()
	if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrUnreachable) {
		t.Fatalf("stalled peer: err = %v", err)
	}
	for i, r := range resps {
		if r != nil {
			t.Fatalf("stalled peer reply %d: %+v", i, r)
		}
	}
}

// TestPoolFillsOneConnectionThenSpills: callers one at a time share the
// first connection (the server sees one); once a connection is full
// (spillAt requests in flight, or its in-flight limit if lower) the next
// request opens the second, and with both past that the less loaded takes
// the next. Every held request is answered.
func TestPoolFillsOneConnectionThenSpills(t *testing.T) {
	for _, limit := range []int{DefaultConfig().MaxInflightPerConn, 4} {
		spill := min(spillAt, limit)
		t.Run(fmt.Sprintf("inflight%d", limit), func(t *testing.T) {
			forEachNetwork(t, func(t *testing.T, nw Network) {
				cfg := testConfig(nw)
				cfg.ConnsPerPeer = 2
				cfg.MaxInflightPerConn = limit
				release := make(chan struct{})
				arrived := make(chan *serverConn, 4*spillAt)
				srv, addr := startServer(t, cfg, HandlerFunc(func(ctx context.Context, req *Request, w ResponseWriter) {
					if req.Op != OpGet {
						echo(ctx, req, w)
						return
					}
					arrived <- w.(*serverConn)
					go func() {
						<-release
						echo(ctx, req, w)
					}()
				}))
				c := newTestClient(t, cfg)
				for range 10 {
					mustCall(t, c, addr, &Request{Op: OpPing})
				}
				if n := len(srv.connsOf()); n != 1 {
					t.Fatalf("one caller at a time: %d server connections, want 1", n)
				}

				// Held requests, each sent once the one before has arrived,
				// so the client sees every earlier one in flight when it
				// chooses.
				var wg sync.WaitGroup
				perConn := map[*serverConn]int{}
				hold := func(k int) {
					for range k {
						wg.Go(func() {
							if resp, err := c.Call(context.Background(), addr, &Request{Op: OpGet, Key: "held"}); err != nil || resp.Err != "held" {
								t.Errorf("held call: %+v, %v", resp, err)
							}
						})
						select {
						case sc := <-arrived:
							perConn[sc]++
						case <-time.After(waitTimeout):
							t.Fatalf("held request %d never reached the server (%v so far)", len(perConn), perConn)
						}
					}
				}
				defer func() {
					close(release)
					wg.Wait()
				}()
				hold(spill)
				if len(perConn) != 1 {
					t.Fatalf("%d requests in flight spread over %d connections, want 1", spill, len(perConn))
				}
				// The next starts the second connection's dial; it goes on
				// the first meanwhile if that still has room.
				hold(1)
				p, err := c.peer(addr)
				if err != nil {
					t.Fatal(err)
				}
				eventually(t, "the second connection to be dialled", func() bool {
					return p.slots[0].cc.Load() != nil && p.slots[1].cc.Load() != nil
				})
				first, second := spill+1, 0
				if spill == limit { // the first was full: it went on the second
					first, second = spill, 1
				}
				hold(spill - second) // the second fills up to the same point
				loads := func() (a, b int) {
					for _, n := range perConn {
						if n > a {
							a, b = n, a
						} else {
							b = max(b, n)
						}
					}
					return a, b
				}
				if a, b := loads(); len(perConn) != 2 || a != first || b != spill {
					t.Fatalf("%d connections carry %d and %d requests, want 2 carrying %d and %d", len(perConn), a, b, first, spill)
				}
				if spill == limit {
					return // both full: further calls wait for room
				}
				hold(10) // past spillAt on both, the less loaded takes the next
				if a, b := loads(); a-b > 1 || a+b != first+spill+10 {
					t.Errorf("connections carry %d and %d requests: want the 10 more spread evenly", a, b)
				}
			})
		})
	}
}

// refusingNetwork lets the first dial through and refuses the rest.
type refusingNetwork struct {
	Network
	dials atomic.Int64
}

func (n *refusingNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if n.dials.Add(1) > 1 {
		return nil, errors.New("refused by the test")
	}
	return n.Network.Dial(ctx, addr)
}

// TestPoolGrowthFailureKeepsTheBusyConnection: when the first connection
// is past spillAt but has room, a failed dial for the second costs no
// call an error or a wait, and is not retried for every request.
func TestPoolGrowthFailureKeepsTheBusyConnection(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		rn := &refusingNetwork{Network: nw}
		cfg := testConfig(rn)
		cfg.ConnsPerPeer = 2
		release := make(chan struct{})
		arrived := make(chan struct{}, 4*spillAt)
		_, addr := startServer(t, testConfig(nw), HandlerFunc(func(ctx context.Context, req *Request, w ResponseWriter) {
			arrived <- struct{}{}
			go func() {
				<-release
				echo(ctx, req, w)
			}()
		}))
		c := newTestClient(t, cfg)
		var wg sync.WaitGroup
		defer func() {
			close(release)
			wg.Wait()
		}()
		start := time.Now()
		for range 3 * spillAt {
			wg.Go(func() {
				if resp, err := c.Call(context.Background(), addr, &Request{Op: OpGet, Key: "held"}); err != nil || resp.Err != "held" {
					t.Errorf("held call: %+v, %v", resp, err)
				}
			})
			select {
			case <-arrived:
			case <-time.After(waitTimeout):
				t.Fatal("a held request never reached the server")
			}
		}
		// The growth dial may still be failing in the background: one
		// attempt, maybe two if the first failed before the last request,
		// never one per request past spillAt.
		// (One more per growBackoff the test took, on a slow machine.)
		if n, most := rn.dials.Load(), 3+int64(time.Since(start)/growBackoff); n > most {
			t.Errorf("%d dials for %d requests over one connection, want at most %d", n, 3*spillAt, most)
		}
	})
}

// TestFlightReleaseReuse: flights released after Wait are reused by later
// Starts while late replies to abandoned ones still arrive. Every reply a
// flight returns must answer its own request, whatever the flight object
// carried before. Run with -race, it also checks that nothing in the
// transport touches a flight after Wait returns.
func TestFlightReleaseReuse(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		var late sync.WaitGroup
		t.Cleanup(late.Wait)
		_, addr := startServer(t, cfg, HandlerFunc(func(ctx context.Context, req *Request, w ResponseWriter) {
			if req.Op != OpGet {
				echo(ctx, req, w)
				return
			}
			late.Go(func() { // answered after the caller gave up
				time.Sleep(15 * time.Millisecond)
				echo(ctx, req, w)
			})
		}))
		c := newTestClient(t, cfg)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		fail := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		for g := range 8 {
			wg.Go(func() {
				for it := range 150 {
					n := 1 + (g+it)%5
					reqs := make([]*Request, n)
					for i := range reqs {
						reqs[i] = &Request{Op: OpSet, Key: fmt.Sprintf("g%d-i%d-r%d", g, it, i)}
					}
					timeout := time.Duration(0)
					if it%7 == 3 { // one slow request: the flight times out
						reqs[n-1].Op = OpGet
						timeout = 2 * time.Millisecond
					}
					f := c.StartWithin(context.Background(), addr, reqs, timeout)
					resps, err := f.Wait()
					for i, r := range resps {
						switch {
						case r == nil && reqs[i].Op == OpGet:
						case r == nil:
							if err == nil {
								fail(fmt.Errorf("%s: no reply and no error", reqs[i].Key))
							}
						case r.Err != reqs[i].Key:
							fail(fmt.Errorf("%s answered with %q", reqs[i].Key, r.Err))
						}
					}
					if reqs[n-1].Op == OpGet && !errors.Is(err, ErrTimeout) {
						fail(fmt.Errorf("slow flight: err %v, want ErrTimeout", err))
					}
					f.Release()
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
	})
}

// The keys and values of keyed requests share chunks of memory on the
// server (KeyChunk): a key or value a handler keeps must still read as it
// did when it was decoded after many more requests, and after a chunk
// fills up, whatever its length and whichever op carried it.
func TestServerKeysStayIntact(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		var mu sync.Mutex
		var kept []*Request
		h := HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			mu.Lock()
			kept = append(kept, &Request{Op: req.Op, Key: req.Key, Value: req.Value})
			mu.Unlock()
			w.Reply(&Response{ID: req.ID})
		})
		cfg := testConfig(nw)
		_, addr := startServer(t, cfg, h)
		c := newTestClient(t, cfg)
		ops := []Op{OpGet, OpExists, OpTTL, OpSet, OpDelete, OpAppend, OpReplicate, OpLoad, OpHandoffDone}
		var want []*Request
		reqs := make([]*Request, 0, 64)
		for i := range 3000 { // about 150 KiB of keys and values: many chunks
			key := fmt.Sprintf("key-%d-%s", i, strings.Repeat("x", i%40))
			if i%500 == 0 {
				key = strings.Repeat("long", 100) + key // longer than maxChunkKey
			}
			r := &Request{Op: ops[i%len(ops)], Key: key}
			if r.Op != OpGet && r.Op != OpExists && r.Op != OpTTL && r.Op != OpDelete {
				r.Value = []byte(fmt.Sprintf("value-%d-%s", i, strings.Repeat("v", i%300)))
			}
			want = append(want, &Request{Op: r.Op, Key: r.Key, Value: slices.Clone(r.Value)})
			reqs = append(reqs, r)
			if len(reqs) == cap(reqs) || i == 2999 {
				if _, err := c.CallBatch(context.Background(), addr, reqs); err != nil {
					t.Fatal(err)
				}
				reqs = reqs[:0]
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(kept) != len(want) {
			t.Fatalf("handler saw %d requests, want %d", len(kept), len(want))
		}
		for i := range want {
			if kept[i].Key != want[i].Key || !bytes.Equal(kept[i].Value, want[i].Value) {
				t.Fatalf("%v request %d reads %q = %q now, want %q = %q", want[i].Op, i, kept[i].Key, kept[i].Value, want[i].Key, want[i].Value)
			}
		}
	})
}

// TestOneReleaseWakesEveryWaiterItMakesRoomFor: replies that free several
// in-flight slots at once (one read, one release) must let as many
// waiting callers through, not one: the others would otherwise wait for a
// reply that, on a quiet connection, never comes.
func TestOneReleaseWakesEveryWaiterItMakesRoomFor(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		const limit = 4
		cfg := testConfig(nw)
		cfg.MaxInflightPerConn = limit
		cfg.ConnsPerPeer = 1
		h := &held{}
		_, addr := startServer(t, cfg, h)
		c := newTestClient(t, cfg)

		errs := make(chan error, 2*limit)
		call := func() {
			_, err := c.Call(context.Background(), addr, &Request{Op: OpGet})
			errs <- err
		}
		for range limit {
			go call()
		}
		eventually(t, "the limit to be reached", func() bool { return h.count() == limit })
		cc := (*c.peers.Load())[addr].slots[0].cc.Load()
		for range limit {
			go call()
		}
		eventually(t, "four callers to wait for a slot", func() bool { return cc.slots.waiting.Load() == limit })

		first := h.take()
		resps := make([]*Response, len(first))
		for i, r := range first {
			resps[i] = &Response{ID: r.req.ID}
		}
		first[0].w.ReplyAll(resps) // one write: the client frees all four slots together
		eventually(t, "every waiting caller to send", func() bool { return h.count() == limit })
		for _, r := range h.take() {
			r.w.Reply(&Response{ID: r.req.ID})
		}
		for range 2 * limit {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		allSlotsFree(t, cc)
	})
}

// TestSlotsUnderContention: many callers, single calls and batches larger
// than the in-flight limit, share one connection whose server answers in
// random order and at random times. Every call completes, and the
// connection ends with every slot free.
func TestSlotsUnderContention(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		const limit = 3
		cfg := testConfig(nw)
		cfg.MaxInflightPerConn = limit
		cfg.ConnsPerPeer = 1
		_, addr := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			resp := &Response{ID: req.ID, Value: []byte(req.Key)}
			if req.TTL%2 == 0 {
				go func() {
					time.Sleep(time.Duration(req.TTL%5) * 100 * time.Microsecond)
					w.Reply(resp)
				}()
				return
			}
			w.Reply(resp)
		}))
		c := newTestClient(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()

		const workers, rounds = 32, 20
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				for r := range rounds {
					n := 1 + (w+r)%7 // 1 to 7 requests: most batches exceed the limit
					reqs := make([]*Request, n)
					for i := range reqs {
						reqs[i] = &Request{Op: OpGet, Key: fmt.Sprint(w, "-", r, "-", i), TTL: int64(w + r + i)}
					}
					var resps []*Response
					var err error
					if n == 1 {
						var resp *Response
						resp, err = c.Call(ctx, addr, reqs[0])
						resps = []*Response{resp}
					} else {
						resps, err = c.CallBatch(ctx, addr, reqs)
					}
					if err != nil {
						errs <- err
						return
					}
					for i, resp := range resps {
						if resp == nil || string(resp.Value) != reqs[i].Key {
							errs <- fmt.Errorf("reply %d of %d: %+v for %s", i, n, resp, reqs[i].Key)
							return
						}
					}
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		cc := (*c.peers.Load())[addr].slots[0].cc.Load()
		allSlotsFree(t, cc)
	})
}

// allSlotsFree fails t unless cc comes to have no slot taken and nobody
// waiting. It waits for that: the reader hands a batch's replies over
// before it gives their slots back, so the last caller can return a
// moment before.
func allSlotsFree(t *testing.T, cc *clientConn) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		n, w := cc.slots.load(), cc.slots.waiting.Load()
		if n == 0 && w == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d slots still taken, %d callers still waiting", n, w)
		}
		time.Sleep(time.Millisecond)
	}
}
