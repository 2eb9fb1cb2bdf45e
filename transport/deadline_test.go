package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDeadlineStampedAndEnforced: every call carries the time its sender
// stops waiting; a server that reads a request after that (a stopped
// process waking up with requests in its socket buffer) refuses it without
// running the handler, since its sender may already have retried it
// elsewhere. Requests within their deadline run as usual.
func TestDeadlineStampedAndEnforced(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		var ran atomic.Int64
		var seen atomic.Int64
		h := HandlerFunc(func(ctx context.Context, req *Request, w ResponseWriter) {
			ran.Add(1)
			seen.Store(req.Deadline)
			w.Reply(&Response{ID: req.ID})
		})
		cfg := testConfig(nw)
		srv, addr := startServer(t, cfg, h)
		c := newTestClient(t, cfg)

		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		want, _ := ctx.Deadline()
		resp, err := c.Call(ctx, addr, &Request{Op: OpPing})
		if err != nil || resp.Code != CodeOK {
			t.Fatalf("call within its deadline: %v %+v", err, resp)
		}
		if got := seen.Load(); got < want.UnixMilli() || got > want.UnixMilli()+1 {
			t.Errorf("server saw Deadline %d, want ctx's deadline %d", got, want.UnixMilli())
		}

		// A deadline long gone by the time the server reads the request.
		stale := &Request{Op: OpPing, Deadline: time.Now().Add(-time.Minute).UnixMilli()}
		resp, err = c.Call(context.Background(), addr, stale)
		if err != nil {
			t.Fatalf("expired call: transport error %v, want a refusal", err)
		}
		if resp.Code != CodeUnavailable {
			t.Errorf("expired call answered %+v, want CodeUnavailable", resp)
		}
		if ran.Load() != 1 {
			t.Errorf("handler ran %d times, want only for the live request", ran.Load())
		}
		if srv.Expired() != 1 {
			t.Errorf("Expired() = %d, want 1", srv.Expired())
		}
	})
}

