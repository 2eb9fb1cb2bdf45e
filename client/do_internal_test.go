package client

import (
	"context"
	"fmt"
	"testing"

	"github.com/starlingcache/starling/transport"
)

func TestRetryable(t *testing.T) {
	refused := fmt.Errorf("transport: dial x: %w: refused", transport.ErrUnreachable)
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
		ctx  context.Context
		req  *transport.Request
		err  error
		want bool
	}{
		{live, get, refused, true},
		{live, get, lost, true},
		{live, get, timeout, true},
		{done, get, refused, false}, // the caller gave up
		{live, get, tooLarge, false},
		{live, set, refused, true},
		{live, set, lost, true},
		{live, set, timeout, true}, // refused if read late; a repeat changes nothing
		{live, setNX, timeout, false},
		{live, incr, timeout, false}, // may still be applied: not resent
		{live, del, lost, true},
		{live, setNX, refused, true}, // never left
		{live, setNX, lost, false},
		{live, incr, refused, true},
		{live, incr, lost, false},
	} {
		if got := retryable(c.ctx, c.req, c.err); got != c.want {
			t.Errorf("retryable(ctx err %v, %v flags %d, %v) = %v, want %v", c.ctx.Err(), c.req.Op, c.req.Flags, c.err, got, c.want)
		}
	}
}
