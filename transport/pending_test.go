package transport

import (
	"context"
	"math/rand/v2"
	"testing"
)

// pendingMap behaves as a Go map through puts, gets, takes and clears,
// under churn that leaves stragglers behind while the window of IDs in
// flight wraps round the table, for IDs arriving consecutively (as a
// connection numbers them) and at strides that pile them onto few slots.
func TestPendingMapMatchesAMap(t *testing.T) {
	owners := []*Flight{{}, {}} // told apart by address only
	for _, stride := range []uint64{1, 3, 64, 1024} {
		r := rand.New(rand.NewPCG(stride, 7))
		var m pendingMap
		ref := map[uint64]int{}
		next := uint64(1)
		live := []uint64{}
		maxOver := 0
		for op := range 200_000 {
			switch k := r.IntN(10); {
			case k < 5 && len(ref) < 3000: // put
				id := next
				next += stride
				m.put(id, waiter{i: op, f: owners[op%2]})
				ref[id] = op
				live = append(live, id)
			case k < 8 && len(live) > 0: // take, oldest first mostly
				j := 0
				if r.IntN(3) == 0 {
					j = r.IntN(len(live))
				}
				id := live[j]
				// Another owner's take leaves the entry; its own takes it.
				if _, ok := m.takeOwn(id, owners[(ref[id]+1)%2], nil); ok {
					t.Fatalf("stride %d op %d: takeOwn(%d) by another flight took it", stride, op, id)
				}
				if _, ok := m.takeOwn(id, nil, &call{}); ok {
					t.Fatalf("stride %d op %d: takeOwn(%d) by a call took a flight's entry", stride, op, id)
				}
				live = append(live[:j], live[j+1:]...)
				var w waiter
				var ok bool
				if r.IntN(2) == 0 {
					w, ok = m.take(id)
				} else {
					w, ok = m.takeOwn(id, owners[ref[id]%2], nil)
				}
				if !ok || w.i != ref[id] {
					t.Fatalf("stride %d op %d: take(%d) = %v, %v; want %d", stride, op, id, w.i, ok, ref[id])
				}
				delete(ref, id)
				if _, ok := m.get(id); ok {
					t.Fatalf("stride %d: %d still there after take", stride, id)
				}
			case k < 9: // get, present or not
				id := uint64(r.IntN(int(next)+10)) + 1
				w, ok := m.get(id)
				want, wantOK := ref[id]
				if ok != wantOK || ok && w.i != want {
					t.Fatalf("stride %d op %d: get(%d) = %v, %v; want %v, %v", stride, op, id, w.i, ok, want, wantOK)
				}
			default:
				if r.IntN(500) == 0 {
					m.clear()
					clear(ref)
					live = live[:0]
				}
			}
			if m.len() != len(ref) {
				t.Fatalf("stride %d op %d: len %d, want %d", stride, op, m.len(), len(ref))
			}
			maxOver = max(maxOver, len(m.over))
		}
		seen := 0
		m.each(func(waiter) { seen++ })
		if seen != len(ref) {
			t.Fatalf("stride %d: each visited %d, want %d", stride, seen, len(ref))
		}
		if 2*m.len() > len(m.slots) {
			t.Fatalf("stride %d: %d entries in %d slots", stride, m.len(), len(m.slots))
		}
		// ID 0 marks an empty slot: a reply carrying it matches nothing.
		if _, ok := m.get(0); ok {
			t.Fatalf("stride %d: get(0) found an entry", stride)
		}
		if n := m.len(); n > 0 {
			if _, ok := m.take(0); ok || m.len() != n {
				t.Fatalf("stride %d: take(0) = %v, len %d -> %d", stride, ok, n, m.len())
			}
		}
		// Consecutive IDs, taken mostly in order, find their own slots:
		// few stragglers outlive a table's worth of later IDs.
		if stride == 1 && maxOver > 16 {
			t.Errorf("consecutive IDs: up to %d entries beside a table of %d", maxOver, len(m.slots))
		}
		t.Logf("stride %d: up to %d entries beside the table; at the end %d entries, %d beside a table of %d",
			stride, maxOver, m.len(), len(m.over), len(m.slots))
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