// TestCallWithinBoundsOneAttempt: CallWithin and StartWithin give up after
// their bound even when the context allows much longer (or has no
// deadline), report it as ErrTimeout, and stamp the request with that
// earlier deadline; a bound longer than the context's deadline leaves the
// context in charge, and a bound longer than CallTimeout replaces it.
func TestCallWithinBoundsOneAttempt(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		type arrival struct {
			key      string
			deadline int64
		}
		arrived := make(chan arrival, 16)
		release := make(chan struct{})
		h := HandlerFunc(func(ctx context.Context, req *Request, w ResponseWriter) {
			arrived <- arrival{req.Key, req.Deadline}
			if strings.HasPrefix(req.Key, "hang") {
				// Answer late, off the read loop, which keeps serving.
				go func() {
					select {
					case <-release:
					case <-ctx.Done():
					}
					w.Reply(&Response{ID: req.ID})
				}()
				return
			}
			w.Reply(&Response{ID: req.ID})
		})
		cfg := testConfig(nw)
		cfg.ConnsPerPeer = 1 // every call on the one warmed-up connection
		_, addr := startServer(t, cfg, h)
		c := newTestClient(t, cfg)
		defer close(release)
		next := func(key string) int64 {
			t.Helper()
			for {
				select {
				case a := <-arrived:
					if a.key == key {
						return a.deadline
					}
				case <-time.After(waitTimeout):
					t.Fatalf("request %q never reached the server", key)
				}
			}
		}
		if _, err := c.Call(context.Background(), addr, &Request{Op: OpPing, Key: "warm"}); err != nil {
			t.Fatal(err)
		}
		next("warm")

		const within = 300 * time.Millisecond
		for _, tc := range []struct {
			name string
			ctx  func() (context.Context, context.CancelFunc)
		}{
			{"later ctx deadline", func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Minute)
			}},
			{"no ctx deadline", func() (context.Context, context.CancelFunc) {
				return context.WithCancel(context.Background())
			}},
		} {
			ctx, cancel := tc.ctx()
			before := time.Now()
			_, err := c.CallWithin(ctx, addr, &Request{Op: OpPing, Key: "hang1"}, within)
			took := time.Since(before)
			if !errors.Is(err, ErrTimeout) || ctx.Err() != nil {
				t.Fatalf("%s: CallWithin on a hung request: %v (ctx %v), want ErrTimeout before ctx ends", tc.name, err, ctx.Err())
			}
			if took < within || took > waitTimeout {
				t.Errorf("%s: CallWithin gave up after %v, want about %v", tc.name, took, within)
			}
			if d := next("hang1"); d < before.Add(within).UnixMilli() || d > before.Add(within+time.Second).UnixMilli() {
				t.Errorf("%s: server saw Deadline %d, want about now+%v (%d)", tc.name, d, within, before.Add(within).UnixMilli())
			}

			before = time.Now()
			_, err = c.StartWithin(ctx, addr, []*Request{{Op: OpPing, Key: "ok"}, {Op: OpPing, Key: "hang2"}}, within).Wait()
			took = time.Since(before)
			if !errors.Is(err, ErrTimeout) || took < within || took > waitTimeout {
				t.Fatalf("%s: StartWithin on a hung batch: %v after %v, want ErrTimeout after about %v", tc.name, err, took, within)
			}
			if d := next("hang2"); d < before.Add(within).UnixMilli() || d > before.Add(within+time.Second).UnixMilli() {
				t.Errorf("%s: batch carried Deadline %d, want about now+%v", tc.name, d, within)
			}
			cancel()
		}

		// A bound beyond the context's deadline leaves the context in charge.
		short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancelShort()
		want, _ := short.Deadline()
		if _, err := c.CallWithin(short, addr, &Request{Op: OpPing, Key: "long"}, time.Hour); err != nil {
			t.Fatalf("CallWithin with a long bound: %v", err)
		}
		if got := next("long"); got < want.UnixMilli() || got > want.UnixMilli()+1 {
			t.Errorf("server saw Deadline %d, want ctx's %d", got, want.UnixMilli())
		}
		// Without a context deadline, a bound longer than CallTimeout
		// replaces it (as context.WithTimeout(ctx, d) would).
		before := time.Now()
		if _, err := c.CallWithin(context.Background(), addr, &Request{Op: OpPing, Key: "longer"}, cfg.CallTimeout+time.Hour); err != nil {
			t.Fatalf("CallWithin beyond CallTimeout: %v", err)
		}
		if got := next("longer"); got < before.Add(cfg.CallTimeout+time.Hour).UnixMilli() {
			t.Errorf("server saw Deadline %d, want now+CallTimeout+1h (%d)", got, before.Add(cfg.CallTimeout+time.Hour).UnixMilli())
		}
	})
}

// ErrNotSent marks exactly the failures that came before a request was
// handed to a connection: a refused dial, or a call whose time ran out
// while it waited for a dial. A request that reached a server that never
// answers is not marked, and Flight.Sent counts it.
func TestNotSentMarksOnlyWhatNeverLeft(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		c := newTestClient(t, cfg)
		ctx := context.Background()

		ln, err := nw.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		if _, err := c.Call(ctx, closed, &Request{Op: OpIncr, Key: "k"}); !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrUnreachable) {
			t.Errorf("call to a closed port: %v, want ErrNotSent and ErrUnreachable", err)
		}
		f := c.Start(ctx, closed, []*Request{{Op: OpIncr, Key: "a"}, {Op: OpIncr, Key: "b"}})
		if _, err := f.Wait(); !errors.Is(err, ErrNotSent) || f.Sent() != 0 {
			t.Errorf("flight to a closed port: %v, %d sent; want ErrNotSent, 0", err, f.Sent())
		}
		f.Release()

		h := &held{}
		_, addr := startServer(t, cfg, h)
		_, err = c.CallWithin(ctx, addr, &Request{Op: OpIncr, Key: "k"}, 100*time.Millisecond)
		if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotSent) {
			t.Errorf("call the server read and never answered: %v, want ErrTimeout without ErrNotSent", err)
		}
		f = c.StartWithin(ctx, addr, []*Request{{Op: OpIncr, Key: "a"}, {Op: OpIncr, Key: "b"}}, 100*time.Millisecond)
		if _, err := f.Wait(); !errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotSent) || f.Sent() != 2 {
			t.Errorf("flight the server read and never answered: %v, %d sent; want ErrTimeout without ErrNotSent, 2", err, f.Sent())
		}
		f.Release()
		eventually(t, "the server holds all three requests", func() bool { return h.count() == 3 })

		inmem, ok := nw.(*InmemNetwork)
		if !ok {
			return // a TCP dial to a listener that never accepts still connects
		}
		silent, err := inmem.Listen("127.0.0.1:0") // never accepts: the dial waits
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		_, err = c.CallWithin(ctx, silent.Addr().String(), &Request{Op: OpIncr, Key: "k"}, 100*time.Millisecond)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrNotSent) {
			t.Errorf("call whose time ran out during the dial: %v, want ErrTimeout and ErrNotSent", err)
		}
	})
}

