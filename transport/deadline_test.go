package transport

import (
	"context"
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
