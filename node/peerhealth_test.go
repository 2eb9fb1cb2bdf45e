package node

import (
	"testing"
	"time"

	"github.com/starlingcache/starling/transport"
)

// A mark lasts the backoff and then goes, also for a peer nobody asks
// about any more: while none is left, down costs no lock.
func TestPeerHealthMarksExpire(t *testing.T) {
	p := newPeerHealth(20 * time.Millisecond)
	if p.down("a") || p.marked.Load() != 0 {
		t.Fatal("a peer never marked is down")
	}
	p.failed("a", transport.ErrTimeout)
	p.failed("gone", transport.ErrUnreachable)
	p.failed("b", transport.ErrClosed) // our own client closing says nothing about b
	if !p.down("a") || p.down("b") || p.marked.Load() != 2 {
		t.Fatalf("down(a) = %v, down(b) = %v, %d marked; want true, false, 2", p.down("a"), p.down("b"), p.marked.Load())
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.down("a") {
		if time.Now().After(deadline) {
			t.Fatal("the mark on a outlived its backoff by 10s")
		}
		time.Sleep(time.Millisecond)
	}
	if n := p.marked.Load(); n != 0 {
		t.Fatalf("%d marks left once the backoff passed, want 0 (gone's expired too)", n)
	}
}