// A flight that could hand over only part of its requests — the
// connection's in-flight slots ran out — counts what it handed over; a
// flight that only waited for a slot handed over nothing. Sent on a
// released flight panics rather than claim that nothing was sent.
func TestFlightSentCountsWhatWasHandedOver(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.MaxInflightPerConn = 2
		cfg.ConnsPerPeer = 1
		c := newTestClient(t, cfg)
		h := &held{}
		_, addr := startServer(t, testConfig(nw), h)
		ctx := context.Background()

		f := c.StartWithin(ctx, addr, []*Request{{Op: OpIncr, Key: "a"}, {Op: OpIncr, Key: "b"}, {Op: OpIncr, Key: "c"}}, 150*time.Millisecond)
		_, err := f.Wait()
		if f.Sent() != 2 || !errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotSent) {
			t.Errorf("flight of 3 with 2 slots: %d sent, %v; want 2, ErrTimeout without ErrNotSent", f.Sent(), err)
		}
		f.Release()
		func() {
			defer func() {
				if recover() == nil {
					t.Error("Sent on a released flight did not panic")
				}
			}()
			f.Sent()
		}()

		// Both slots taken by calls the server holds; the next flight can
		// only wait for one.
		var calls sync.WaitGroup
		for range 2 {
			calls.Go(func() { c.CallWithin(ctx, addr, &Request{Op: OpIncr, Key: "x"}, time.Second) })
		}
		eventually(t, "the server holds the two calls", func() bool { return h.count() == 4 })
		f = c.StartWithin(ctx, addr, []*Request{{Op: OpIncr, Key: "d"}}, 100*time.Millisecond)
		if _, err := f.Wait(); f.Sent() != 0 || !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrTimeout) {
			t.Errorf("flight that waited for a slot: %d sent, %v; want 0, ErrNotSent and ErrTimeout", f.Sent(), err)
		}
		f.Release()
		if _, err := c.CallWithin(ctx, addr, &Request{Op: OpIncr, Key: "e"}, 100*time.Millisecond); !errors.Is(err, ErrNotSent) {
			t.Errorf("call that waited for a slot: %v, want ErrNotSent", err)
		}
		calls.Wait()
	})
}

