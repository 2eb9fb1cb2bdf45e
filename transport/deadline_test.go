package transport

import (
	"context"
	"errors"
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
// their own bound even when the context allows much longer, report it as
// ErrTimeout, and stamp the request with that earlier deadline; a bound
// longer than the context's changes nothing.
func TestCallWithinBoundsOneAttempt(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		release := make(chan struct{})
		var seen atomic.Int64
		h := HandlerFunc(func(ctx context.Context, req *Request, w ResponseWriter) {
			seen.Store(req.Deadline)
			if req.Key == "hang" {
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
		_, addr := startServer(t, cfg, h)
		c := newTestClient(t, cfg)
		defer close(release)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		const within = 100 * time.Millisecond
		before := time.Now()
		_, err := c.CallWithin(ctx, addr, &Request{Op: OpPing, Key: "hang"}, within)
		took := time.Since(before)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("CallWithin on a hung request: %v, want ErrTimeout", err)
		}
		if took < within || took > 5*time.Second {
			t.Errorf("CallWithin gave up after %v, want about %v", took, within)
		}
		if ctx.Err() != nil {
			t.Fatal("the caller's context ended; the bound should have come first")
		}
		if d := seen.Load(); d < before.Add(within).UnixMilli() || d > time.Now().UnixMilli()+1 {
			t.Errorf("server saw Deadline %d, want about now+%v (%d), not ctx's", d, within, before.Add(within).UnixMilli())
		}

		before = time.Now()
		_, err = c.StartWithin(ctx, addr, []*Request{{Op: OpPing}, {Op: OpPing, Key: "hang"}}, within).Wait()
		if took := time.Since(before); !errors.Is(err, ErrTimeout) || took > 5*time.Second {
			t.Fatalf("StartWithin on a hung batch: %v after %v, want ErrTimeout after about %v", err, took, within)
		}

		// A bound beyond the context's deadline leaves the context in charge.
		short, cancelShort := context.WithTimeout(context.Background(), time.Second)
		defer cancelShort()
		want, _ := short.Deadline()
		if _, err := c.CallWithin(short, addr, &Request{Op: OpPing}, time.Hour); err != nil {
			t.Fatalf("CallWithin with a long bound: %v", err)
		}
		if got := seen.Load(); got < want.UnixMilli() || got > want.UnixMilli()+1 {
			t.Errorf("server saw Deadline %d, want ctx's %d", got, want.UnixMilli())
		}
	})
}
