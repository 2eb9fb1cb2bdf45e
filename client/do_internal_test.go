package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/starlingcache/starling/transport"
)

func TestRetryable(t *testing.T) {
	refused := fmt.Errorf("transport: dial x: %w: refused", transport.ErrUnreachable)
	waitedForDial := fmt.Errorf("%w: transport: x: %w", transport.ErrNotSent, transport.ErrTimeout)
	lost := fmt.Errorf("transport: x: %w", transport.ErrConnLost)
	timeout := fmt.Errorf("transport: x: %w", transport.ErrTimeout)
	tooLarge := fmt.Errorf("transport: x: %w", transport.ErrFrameTooLarge)
	get := &transport.Request{Op: transport.OpGet}
	set := &transport.Request{Op: transport.OpSet}
	setNX := &transport.Request{Op: transport.OpSet, Flags: transport.FlagIfAbsent}
	del := &transport.Request{Op: transport.OpDelete}
	incr := &transport.Request{Op: transport.OpIncr}
	live := context.Background()
	done, cancel := context.WithCancel(live)
	cancel()
	for _, c := range []struct {
		ctx       context.Context
		req       *transport.Request
		err       error
		unreached bool
		want      bool
	}{
		{live, get, refused, true, true},
		{live, get, lost, false, true},
		{live, get, timeout, false, true},
		{done, get, refused, true, false}, // the caller gave up
		{live, get, tooLarge, true, false},
		{live, set, refused, true, true},
		{live, set, lost, false, true},
		{live, set, timeout, false, true}, // refused if read late; a repeat changes nothing
		{live, setNX, timeout, false, false},
		{live, incr, timeout, false, false}, // may still be applied: not resent
		{live, get, waitedForDial, false, true},
		{live, del, lost, false, true},
		{live, setNX, refused, true, true}, // never left
		{live, setNX, lost, false, false},
		{live, setNX, lost, true, true}, // queued after the connection broke
		{live, incr, refused, true, true},
		{live, incr, lost, false, false},
	} {
		if got := retryable(c.ctx, c.req, c.err, c.unreached); got != c.want {
			t.Errorf("retryable(ctx err %v, %v flags %d, %v, unreached %v) = %v, want %v", c.ctx.Err(), c.req.Op, c.req.Flags, c.err, c.unreached, got, c.want)
		}
	}
}

// A node marked down after a timeout is put last by reads and plain
// writes only; one that could not be reached at all, by every request.
func TestMarkDownRemembersWhy(t *testing.T) {
	c := &Client{cfg: Config{DownBackoff: time.Minute}}
	m := &member{addr: "n1"}
	now := time.Now().UnixNano()
	c.markDown(m, transport.Unreached(fmt.Errorf("call: %w", transport.ErrTimeout), 0, 1))
	if !m.down(now) || m.unreached(now) {
		t.Fatalf("after a timeout: down %v, unreached %v; want true, false", m.down(now), m.unreached(now))
	}
	c.markDown(m, transport.Unreached(fmt.Errorf("dial: %w: %w", transport.ErrUnreachable, transport.ErrNotSent), 0, 1))
	if !m.down(now) || !m.unreached(now) {
		t.Fatalf("after a refused dial: down %v, unreached %v; want true, true", m.down(now), m.unreached(now))
	}
	c.markDown(m, transport.Unreached(fmt.Errorf("conn: %w", transport.ErrConnLost), 0, 1)) // may have been served
	if !m.down(now) || m.unreached(now) {
		t.Fatalf("after a lost connection: down %v, unreached %v; want true, false", m.down(now), m.unreached(now))
	}
}

// BenchmarkPlan routes one key, as Do does for each request of a
// pipeline, against a table of one member and of three.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Replicas = 1
			c := &Client{cfg: cfg, seeds: []*member{{addr: "127.0.0.1:7000"}}}
			var ms []transport.Member
			for i := range n {
				ms = append(ms, transport.Member{Name: fmt.Sprint("n", i), DataAddr: fmt.Sprintf("127.0.0.1:%d", 7000+i)})
			}
			t, err := c.build(nil, ms, 0)
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]string, 1024)
			for i := range keys {
				keys[i] = fmt.Sprintf("key:%012d", i)
			}
			req := &transport.Request{Op: transport.OpGet}
			var rt route
			now := time.Now().UnixNano()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				req.Key = keys[i%len(keys)]
				c.plan(&rt, t, req, now)
			}
			if rt.n != 1 {
				b.Fatalf("planned %d candidates, want the owner alone", rt.n)
			}
		})
	}
}