// Unreached: only a request that was never handed over, and not for lack
// of time, certainly never reached a peer that could have taken it.
func TestUnreached(t *testing.T) {
	refused := unsent(fmt.Errorf("dial x: %w", ErrUnreachable))
	waited := unsent(fmt.Errorf("x: %w", ErrTimeout)) // for a dial or a free slot
	lostQueued := fmt.Errorf("x: %w", ErrConnLost)
	timedOut := fmt.Errorf("x: %w", ErrTimeout)
	// The socket's own deadlines: a dial the peer never answered, a write
	// it never made room for (the connection then fails with what was
	// queued on it marked not sent). Either peer may be alive but stalled.
	dialTimedOut := unsent(fmt.Errorf("dial x: %w: %w", ErrUnreachable, &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}))
	writeStalled := unsent(fmt.Errorf("x: %w: %w", ErrConnLost, os.ErrDeadlineExceeded))
	for _, c := range []struct {
		err     error
		i, sent int
		want    bool
	}{
		{nil, 0, 0, false},
		{refused, 0, 1, true},
		{waited, 0, 1, false}, // its peer may be alive and busy with the key
		{lostQueued, 0, 1, false},
		{lostQueued, 2, 2, true}, // past what the flight handed over
		{lostQueued, 1, 2, false},
		{timedOut, 0, 1, false},
		{timedOut, 3, 2, false},
		{dialTimedOut, 0, 1, false},
		{writeStalled, 0, 1, false},
		{writeStalled, 3, 2, false},
	} {
		if got := Unreached(c.err, c.i, c.sent); got != c.want {
			t.Errorf("Unreached(%v, %d, %d) = %v, want %v", c.err, c.i, c.sent, got, c.want)
		}
	}
}

// Repeatable: every keyed operation, and the flags that make a SET unsafe
// to apply twice.
func TestRepeatable(t *testing.T) {
	for _, c := range []struct {
		req  Request
		want bool
	}{
		{Request{Op: OpGet}, true},
		{Request{Op: OpTTL}, true},
		{Request{Op: OpExists}, true},
		{Request{Op: OpSet}, true},
		{Request{Op: OpSet, Flags: FlagKeepTTL | FlagForwarded}, true},
		{Request{Op: OpSet, Flags: FlagIfAbsent}, false},
		{Request{Op: OpSet, Flags: FlagIfPresent}, false},
		{Request{Op: OpSet, Flags: FlagGetOld}, false},
		{Request{Op: OpDelete}, true},
		{Request{Op: OpExpire}, true},
		{Request{Op: OpGetEx}, true},
		{Request{Op: OpIncr}, false},
		{Request{Op: OpIncrFloat}, false},
		{Request{Op: OpAppend}, false},
		{Request{Op: OpGetDel}, false},
		{Request{Op: OpLeave}, false}, // not keyed: the node it was sent to leaves
	} {
		if got := c.req.Repeatable(); got != c.want {
			t.Errorf("%s flags %#x: Repeatable() = %v, want %v", c.req.Op, c.req.Flags, got, c.want)
		}
	}
	for op, want := range map[Op]bool{OpGet: true, OpTTL: true, OpExists: true, OpPing: true, OpMembers: true, OpStats: true, OpDBSize: true,
		OpSet: false, OpDelete: false, OpIncr: false, OpIncrFloat: false, OpFlushAll: false, OpLeave: false} {
		if got := op.ReadOnly(); got != want {
			t.Errorf("%s.ReadOnly() = %v, want %v", op, got, want)
		}
	}
}

// gatedNetwork wraps a Network so that a test can make the next write on
// a dialled connection block until released, or stop after the first
// frame and two bytes of the next and fail.
type gatedNetwork struct {
	Network
	partial atomic.Bool   // the next write is cut short and fails
	stall   atomic.Bool   // the next write waits for release
	stalled chan struct{} // closed when a write starts waiting
	release chan struct{} // closing it lets a stalled write through
}

func newGatedNetwork(nw Network) *gatedNetwork {
	return &gatedNetwork{Network: nw, stalled: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := g.Network.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, g: g}, nil
}

type gatedConn struct {
	net.Conn
	g *gatedNetwork
}

var errCutShort = errors.New("injected: connection reset after a partial write")

func (c *gatedConn) Write(p []byte) (int, error) {
	if c.g.stall.CompareAndSwap(true, false) {
		close(c.g.stalled)
		<-c.g.release
	}
	if c.g.partial.CompareAndSwap(true, false) {
		first := frameHeaderSize + int(binary.BigEndian.Uint32(p))
		n, err := c.Conn.Write(p[:min(len(p), first+2)])
		if err == nil {
			err = errCutShort
		}
		return n, err
	}
	return c.Conn.Write(p)
}

