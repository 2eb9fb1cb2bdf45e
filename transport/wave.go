package transport

import (
	"context"
	"sync/atomic"
	"time"
)

// Wave is a set of flights started together and waited for together, as a
// pipeline split between several peers is: they share one timer and one
// wake-up. Waiting for each flight in turn arms a timer per flight and
// usually parks the caller once per peer, since the peers answer one
// after another; a smart client fanning 16 requests out to three nodes
// spent a tenth of its time per request on that.
//
// Start each flight with Start, call Wait once, then each flight's Wait
// (which returns at once) and Release, and finally the wave's Release. A
// Wave is used by one goroutine.
type Wave struct {
	c        *Client
	ctx      context.Context
	d        time.Duration // as StartWithin's
	now      time.Time     // when the wave began: its flights' deadline counts from it
	deadline int64         // the flights' Request.Deadline
	timer    *call         // the flights' timer and done channel
	flights  []*Flight
	// left counts the flights not yet answered, plus one for the waiter
	// until Wait begins waiting; whoever brings it to zero signals
	// timer.done.
	left   atomic.Int32
	waited bool
}

// NewWave returns an empty wave whose flights are bounded by ctx and by d
// counted from now, as StartWithin's flight is (d <= 0: by
// Config.CallTimeout).
func (c *Client) NewWave(ctx context.Context, d time.Duration) *Wave {
	w, _ := c.waves.Get().(*Wave)
	if w == nil {
		w = new(Wave)
	}
	w.c, w.ctx, w.d, w.now = c, ctx, d, time.Now()
	w.timer = c.getCall(ctx, w.now, d)
	w.deadline = deadlineMillis(ctx, w.now, w.timer.limit)
	w.left.Store(1)
	return w
}

// Start sends reqs to the peer at addr as part of the wave, as StartWithin
// does, and returns its flight. The flight's Wait may be called only after
// the wave's, and then returns at once.
func (w *Wave) Start(addr string, reqs []*Request) *Flight {
	return w.StartInto(addr, reqs, nil)
}

// StartInto is Start whose replies are decoded into into, as
// Client.StartInto's are (nil: as Start).
func (w *Wave) StartInto(addr string, reqs []*Request, into *Replies) *Flight {
	if w.waited {
		panic("transport: Wave.Start after Wave.Wait")
	}
	return w.c.startFlight(w.ctx, addr, reqs, w.d, w, into)
}

// Wait returns once every flight of the wave is answered, or failed with
// its connection, or time has run out (ctx, or the wave's bound): the
// replies not in by then are abandoned, and their flights' Wait report
// the timeout as Flight.Wait would. Call it once.
func (w *Wave) Wait() {
	if w.waited {
		panic("transport: Wave.Wait called twice")
	}
	w.waited = true
	late := false
	for _, f := range w.flights {
		if f.started != nil {
			<-f.started // bounded by the flight's own timer, set to the wave's time left
		}
		// Flights share the deadline: one out of time (the wave's tick
		// may even have gone to its sender) means they all are.
		late = late || outOfTime(f.err)
	}
	if late {
		w.abandon()
	} else {
		for _, f := range w.flights {
			// The sender's share of the flight: a flight with every reply
			// in, or nothing sent, is answered now.
			if f.remaining.Add(-1) == 0 {
				w.left.Add(-1)
			}
		}
		if w.left.Add(-1) != 0 && !w.timer.awaitDone(w.ctx) {
			w.abandon()
		}
	}
	// After abandon, the last reply may have signalled just before: the
	// pooled call must go back with its channel empty.
	select {
	case <-w.timer.done:
	default:
	}
	for _, f := range w.flights {
		if f.timer != w.timer && f.timer != nil {
			w.c.putCall(f.timer) // an asynchronous start's own
		}
		f.timer = nil
	}
	w.c.putCall(w.timer)
	w.timer = nil
}

// abandon stops waiting for the replies not yet in, on every flight.
func (w *Wave) abandon() {
	for _, f := range w.flights {
		if f.sent > 0 {
			f.abandon()
		}
	}
}

// maxPooledWave bounds the flights slice a released wave keeps.
const maxPooledWave = 64

// Release gives the wave back for a later NewWave to reuse. Call it once,
// after Wait and after its flights' own Wait and Release: a flight still
// refers to its wave, which a later NewWave may be using.
func (w *Wave) Release() {
	if !w.waited {
		panic("transport: Wave.Release before Wave.Wait")
	}
	c, flights := w.c, w.flights
	clear(flights)
	if cap(flights) > maxPooledWave {
		flights = nil
	}
	*w = Wave{flights: flights[:0]}
	c.waves.Put(w)
}
