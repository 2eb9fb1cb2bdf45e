package transport

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"
)

// valueReqs returns n echo requests whose values are distinct and long
// enough that a reply decoded in place would show the next read's bytes.
func valueReqs(prefix string, n int) []*Request {
	reqs := make([]*Request, n)
	for i := range reqs {
		v := bytes.Repeat([]byte(fmt.Sprintf("%s-%d|", prefix, i)), 12)
		reqs[i] = &Request{Op: OpSet, Key: fmt.Sprint(prefix, i), Value: v}
	}
	return reqs
}

// checkValues fails unless resps echo reqs' values, in order.
func checkValues(t *testing.T, what string, resps []*Response, reqs []*Request) {
	t.Helper()
	if len(resps) != len(reqs) {
		t.Fatalf("%s: %d replies for %d requests", what, len(resps), len(reqs))
	}
	for i, r := range resps {
		if r == nil || !bytes.Equal(r.Value, reqs[i].Value) {
			t.Fatalf("%s: reply %d = %+v, want value %q", what, i, r, reqs[i].Value)
		}
	}
}

// A flight started with Replies has its replies in that storage, and they
// stay intact while the connection goes on reading: the reader decodes
// them in place in its buffer and must copy them out before reading
// again. Once a connection has carried such a flight it decodes every
// reply in place, so calls and flights without Replies on it must still
// get replies of their own that survive later reads. And a Replies reused
// for the next flight holds that flight's replies, however many values
// the previous one had.
func TestStartIntoKeepsRepliesInItsStorage(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.ConnsPerPeer = 1 // every reply below comes through one reader
		_, addr := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		ctx := context.Background()

		var into Replies
		prevLen := 0
		var kept [][]*Response // earlier flights' replies, not in into
		var keptReqs [][]*Request
		for round := range 6 {
			// Growing, then a repeat of the largest and a smaller one.
			reqs := valueReqs(fmt.Sprintf("into%d", round), []int{3, 10, 24, 24, 5, 24}[round])
			f := c.StartInto(ctx, addr, reqs, 0, &into)
			resps, err := f.Wait()
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			for i, r := range resps {
				if r != &into.resps[i] {
					t.Fatalf("round %d: reply %d is not in the flight's Replies", round, i)
				}
				// Once the storage has grown to a round's values (the
				// rounds grow, so from a repeat on), a value costs no
				// allocation: it lies in the storage.
				if round > 0 && len(reqs) <= prevLen && !within(r.Value, into.vals) {
					t.Fatalf("round %d: reply %d's value is not in the flight's Replies", round, i)
				}
			}
			prevLen = max(prevLen, len(reqs))
			got := append([]*Response(nil), resps...)
			f.Release()

			// More traffic on the same connection, which refills its read
			// buffer: a flight without Replies and a Call.
			plain := valueReqs(fmt.Sprintf("plain%d", round), 5)
			pf := c.Start(ctx, addr, plain)
			presps, err := pf.Wait()
			if err != nil {
				t.Fatalf("round %d: plain flight: %v", round, err)
			}
			kept = append(kept, append([]*Response(nil), presps...))
			keptReqs = append(keptReqs, plain)
			pf.Release()
			one := valueReqs(fmt.Sprintf("call%d", round), 1)
			cr, err := c.Call(ctx, addr, one[0])
			if err != nil {
				t.Fatalf("round %d: call: %v", round, err)
			}
			kept = append(kept, []*Response{cr})
			keptReqs = append(keptReqs, one)

			checkValues(t, fmt.Sprintf("round %d, after more reads", round), got, reqs)
		}
		for i := range kept {
			checkValues(t, fmt.Sprintf("kept reply set %d, at the end", i), kept[i], keptReqs[i])
		}
	})
}

// A wave's flights can each decode into Replies of their own, side by
// side with flights that allocate theirs.
func TestWaveStartInto(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		_, a := startServer(t, cfg, echo)
		_, b := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		intos := make([]Replies, 2)
		for round := range 3 {
			w := c.NewWave(context.Background(), 0)
			ra, rb, rc := valueReqs(fmt.Sprint("a", round), 4), valueReqs(fmt.Sprint("b", round), 9), valueReqs(fmt.Sprint("c", round), 2)
			fa := w.StartInto(a, ra, &intos[0])
			fb := w.StartInto(b, rb, &intos[1])
			fc := w.Start(a, rc)
			w.Wait()
			for k, x := range []struct {
				f    *Flight
				reqs []*Request
				into *Replies
			}{{fa, ra, &intos[0]}, {fb, rb, &intos[1]}, {fc, rc, nil}} {
				resps, err := x.f.Wait()
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				checkValues(t, fmt.Sprintf("round %d", round), resps, x.reqs)
				for i, r := range resps {
					if in := x.into != nil && r == &x.into.resps[i]; in != (x.into != nil) {
						t.Fatalf("round %d, flight %d: reply %d in the flight's Replies: %v", round, k, i, in)
					}
				}
				x.f.Release()
			}
			w.Release()
		}
	})
}

