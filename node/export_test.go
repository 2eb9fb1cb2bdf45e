package node

import "context"

// Crash stops n the way kill -9 would look to its peers: no leave message,
// listeners closed at once.
func Crash(n *Node) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = n.stop(ctx, false)
}
