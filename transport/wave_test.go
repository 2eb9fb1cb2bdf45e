package transport

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// waveReqs returns n pings keyed prefix0, prefix1...
func waveReqs(prefix string, n int) []*Request {
	reqs := make([]*Request, n)
	for i := range reqs {
		reqs[i] = &Request{Op: OpPing, Key: fmt.Sprint(prefix, i)}
	}
	return reqs
}

// checkEchoed fails unless f's outcome is every request echoed, in order.
func checkEchoed(t *testing.T, f *Flight, reqs []*Request) {
	t.Helper()
	resps, err := f.Wait()
	if err != nil {
		t.Fatalf("flight: %v", err)
	}
	if f.Sent() != len(reqs) {
		t.Fatalf("Sent = %d, want %d", f.Sent(), len(reqs))
	}
	for i, r := range resps {
		if r == nil || r.Err != reqs[i].Key {
			t.Fatalf("reply %d = %+v, want the echo of %q", i, r, reqs[i].Key)
		}
	}
}

// A wave's Wait returns once the last of its flights is answered, however
// the peers' answers interleave, and its flights then hold their replies;
// pooled waves and flights are reused cleanly.
func TestWaveWaitsForEveryFlight(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		hs := make([]*held, 3)
		addrs := make([]string, 3)
		for i := range hs {
			hs[i] = &held{}
			_, addrs[i] = startServer(t, cfg, hs[i])
		}
		_, echoAddr := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)
		for round := range 3 {
			w := c.NewWave(context.Background(), 0)
			reqs := make([][]*Request, 3)
			flights := make([]*Flight, 3)
			for i := range flights {
				reqs[i] = waveReqs(fmt.Sprintf("r%d-n%d-", round, i), 2+i)
				flights[i] = w.Start(addrs[i], reqs[i])
			}
			echoed := waveReqs("e", 4)
			fe := w.Start(echoAddr, echoed)
			empty := w.Start(echoAddr, nil)
			done := make(chan struct{})
			go func() {
				w.Wait()
				close(done)
			}()
			// Answer the peers one at a time, the last started first.
			for _, i := range []int{2, 0, 1} {
				eventually(t, "the peer's requests", func() bool { return hs[i].count() == len(reqs[i]) })
				select {
				case <-done:
					t.Fatalf("round %d: Wait returned before peer %d answered", round, i)
				default:
				}
				for _, hr := range hs[i].take() {
					hr.w.Reply(&Response{ID: hr.req.ID, Err: hr.req.Key})
				}
			}
			select {
			case <-done:
			case <-time.After(waitTimeout):
				t.Fatalf("round %d: Wait did not return after every peer answered", round)
			}
			for i, f := range flights {
				checkEchoed(t, f, reqs[i])
				f.Release()
			}
			checkEchoed(t, fe, echoed)
			fe.Release()
			if resps, err := empty.Wait(); err != nil || len(resps) != 0 {
				t.Fatalf("empty flight = %v, %v", resps, err)
			}
			empty.Release()
			w.Release()
		}
	})
}

// A wave whose bound passes stops waiting for every flight at once: the
// answered ones keep their replies, the hung one reports the timeout, as
// its own flight would. Cancelling the context does the same.
func TestWaveStopsAtItsBound(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		h := &held{}
		_, hung := startServer(t, cfg, h)
		_, good := startServer(t, cfg, echo)
		c := newTestClient(t, cfg)

		const bound = 100 * time.Millisecond
		begin := time.Now()
		w := c.NewWave(context.Background(), bound)
		okReqs := waveReqs("ok", 3)
		ok := w.Start(good, okReqs)
		stuck := w.Start(hung, waveReqs("stuck", 2))
		w.Wait()
		if d := time.Since(begin); d < bound {
			t.Fatalf("Wait returned after %v, before the wave's bound of %v", d, bound)
		}
		checkEchoed(t, ok, okReqs)
		resps, err := stuck.Wait()
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("hung peer: err = %v, want ErrTimeout", err)
		}
		if resps[0] != nil || resps[1] != nil || stuck.Sent() != 2 {
			t.Fatalf("hung peer: replies %v, Sent %d; want none, 2", resps, stuck.Sent())
		}
		ok.Release()
		stuck.Release()
		w.Release()
		// Answered now, the abandoned requests reach nobody.
		for _, hr := range h.take() {
			hr.w.Reply(&Response{ID: hr.req.ID})
		}

		ctx, cancel := context.WithCancel(context.Background())
		w = c.NewWave(ctx, 0)
		ok = w.Start(good, okReqs)
		stuck = w.Start(hung, waveReqs("stuck", 1))
		eventually(t, "the hung peer's request", func() bool { return h.count() == 1 })
		cancel()
		w.Wait()
		checkEchoed(t, ok, okReqs)
		if _, err := stuck.Wait(); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wave: err = %v, want context.Canceled", err)
		}
		ok.Release()
		stuck.Release()
		w.Release()
		for _, hr := range h.take() {
			hr.w.Reply(&Response{ID: hr.req.ID})
		}
	})
}

// A flight of a wave whose peer cannot be dialled at once goes on in the
// background, as Start's does, bounded by the wave: the others are
// answered meanwhile, and Wait returns at the bound.
func TestWaveWithAStalledDial(t *testing.T) {
	checkNoLeaks(t)
	inner := NewInmemNetwork()
	cfg := testConfig(inner)
	_, good := startServer(t, cfg, echo)
	cfg.Network = stallNetwork{Network: inner, stalled: "10.9.9.9:1"}
	c := newTestClient(t, cfg)
	const bound = 200 * time.Millisecond
	begin := time.Now()
	w := c.NewWave(context.Background(), bound)
	slow := w.Start("10.9.9.9:1", waveReqs("s", 2))
	fastReqs := waveReqs("f", 2)
	fast := w.Start(good, fastReqs)
	if d := time.Since(begin); d > bound/2 {
		t.Fatalf("starting two flights took %v: Start waited for the stalled dial", d)
	}
	w.Wait()
	if d := time.Since(begin); d < bound {
		t.Fatalf("Wait returned after %v, before the bound", d)
	}
	checkEchoed(t, fast, fastReqs)
	resps, err := slow.Wait()
	if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrUnreachable) {
		t.Fatalf("stalled peer: err = %v", err)
	}
	if resps[0] != nil || resps[1] != nil {
		t.Fatalf("stalled peer replies: %v", resps)
	}
	slow.Release()
	fast.Release()
	w.Release()
}

// Misuse that would lose replies or hang panics instead.
func TestWaveMisusePanics(t *testing.T) {
	cfg := testConfig(NewInmemNetwork())
	_, addr := startServer(t, cfg, echo)
	c := newTestClient(t, cfg)
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", what)
			}
		}()
		f()
	}
	w := c.NewWave(context.Background(), 0)
	f := w.Start(addr, waveReqs("p", 1))
	mustPanic("Flight.Wait before Wave.Wait", func() { f.Wait() })
	mustPanic("Wave.Release before Wave.Wait", w.Release)
	w.Wait()
	mustPanic("Wave.Start after Wave.Wait", func() { w.Start(addr, nil) })
	mustPanic("a second Wave.Wait", w.Wait)
	if _, err := f.Wait(); err != nil {
		t.Fatal(err)
	}
	f.Release()
	w.Release()
}
