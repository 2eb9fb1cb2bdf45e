package transport

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// pendingMap behaves as a Go map through puts, gets, takes and clears,
// for IDs arriving consecutively (as a connection numbers them) with most
// taken soon and in order, some at random, and, in the straggler cases,
// some kept waiting across many tables' worth of later IDs; and for IDs at
// strides that pile them onto few slots. Entries belong to flights and
// calls, and a take by anyone else leaves an entry alone.
func TestPendingMapMatchesAMap(t *testing.T) {
	type owner struct {
		f  *Flight
		cl *call
	}
	owners := []owner{{f: &Flight{}}, {cl: &call{}}, {f: &Flight{}}, {cl: &call{}}}
	for _, tc := range []struct {
		stride     uint64
		stragglers bool
	}{{1, false}, {1, true}, {3, false}, {64, false}, {1024, false}} {
		name := fmt.Sprintf("stride %d", tc.stride)
		if tc.stragglers {
			name += " with stragglers"
		}
		r := rand.New(rand.NewPCG(tc.stride, 7))
		var m pendingMap
		ref := map[uint64]int{}
		next := uint64(1)
		var live, slow []uint64 // slow: the stragglers, taken rarely
		maxOver := 0
		take := func(op int, ids *[]uint64, j int) {
			id := (*ids)[j]
			*ids = append((*ids)[:j], (*ids)[j+1:]...)
			own := owners[ref[id]%len(owners)]
			for k := 1; k < len(owners); k++ {
				other := owners[(ref[id]+k)%len(owners)]
				if _, ok := m.takeOwn(id, other.f, other.cl); ok {
					t.Fatalf("%s op %d: takeOwn(%d) by another owner took it", name, op, id)
				}
			}
			var w waiter
			var ok bool
			if r.IntN(2) == 0 {
				w, ok = m.take(id)
			} else {
				w, ok = m.takeOwn(id, own.f, own.cl)
			}
			if !ok || w.i != ref[id] {
				t.Fatalf("%s op %d: take(%d) = %v, %v; want %d", name, op, id, w.i, ok, ref[id])
			}
			delete(ref, id)
			if _, ok := m.get(id); ok {
				t.Fatalf("%s: %d still there after take", name, id)
			}
		}
		for op := range 200_000 {
			switch k := r.IntN(10); {
			case k < 5 && len(ref) < 3000: // put
				id := next
				next += tc.stride
				own := owners[op%len(owners)]
				m.put(id, waiter{i: op, f: own.f, cl: own.cl})
				ref[id] = op
				if tc.stragglers && r.IntN(40) == 0 {
					slow = append(slow, id)
				} else {
					live = append(live, id)
				}
			case k < 8 && len(live) > 0: // take, oldest first mostly
				j := 0
				if r.IntN(3) == 0 {
					j = r.IntN(len(live))
				}
				take(op, &live, j)
			case k < 9: // get, present or not
				id := uint64(r.IntN(int(next)+10)) + 1
				w, ok := m.get(id)
				want, wantOK := ref[id]
				if ok != wantOK || ok && w.i != want {
					t.Fatalf("%s op %d: get(%d) = %v, %v; want %v, %v", name, op, id, w.i, ok, want, wantOK)
				}
			default:
				if len(slow) > 0 && r.IntN(20) == 0 {
					take(op, &slow, r.IntN(len(slow)))
				}
				if r.IntN(500) == 0 {
					m.clear()
					clear(ref)
					live, slow = live[:0], slow[:0]
				}
			}
			if m.len() != len(ref) {
				t.Fatalf("%s op %d: len %d, want %d", name, op, m.len(), len(ref))
			}
			maxOver = max(maxOver, len(m.over))
			// IDs a connection numbers spread over slots: the map beside
			// the table stays small.
			if tc.stride == 1 && 16*(len(m.over)-1) > len(m.slots) {
				t.Fatalf("%s op %d: %d entries beside a table of %d", name, op, len(m.over), len(m.slots))
			}
		}
		seen := 0
		m.each(func(waiter) { seen++ })
		if seen != len(ref) {
			t.Fatalf("%s: each visited %d, want %d", name, seen, len(ref))
		}
		if 2*m.len() > len(m.slots) {
			t.Fatalf("%s: %d entries in %d slots", name, m.len(), len(m.slots))
		}
		if len(m.slots) > 16*max(3000, pendingMinSlots) {
			t.Fatalf("%s: the table grew to %d slots for at most 3000 entries", name, len(m.slots))
		}
		// ID 0 marks an empty slot: a reply carrying it matches nothing.
		if _, ok := m.get(0); ok {
			t.Fatalf("%s: get(0) found an entry", name)
		}
		if n := m.len(); n > 0 {
			if _, ok := m.take(0); ok || m.len() != n {
				t.Fatalf("%s: take(0) = %v, len %d -> %d", name, ok, n, m.len())
			}
		}
		switch {
		case tc.stride == 1 && !tc.stragglers && maxOver > 0:
			t.Errorf("%s: IDs taken mostly in order went beside the table (up to %d)", name, maxOver)
		case tc.stragglers && maxOver == 0:
			t.Errorf("%s: no ID ever found its slot held: the stragglers did not straggle", name)
		}
		t.Logf("%s: up to %d entries beside the table; at the end %d entries, %d beside a table of %d",
			name, maxOver, m.len(), len(m.over), len(m.slots))
	}
}