// A connection that fails knows which requests never wholly left: a
// flight's request cut short by a partial write counts past Flight.Sent
// and its peer never serves it, while the one written before it may have
// been served (it was); a call still buffered behind a write in progress
// fails with ErrNotSent, and the call in that write does not (the write
// may yet finish).
func TestFailedConnectionKnowsWhatNeverLeft(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		g := newGatedNetwork(nw)
		cfg := testConfig(nw)
		h := &held{pings: true}
		_, addr := startServer(t, cfg, h)
		ccfg := testConfig(g)
		ccfg.ConnsPerPeer = 1
		c := newTestClient(t, ccfg)
		ctx := context.Background()
		mustCall(t, c, addr, &Request{Op: OpPing}) // connected

		g.partial.Store(true)
		f := c.Start(ctx, addr, []*Request{{Op: OpIncr, Key: "whole"}, {Op: OpIncr, Key: "cut"}})
		_, err := f.Wait()
		if !errors.Is(err, ErrConnLost) || errors.Is(err, ErrNotSent) || f.Sent() != 1 {
			t.Errorf("flight cut short after its first request: %v, %d sent; want ErrConnLost without ErrNotSent, 1", err, f.Sent())
		}
		if !Unreached(err, 1, f.Sent()) || Unreached(err, 0, f.Sent()) {
			t.Errorf("Unreached: the cut request %v, the whole one %v; want true, false", Unreached(err, 1, f.Sent()), Unreached(err, 0, f.Sent()))
		}
		f.Release()
		eventually(t, "the server to get the whole request", func() bool { return h.count() == 1 })
		if r := h.take(); r[0].req.Key != "whole" {
			t.Fatalf("the server got %q, want the request written whole", r[0].req.Key)
		}

		mustCall(t, c, addr, &Request{Op: OpPing}) // a fresh connection
		g.stall.Store(true)
		writing, queued := make(chan error, 1), make(chan error, 1)
		go func() {
			_, err := c.Call(ctx, addr, &Request{Op: OpIncr, Key: "writing"})
			writing <- err
		}()
		<-g.stalled
		cc := (*c.peers.Load())[addr].slots[0].cc.Load()
		go func() {
			_, err := c.Call(ctx, addr, &Request{Op: OpIncr, Key: "queued"})
			queued <- err
		}()
		eventually(t, "the second call to queue behind the write", func() bool {
			cc.mu.Lock()
			defer cc.mu.Unlock()
			return cc.pending.len() == 2
		})
		cc.fail(cc.lostErr(errors.New("injected: connection reset")))
		close(g.release)
		if err := <-writing; !errors.Is(err, ErrConnLost) || errors.Is(err, ErrNotSent) {
			t.Errorf("the call being written when the connection failed: %v, want ErrConnLost without ErrNotSent", err)
		}
		if err := <-queued; !errors.Is(err, ErrConnLost) || !errors.Is(err, ErrNotSent) {
			t.Errorf("the call queued behind the write: %v, want ErrConnLost and ErrNotSent", err)
		}
	})
}

// A flight waiting for in-flight slots keeps to its deadline even when
// the write that would free them is stuck (a peer that stopped reading):
// the write its wait sets off is writeLoop's, not its own.
func TestSlotWaitKeepsDeadlineWhileWriteIsStuck(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		g := newGatedNetwork(nw)
		_, addr := startServer(t, testConfig(nw), &held{pings: true})
		ccfg := testConfig(g)
		ccfg.ConnsPerPeer, ccfg.MaxInflightPerConn = 1, 2
		c := newTestClient(t, ccfg)
		mustCall(t, c, addr, &Request{Op: OpPing}) // connected
		defer close(g.release)

		// Three requests on two slots: the first two are buffered, then
		// the flight waits for a slot, which needs them written first;
		// that write stalls.
		g.stall.Store(true)
		f := c.StartWithin(context.Background(), addr, []*Request{{Op: OpIncr, Key: "a"}, {Op: OpIncr, Key: "b"}, {Op: OpIncr, Key: "c"}}, 50*time.Millisecond)
		done := make(chan error, 1)
		go func() {
			_, err := f.Wait()
			done <- err
		}()
		select {
		case <-g.stalled:
		case <-time.After(waitTimeout):
			t.Fatal("nothing wrote the flight's first requests")
		}
		select {
		case err := <-done:
			if !errors.Is(err, ErrTimeout) {
				t.Errorf("flight past its deadline: %v, want ErrTimeout", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("the flight outlived its deadline while a write was stuck")
		}
	})
}

