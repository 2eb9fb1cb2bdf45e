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
		// The answered flight's replies in (only its sender's share left)
		// before the cancel, so they are not abandoned with the rest.
		eventually(t, "the good peer's replies", func() bool { return ok.remaining.Load() == 1 })
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

// Flights of a wave whose peers cannot be dialled at once go on in the
// background, as Start's do, each on a timer of its own set to what is
// left of the wave's time (a timer ticks for one receiver only): the
// others are answered meanwhile, and Wait returns at the wave's bound,
// not a bound counted from each Start, nor the dial's timeout.
func TestWaveWithStalledDials(t *testing.T) {
	checkNoLeaks(t)
	inner := NewInmemNetwork()
	cfg := testConfig(inner) // DialTimeout: waitTimeout
	_, good := startServer(t, cfg, echo)
	cfg.Network = stallNetwork{Network: inner, stalled: "10.9.9.9:1"}
	c := newTestClient(t, cfg)
	const bound, aged = 400 * time.Millisecond, 150 * time.Millisecond
	w := c.NewWave(context.Background(), bound)
	fastReqs := waveReqs("f", 2)
	fast := w.Start(good, fastReqs)
	// As if an earlier Start had taken a while.
	eventually(t, "the wave to age", func() bool { return time.Since(w.now) >= aged })
	slow := w.Start("10.9.9.9:1", waveReqs("s", 2))
	slow2 := w.Start("10.9.9.9:1", waveReqs("t", 1))
	for _, f := range []*Flight{slow, slow2} {
		if f.started == nil {
			t.Fatal("a flight to a stalled peer started synchronously")
		}
		if f.timer == w.timer || f.timer.limit > bound-aged {
			t.Fatalf("an asynchronous flight's timer runs %v, want its own, at most the wave's %v left", f.timer.limit, bound-aged)
		}
	}
	w.Wait()
	if d := time.Since(w.now); d < bound || d > waitTimeout/2 {
		t.Fatalf("Wait returned %v after the wave began, want just past its bound of %v", d, bound)
	}
	checkEchoed(t, fast, fastReqs)
	for _, f := range []*Flight{slow, slow2} {
		resps, err := f.Wait()
		if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrUnreachable) {
			t.Fatalf("stalled peer: err = %v", err)
		}
		for i, r := range resps {
			if r != nil {
				t.Fatalf("stalled peer reply %d: %+v", i, r)
			}
		}
		f.Release()
	}
	fast.Release()
	w.Release()
}

// A wave cut at its bound just as the last reply arrives leaves nothing
// behind in the pooled timer and done channel it goes back with: the next
// call on them gets its own reply, not the wave's stale signal.
func TestWaveLeavesItsCallClean(t *testing.T) {
	cfg := testConfig(NewInmemNetwork())
	// Replies after Delta microseconds, around the waves' 2 ms bound.
	_, slow := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
		time.Sleep(time.Duration(req.Delta) * time.Microsecond)
		w.Reply(&Response{ID: req.ID, Err: req.Key})
	}))
	_, good := startServer(t, cfg, echo)
	c := newTestClient(t, cfg)
	for i := range 300 {
		w := c.NewWave(context.Background(), 2*time.Millisecond)
		a := w.Start(slow, []*Request{{Op: OpPing, Key: "a", Delta: int64(1000 + i%20*100)}})
		b := w.Start(good, waveReqs("b", 1))
		w.Wait()
		a.Wait()
		b.Wait()
		a.Release()
		b.Release()
		w.Release()
		key := fmt.Sprint("after-", i)
		resp, err := c.CallWithin(context.Background(), good, &Request{Op: OpPing, Key: key}, time.Second)
		if err != nil || resp == nil || resp.Err != key {
			t.Fatalf("call %d after a wave cut at its bound = %+v, %v; want its own echo", i, resp, err)
		}
	}
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