// A flight that stopped waiting (its bound ran out) gets nothing written
// into its Replies afterwards, though its replies come later: the caller
// may already be using that storage for its next flight. Under -race a
// late write would also be reported.
func TestStartIntoAbandonedFlightLeavesRepliesAlone(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.ConnsPerPeer = 1
		h := &held{}
		_, slow := startServer(t, cfg, h)
		c := newTestClient(t, cfg)

		var into Replies
		late := valueReqs("late", 3)
		f := c.StartInto(context.Background(), slow, late, 50*time.Millisecond, &into)
		if _, err := f.Wait(); err == nil {
			t.Fatal("a flight nobody answered in time succeeded")
		}
		f.Release()

		// The next flight on the same storage and connection, answered
		// only after the abandoned one's replies went out first. It is
		// shorter, so a late reply written into the storage would land
		// past its replies (or fail on an index out of range).
		next := valueReqs("next", 1)
		nf := c.StartInto(context.Background(), slow, next, 0, &into)
		eventually(t, "both flights at the peer", func() bool { return h.count() == len(late)+len(next) })
		for _, hr := range h.take() {
			hr.w.Reply(&Response{ID: hr.req.ID, Value: hr.req.Value})
		}
		resps, err := nf.Wait()
		if err != nil {
			t.Fatal(err)
		}
		checkValues(t, "the next flight", resps, next)
		if len(into.vals) != len(next[0].Value) {
			t.Fatalf("the Replies hold %d value bytes, want only the next flight's %d", len(into.vals), len(next[0].Value))
		}
		nf.Release()
	})
}

// within reports whether v lies inside buf's array.
func within(v, buf []byte) bool {
	if len(v) == 0 || cap(buf) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	return p >= start && p+uintptr(len(v)) <= start+uintptr(len(buf))
}

// Replies decoded in place come and go in the reader's scratch slots: a
// reply must not inherit what the slot held (a reply without a value
// after one with), more replies may be buffered at once than a delivery
// takes (its 64), and a reply larger than the read buffer, read into a
// buffer of its own, is kept as it is. Reset then lets go of it all.
func TestStartIntoScratchAndLargeReplies(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.ConnsPerPeer = 1
		_, addr := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		ctx := context.Background()
		var into Replies
		run := func(what string, reqs []*Request) {
			t.Helper()
			f := c.StartInto(ctx, addr, reqs, 0, &into)
			resps, err := f.Wait()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			checkValues(t, what, resps, reqs)
			f.Release()
		}
		run("with values", valueReqs("v", 8))
		run("without values", make8(func(i int) *Request { return &Request{Op: OpPing, Key: fmt.Sprint("p", i)} }))
		many := make([]*Request, 300) // small, so that most are buffered at once
		for i := range many {
			many[i] = &Request{Op: OpSet, Key: fmt.Sprint("m", i), Value: []byte(fmt.Sprint("mv", i))}
		}
		run("300 at once", many)
		big := []*Request{
			{Op: OpSet, Key: "small", Value: []byte("before")},
			{Op: OpSet, Key: "big", Value: bytes.Repeat([]byte("B"), 3*bufferSize)},
			{Op: OpSet, Key: "small2", Value: []byte("after")},
		}
		run("a value larger than the read buffer", big)
		into.Reset()
		if len(into.resps) != 0 || len(into.vals) != 0 {
			t.Fatalf("after Reset: %d replies, %d value bytes held", len(into.resps), len(into.vals))
		}
		for i, r := range into.resps[:cap(into.resps)] {
			if r.Value != nil {
				t.Fatalf("after Reset, slot %d still points to a value", i)
			}
		}
	})
}

// make8 returns 8 requests made by mk.
func make8(mk func(i int) *Request) []*Request {
	reqs := make([]*Request, 8)
	for i := range reqs {
		reqs[i] = mk(i)
	}
	return reqs
}

// Replies whose frames straddle the reader's refills of its buffer: 200
// values of about a kilobyte, several buffers' worth per flight. The
// reader must hand over what it decoded in place before it reads again,
// whatever stopped it (the buffer running dry part-way through a frame).
func TestStartIntoRepliesStraddlingReads(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.ConnsPerPeer = 1
		_, addr := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		var into Replies
		for round := range 4 {
			reqs := make([]*Request, 200)
			for i := range reqs {
				v := bytes.Repeat([]byte(fmt.Sprintf("s%d-%d|", round, i)), 90+i%41)
				reqs[i] = &Request{Op: OpSet, Key: fmt.Sprint("s", i), Value: v}
			}
			f := c.StartInto(context.Background(), addr, reqs, 0, &into)
			resps, err := f.Wait()
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			checkValues(t, fmt.Sprint("round ", round), resps, reqs)
			f.Release()
		}
	})
}

// Reset keeps a Replies' storage for the next flight, unless a flight
// made it unusually large: that is let go, so one huge flight does not
// pin its memory for as long as the Replies lives.
func TestRepliesResetBoundsWhatItKeeps(t *testing.T) {
	var r Replies
	small := &Response{Value: make([]byte, 100)}
	r.prepare(16)
	for i := range 16 {
		r.keep(i, small, true)
	}
	r.Reset()
	if r.Len() != 0 || cap(r.resps) < 16 || cap(r.vals) < 1600 {
		t.Fatalf("after a small flight: %d replies held, room for %d and %d value bytes; want none held, room kept", r.Len(), cap(r.resps), cap(r.vals))
	}
	big := &Response{Value: make([]byte, maxKeptReplyBytes/4+1)}
	r.prepare(maxKeptReplies + 1)
	for i := range 4 {
		r.keep(i, big, true)
	}
	r.Reset()
	if r.resps != nil || r.vals != nil {
		t.Fatalf("after a flight of %d replies and %d value bytes: room kept for %d replies and %d bytes", maxKeptReplies+1, 4*len(big.Value), cap(r.resps), cap(r.vals))
	}
}