// Callers that find the write buffer past its high-water mark while
// another caller's write is in progress wait for room only until their
// own deadlines (or contexts), a single call and a flight alike, and those
// that give up add nothing to the buffer. They used to wait for that write
// to end, which a peer that stopped reading could make last WriteTimeout,
// and then write the buffer themselves, as long again.
func TestBackpressureKeepsTheCallersDeadline(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		g := newGatedNetwork(nw)
		_, addr := startServer(t, testConfig(nw), echo)
		cfg := testConfig(g)
		cfg.ConnsPerPeer, cfg.WriteTimeout = 1, 2*waitTimeout
		c := newTestClient(t, cfg)
		mustCall(t, c, addr, &Request{Op: OpPing}) // connected
		defer close(g.release)

		// The first SET is alone on the connection, so it writes itself;
		// that write stalls.
		g.stall.Store(true)
		go func() {
			_, _ = c.CallWithin(context.Background(), addr, &Request{Op: OpSet, Key: "first", Value: []byte("v")}, 2*waitTimeout)
		}()
		select {
		case <-g.stalled:
		case <-time.After(waitTimeout):
			t.Fatal("the first SET was never written")
		}

		big := make([]byte, outbufHigh)
		const limit = 300 * time.Millisecond
		done := make(chan error, 2)
		start := time.Now()
		go func() {
			_, err := c.CallWithin(context.Background(), addr, &Request{Op: OpSet, Key: "call", Value: big}, limit)
			done <- err
		}()
		go func() {
			f := c.StartWithin(context.Background(), addr, []*Request{{Op: OpSet, Key: "f1", Value: big}, {Op: OpSet, Key: "f2", Value: big}}, limit)
			_, err := f.Wait()
			f.Release()
			done <- err
		}()
		for range 2 {
			select {
			case err := <-done:
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("a caller past the high-water mark behind a stuck write: %v, want ErrTimeout", err)
				}
			case <-time.After(waitTimeout):
				t.Fatal("a caller past the high-water mark outlived its deadline behind a stuck write")
			}
		}
		if took := time.Since(start); took < limit-50*time.Millisecond {
			t.Errorf("callers returned after %v, before their %v deadline", took, limit)
		}

		// Flights kept out by their context, ending with its deadline or
		// cancelled, add nothing either.
		small := make([]byte, 16<<10)
		flight := func(ctx context.Context) error {
			var reqs []*Request
			for i := range 32 {
				reqs = append(reqs, &Request{Op: OpSet, Key: fmt.Sprint("s", i), Value: small})
			}
			f := c.StartWithin(ctx, addr, reqs, 0)
			_, err := f.Wait()
			f.Release()
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if err := flight(ctx); !errors.Is(err, ErrTimeout) {
			t.Errorf("a flight with a context deadline behind a full buffer: %v, want ErrTimeout", err)
		}
		cancel()
		ctx, cancel = context.WithCancel(context.Background())
		stop := time.AfterFunc(20*time.Millisecond, cancel)
		if err := flight(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled flight behind a full buffer: %v, want context.Canceled", err)
		}
		stop.Stop()
		cancel()

		// More callers behind the full buffer give up at their deadlines
		// without adding to it.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 3 {
					_, err := c.CallWithin(context.Background(), addr, &Request{Op: OpSet, Key: "more", Value: big}, 50*time.Millisecond)
					if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrNotSent) {
						t.Errorf("a caller kept out of the full buffer: %v, want ErrTimeout and ErrNotSent", err)
					}
				}
			})
		}
		all := make(chan struct{})
		go func() { wg.Wait(); close(all) }()
		select {
		case <-all:
		case <-time.After(waitTimeout):
			t.Fatal("callers kept out of the full buffer outlived their deadlines")
		}
		cc := (*c.peers.Load())[addr].slots[0].cc.Load()
		cc.mu.Lock()
		peak := cc.out.peak
		cc.mu.Unlock()
		if limit := outbufHigh + len(big) + 1024; peak > limit {
			t.Errorf("the client buffered %d bytes for a peer that takes nothing; bound %d", peak, limit)
		}
	})
}

