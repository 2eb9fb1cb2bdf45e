package node

import (
	"context"
	"time"
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
