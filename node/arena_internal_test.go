package node

import "testing"

// An arena reuses up to maxArenaFlights Replies from one pipeline to the
// next, each emptied by Reset; a pipeline that needed more (a wide
// cluster, retries) gets them, and the extra ones are let go.
func TestArenaKeepsABoundedSetOfReplies(t *testing.T) {
	var a Arena
	first := a.replies()
	for range 2 * maxArenaFlights {
		a.replies()
	}
	if a.nfwd != 2*maxArenaFlights+1 {
		t.Fatalf("%d flights counted, want %d", a.nfwd, 2*maxArenaFlights+1)
	}
	a.Reset()
	if len(a.fwd) != maxArenaFlights || a.nfwd != 0 {
		t.Fatalf("after Reset: %d Replies kept, %d counted; want %d and 0", len(a.fwd), a.nfwd, maxArenaFlights)
	}
	if a.replies() != first {
		t.Fatal("the next pipeline's first flight does not reuse the first Replies")
	}
}