// stallingNetwork's dialled connections take no bytes: a Write blocks
// until the connection's write deadline, as on a peer that stopped
// reading once the socket buffers are full.
type stallingNetwork struct{ Network }

func (s stallingNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := s.Network.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &stallingConn{Conn: c, closed: make(chan struct{})}, nil
}

type stallingConn struct {
	net.Conn
	mu       sync.Mutex
	deadline time.Time
	closed   chan struct{}
	once     sync.Once
}

func (c *stallingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *stallingConn) Write([]byte) (int, error) {
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	var expired <-chan time.Time
	if !d.IsZero() {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-expired:
		return 0, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *stallingConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// A call that writes its own request (nothing else in flight) stops
// writing at its deadline when the peer takes nothing: the connection
// fails then, and the request, which never left, fails with ErrNotSent,
// instead of the caller waiting out WriteTimeout. So does a request over
// the buffer's high-water mark, which used to be written with no bound
// but WriteTimeout.
func TestLoneWriteStopsAtTheCallersDeadline(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		_, addr := startServer(t, testConfig(nw), echo)
		for _, size := range []int{100, 2 * outbufHigh} {
			cfg := testConfig(stallingNetwork{nw})
			cfg.WriteTimeout, cfg.ConnsPerPeer = waitTimeout, 1
			c := newTestClient(t, cfg)
			dialPool(t, c, addr)
			start := time.Now()
			_, err := c.CallWithin(context.Background(), addr, &Request{Op: OpSet, Key: "k", Value: make([]byte, size)}, time.Second)
			if !errors.Is(err, ErrNotSent) || errors.Is(err, ErrTimeout) {
				t.Errorf("%d-byte SET to a peer that takes nothing: %v; want ErrNotSent from the write cut at the deadline", size, err)
			}
			if took := time.Since(start); took >= cfg.WriteTimeout/2 || took < 900*time.Millisecond {
				t.Errorf("%d-byte SET returned after %v; want it back at its 1s deadline, when its write was cut", size, took)
			}
		}
	})
}

// So does a flight alone on its connection whose requests pass the
// buffer's high-water mark while it registers them: they are written as
// they come, by the flight's deadline, and those cut short count as never
// sent.
func TestLoneFlightStopsAtItsDeadline(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		_, addr := startServer(t, testConfig(nw), echo)
		cfg := testConfig(stallingNetwork{nw})
		cfg.WriteTimeout, cfg.ConnsPerPeer = waitTimeout, 1
		c := newTestClient(t, cfg)
		dialPool(t, c, addr)
		var reqs []*Request
		for i := range 4 {
			reqs = append(reqs, &Request{Op: OpSet, Key: fmt.Sprint("k", i), Value: make([]byte, outbufHigh/2)})
		}
		start := time.Now()
		f := c.StartWithin(context.Background(), addr, reqs, 2*time.Second)
		_, err := f.Wait()
		if err == nil || f.Sent() != 0 {
			t.Errorf("flight to a peer that takes nothing: %v, %d sent; want an error and none sent", err, f.Sent())
		}
		f.Release()
		if took := time.Since(start); took >= cfg.WriteTimeout/2 || took < 1900*time.Millisecond {
			t.Errorf("the flight returned after %v; want it back at its 2s deadline, when its write was cut", took)
		}
	})
}
