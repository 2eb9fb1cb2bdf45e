package node

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/starlingcache/starling/transport"
)

// A mark lasts the backoff and then goes, also for a peer nobody asks
// about any more: while none is left, down costs no lock. Every failure
// counts for down; only one where the peer could not be reached at all
// counts for a request that must not be applied twice.
func TestPeerHealthMarks(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newPeerHealth(time.Second)
	p.now = func() time.Time { return now }
	if p.down("a") || p.marked.Load() != 0 {
		t.Fatal("a peer never marked is down")
	}
	refused := fmt.Errorf("dial: %w: %w", transport.ErrUnreachable, transport.ErrNotSent)
	p.failed("gone", refused)
	p.failed("a", transport.ErrTimeout)
	p.failed("b", transport.ErrClosed) // our own client closing says nothing about b
	if !p.down("a") || p.down("b") || !p.down("gone") || p.marked.Load() != 2 {
		t.Fatalf("down(a, b, gone) = %v, %v, %v with %d marked; want true, false, true, 2",
			p.down("a"), p.down("b"), p.down("gone"), p.marked.Load())
	}
	if p.skip("a", false) || !p.skip("gone", false) {
		t.Fatalf("for a non-repeatable write: skip(a) = %v after a timeout, skip(gone) = %v after a refusal; want false, true",
			p.skip("a", false), p.skip("gone", false))
	}
	p.failed("a", refused) // the latest failure decides
	if !p.skip("a", false) {
		t.Fatal("a peer refusing connections after a timeout is not skipped by a non-repeatable write")
	}

	// A batch the connection broke under: unreached only if none of it
	// may have left (Flight.Sent), whatever the error says.
	lost := fmt.Errorf("conn: %w", transport.ErrConnLost)
	p.failedAfter("c", lost, 0)
	p.failedAfter("d", lost, 2)
	if !p.skip("c", false) || p.skip("d", false) {
		t.Fatalf("after a lost connection: skip(c), nothing sent = %v; skip(d), 2 sent = %v; want true, false", p.skip("c", false), p.skip("d", false))
	}
	// A dial the peer never answered says it may be stalled, not gone.
	p.failed("e", fmt.Errorf("dial: %w: %w: %w", transport.ErrUnreachable, transport.ErrNotSent, os.ErrDeadlineExceeded))
	if !p.down("e") || p.skip("e", false) {
		t.Fatalf("after a dial timeout: down %v, skip for a non-repeatable write %v; want true, false", p.down("e"), p.skip("e", false))
	}

	now = now.Add(999 * time.Millisecond)
	if !p.down("a") {
		t.Fatal("a mark went before its backoff passed")
	}
	now = now.Add(2 * time.Millisecond)
	if p.down("a") {
		t.Fatal("a mark outlived its backoff")
	}
	if n := p.marked.Load(); n != 0 {
		t.Fatalf("%d marks left once the backoff passed, want 0 (gone's expired too)", n)
	}
}
