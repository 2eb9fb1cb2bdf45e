package node

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starlingcache/starling/gossip"
	"github.com/starlingcache/starling/node/metrics"
	"github.com/starlingcache/starling/transport"
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

// JoinBeforeFirstRing makes n, once started, wait for its gossip join to
// see want members before it builds its first ring, as happens when the
// background join is quick: the first ring then holds the whole cluster.
func JoinBeforeFirstRing(t testing.TB, n *Node, want int) {
	n.gossipStarted = func(g *gossip.Gossip) {
		deadline := time.Now().Add(10 * time.Second)
		for len(g.Members()) < want {
			if time.Now().After(deadline) {
				t.Errorf("%s: gossip listed %d members after 10s, want %d before the first ring", n.cfg.Name, len(g.Members()), want)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// PrevMembers returns the members of the ring n fetches missing keys from
// during its hand-off window, or nil if it has none.
func PrevMembers(n *Node) []string {
	if v := n.view.Load(); v.prev != nil {
		return v.prev.Members()
	}
	return nil
}

// Suspendable gives n, before Start, a boot clock a test can move ahead:
// suspend(d) makes n believe its machine was just suspended for d (the
// monotonic clock stood still, the boot clock did not), which a test
// cannot do to the machine it runs on.
func Suspendable(n *Node) (suspend func(d time.Duration)) {
	n.mu.Lock()
	started := n.started
	n.mu.Unlock()
	if started {
		panic("node.Suspendable: call it before Start")
	}
	var slept atomic.Int64
	n.bootClock = func() (time.Duration, bool) {
		return n.monotonic() + time.Duration(slept.Load()), true
	}
	return func(d time.Duration) { slept.Add(int64(d)) }
}

// MarkDown makes n believe a call to peer just timed out, as every call n
// had in flight does when its process was stopped.
func MarkDown(n, peer *Node) {
	n.peers.failed(peer.Addr(), transport.ErrTimeout)
}

// WokeLongAgo makes n's last noticed pause old enough that its peer
// marks count again (see justWoke), its resync window still open.
func WokeLongAgo(n *Node) {
	n.noticed.Store(int64(n.monotonic() - 2*n.cfg.PeerBackoff - time.Millisecond))
}

// Marked reports whether n skips peer for now (any failure counts).
func Marked(n, peer *Node) bool { return n.peers.down(peer.Addr()) }

// MarkUnreachable makes n skip peer for PeerBackoff as after a refused
// connection: a peer that could not be reached at all.
func MarkUnreachable(n, peer *Node) {
	n.peers.failed(peer.Addr(), fmt.Errorf("%w: %w", transport.ErrUnreachable, transport.ErrNotSent))
}

// ArenaFlights is how many forwarded flights have their replies in a
// since its last Reset.
func ArenaFlights(a *Arena) int { return a.nfwd }

// ArenaReplies is how many forwarded replies a's Replies hold.
func ArenaReplies(a *Arena) int {
	n := 0
	for _, r := range a.fwd {
		n += r.Len()
	}
	return n
}
