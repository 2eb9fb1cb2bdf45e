package node

import (
	"context"
	"fmt"
	"time"

	"github.com/starlingcache/starling/node/metrics"
)

// Crash stops n the way kill -9 would look to its peers: no leave message,
// listeners closed at once.
func Crash(n *Node) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = n.stop(ctx, false)
}

// Pause makes n believe its process was stopped for d just now, as after
// SIGSTOP and SIGCONT, which a test cannot do to one node of a process.
func Pause(n *Node, d time.Duration) {
	n.lastTick.Store(int64(n.monotonic() - d))
}

// InHandoff reports whether n still fetches missing keys from previous
// owners (the hand-off window after a ring change).
func InHandoff(n *Node) bool { return n.inHandoff(n.view.Load()) }

// SettleState describes n's hand-off window, for test failures.
func SettleState(n *Node) string {
	v := n.view.Load()
	n.settleMu.Lock()
	defer n.settleMu.Unlock()
	s := fmt.Sprintf("%s: ring %d members %v", n.cfg.Name, v.ring.Version(), v.ring.Members())
	if v.prev != nil {
		s += fmt.Sprintf(" prev %d %v settled %v", v.prev.Version(), v.prev.Members(), v.settled.Load())
	}
	for k, from := range n.settleFrom {
		s += fmt.Sprintf(" report ->%d from %v;", k.to, from)
	}
	return s
}

// MetricsOf returns n's request counters.
func MetricsOf(n *Node) metrics.Snapshot { return n.rec.Snapshot() }
