package node

import (
	"runtime"
	"testing"

	"github.com/starlingcache/starling/transport"
)

// A node that may use one core forwards over one connection per peer;
// with more it keeps the transport's default, which lets a peer serve its
// requests on more than one core.
func TestPeerConns(t *testing.T) {
	def := transport.DefaultConfig().ConnsPerPeer
	if def < 2 {
		t.Fatalf("transport default ConnsPerPeer %d: the test assumes at least 2", def)
	}
	for procs, want := range map[int]int{1: 1, 2: def, 8: def} {
		if got := peerConns(procs); got != want {
			t.Errorf("peerConns(%d) = %d, want %d", procs, got, want)
		}
	}
	cfg := DefaultConfig()
	if got, want := cfg.Transport.ConnsPerPeer, peerConns(runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("DefaultConfig: ConnsPerPeer %d with GOMAXPROCS %d, want %d", got, runtime.GOMAXPROCS(0), want)
	}
	cfg.Name = "n1"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
}