func BenchmarkPendingMap(b *testing.B) {
	b.Run("pendingMap", func(b *testing.B) {
		var m pendingMap
		id := uint64(1)
		for b.Loop() {
			for j := range 16 {
				m.put(id+uint64(j), waiter{i: j})
			}
			for j := range 16 {
				m.take(id + uint64(j))
			}
			id += 16
		}
	})
	b.Run("map", func(b *testing.B) {
		m := map[uint64]waiter{}
		id := uint64(1)
		for b.Loop() {
			for j := range 16 {
				m[id+uint64(j)] = waiter{i: j}
			}
			for j := range 16 {
				// As the connection did: look the reply's ID up, then delete.
				if w, ok := m[id+uint64(j)]; ok && w.i >= 0 {
					delete(m, id+uint64(j))
				}
			}
			id += 16
		}
	})
}

// A reply without its request's ID (ID 0: a handler that forgot to copy
// it) matches no waiting request: the calls waiting on the connection
// still get their own replies, and the connection's accounting stays
// whole.
func TestReplyWithoutIDMatchesNothing(t *testing.T) {
	forEachNetwork(t, func(t *testing.T, nw Network) {
		cfg := testConfig(nw)
		cfg.ConnsPerPeer = 1
		arrived, release := make(chan struct{}), make(chan struct{})
		_, addr := startServer(t, cfg, HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
			switch req.Key {
			case "slow":
				close(arrived)
				go func() { <-release; w.Reply(&Response{ID: req.ID, Err: "slow"}) }()
			case "zero":
				w.Reply(&Response{Err: "no id"})
				w.Reply(&Response{ID: req.ID, Err: "zero"})
			}
		}))
		c := newTestClient(t, cfg)
		type result struct {
			resp *Response
			err  error
		}
		slow := make(chan result, 1)
		go func() {
			resp, err := c.CallWithin(context.Background(), addr, &Request{Op: OpPing, Key: "slow"}, waitTimeout/2)
			slow <- result{resp, err}
		}()
		<-arrived
		if resp, err := c.Call(context.Background(), addr, &Request{Op: OpPing, Key: "zero"}); err != nil || resp.Err != "zero" {
			t.Fatalf("call answered after a reply without ID = %+v, %v", resp, err)
		}
		close(release)
		if r := <-slow; r.err != nil || r.resp.Err != "slow" {
			t.Fatalf("waiting call after a reply without ID = %+v, %v; want its own reply", r.resp, r.err)
		}
	})
}
