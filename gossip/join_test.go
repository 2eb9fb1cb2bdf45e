package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestSeedLocalhostName(t *testing.T) {
	// The real resolver: localhost may give 127.0.0.1 and ::1; the node
	// listens on the first only, and the join must still succeed.
	a := startNode(t, nodeConfig(t, "a"))
	_, port, _ := net.SplitHostPort(a.Addr())
	b := startNode(t, nodeConfig(t, "b", net.JoinHostPort("localhost", port)))
	if err := b.WaitJoined(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatalf("WaitJoined: %v", err)
	}
	waitConverged(t, []*testNode{a, b})
	contacted, candidates, err := b.joinSeeds(ctxTimeout(t, waitTimeout), 0)
	t.Logf("localhost: %d of %d addresses answered (%v)", contacted, candidates, err)
	if contacted != 1 {
		t.Errorf("joinSeeds: %d answered, want 1", contacted)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestSeedNameJoinsEveryAddress(t *testing.T) {
	// One name, as a headless service gives, resolving to a dead address
	// and to two nodes of two separate clusters: the joiner reaches both
	// (merging the clusters) despite the dead one. Loopback addresses
	// differ by IP here, so the nodes bind 127.0.0.2 and 127.0.0.3 on the
	// same port.
	probe := startNode(t, nodeConfig(t, "probe"))
	_, port, _ := net.SplitHostPort(probe.Addr())
	_ = probe.Shutdown()

	var nodes []*testNode
	for i, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		cfg := nodeConfig(t, fmt.Sprintf("s%d", i))
		cfg.BindAddr = net.JoinHostPort(ip, port)
		nodes = append(nodes, startNodeAt(t, cfg))
	}
	cfg := nodeConfig(t, "joiner", net.JoinHostPort("cache.default.svc.test", port))
	cfg.RejoinInterval = 0 // the first join alone must do it
	cfg.Resolver = fakeResolver{"cache.default.svc.test": {
		netip.MustParseAddr("127.0.0.4"), // nobody there
		netip.MustParseAddr("127.0.0.2"),
		netip.MustParseAddr("127.0.0.3"),
	}}
	joiner := startNode(t, cfg)
	waitConverged(t, append(nodes, joiner))
}

func TestRejoinSamplesSeeds(t *testing.T) {
	var seeds []string
	for range 5 {
		seeds = append(seeds, closedAddr(t))
	}
	// Its join loop retries in the background meanwhile; that is harmless.
	n := startNode(t, nodeConfig(t, "n", seeds...))
	contacted, candidates, err := n.joinSeeds(ctxTimeout(t, waitTimeout), rejoinFanout)
	if contacted != 0 || candidates != rejoinFanout || err == nil {
		t.Errorf("sampled joinSeeds = %d of %d, %v; want 0 of %d and errors", contacted, candidates, err, rejoinFanout)
	}
	contacted, candidates, err = n.joinSeeds(ctxTimeout(t, waitTimeout), 0)
	if contacted != 0 || candidates != len(seeds) || err == nil {
		t.Errorf("full joinSeeds = %d of %d, %v; want 0 of %d", contacted, candidates, err, len(seeds))
	}
	// One line per address, without memberlist's multi-line framing.
	if strings.Count(err.Error(), "\n") != len(seeds)-1 || strings.Contains(err.Error(), "error occurred") {
		t.Errorf("join errors not one line each:\n%v", err)
	}
}

func TestRejoinWarnsOnce(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var r rejoinLog
	fail := errors.New("connection refused")
	for _, failed := range []bool{false, true, true, true, false, false, true, true} {
		if failed {
			r.report(log, true, 0, 2, fail)
		} else {
			r.report(log, false, 1, 2, nil)
		}
	}
	out := buf.String()
	count := func(s string) int { return strings.Count(out, s) }
	if got := count("level=WARN"); got != 2 {
		t.Errorf("%d warnings, want 2 (one per outage):\n%s", got, out)
	}
	if got := count("level=INFO"); got != 1 || !strings.Contains(out, "seeds answer again") {
		t.Errorf("%d info lines, want 1 recovery:\n%s", got, out)
	}
	if got := count(`level=DEBUG msg="re-join: no seed answered"`); got != 3 {
		t.Errorf("%d debug repeats, want 3:\n%s", got, out)
	}
}

// A join refused for a key mismatch is told apart from a seed that is not
// up yet, so it can be logged as the configuration error it is.
func TestKeyMismatchRecognised(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false},
		{errors.New("1 error occurred:\n\t* failed to join 127.0.0.1:7946: remote state is encrypted and encryption is not configured"), true},
		{errors.New("failed to join: encryption is configured but remote state is not encrypted"), true},
		{errors.New("no installed keys could decrypt the message"), true},
	} {
		if got := keyMismatch(c.err); got != c.want {
			t.Errorf("keyMismatch(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
