package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestClusterJoinSeesEveryone(t *testing.T) {
	nodes := startCluster(t, 5, nodeConfig, nil)
	for _, n := range nodes {
		members := n.Members()
		for i, m := range members {
			if i > 0 && members[i-1].Name >= m.Name {
				t.Errorf("%s: Members not sorted by name: %v", n.name, members)
			}
			var owner *testNode
			for _, o := range nodes {
				if o.name == m.Name {
					owner = o
				}
			}
			if m.GossipAddr != owner.Addr() {
				t.Errorf("%s sees %s at %q, want %q", n.name, m.Name, m.GossipAddr, owner.Addr())
			}
			if want := (Meta{DataAddr: dataAddrOf(m.Name), Proto: 1}); !reflect.DeepEqual(m.Meta, want) {
				t.Errorf("%s sees %s with Meta %+v, want %+v", n.name, m.Name, m.Meta, want)
			}
			if m.State != StateAlive {
				t.Errorf("%s sees %s %v, want alive", n.name, m.Name, m.State)
			}
		}
		// Under CPU starvation the fast preset can briefly declare a live
		// node dead (it then refutes and rejoins): wait, do not sample.
		waitUntil(t, n.name+": NumMembers == 5", func() bool { return n.NumMembers() == len(nodes) })
		if lm := n.LocalMember(); lm.Name != n.name || lm.GossipAddr != n.Addr() || lm.State != StateAlive {
			t.Errorf("%s: LocalMember = %+v", n.name, lm)
		}
		if err := n.WaitJoined(ctxTimeout(t, waitTimeout)); err != nil {
			t.Errorf("%s: WaitJoined: %v", n.name, err)
		}
	}
	// Every node gets a join event for every node, itself included.
	for _, n := range nodes {
		for _, o := range nodes {
			waitUntil(t, fmt.Sprintf("%s to get EventJoin(%s)", n.name, o.name), func() bool {
				_, ok := n.col.find(EventJoin, o.name, time.Time{})
				return ok
			})
		}
		first := func() Event {
			n.col.mu.Lock()
			defer n.col.mu.Unlock()
			return n.col.events[0].Event
		}()
		if first.Kind != EventJoin || first.Member.Name != n.name {
			t.Errorf("%s: first event %v %s, want its own join", n.name, first.Kind, first.Member.Name)
		}
	}
}

func TestUpdateMetaIsSeenByOthers(t *testing.T) {
	nodes := startCluster(t, 3, nodeConfig, nil)
	since := time.Now()
	want := Meta{DataAddr: "127.0.0.1:7001", RespAddr: "127.0.0.1:6379", HTTPAddr: "[::1]:8080", Proto: 7}
	if err := nodes[1].UpdateMeta(ctxTimeout(t, waitTimeout), want); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	if got := nodes[1].LocalMember().Meta; !reflect.DeepEqual(got, want) {
		t.Errorf("LocalMember().Meta = %+v, want %+v", got, want)
	}
	for _, n := range nodes {
		// An update, or a join if a false suspicion had dropped node-1
		// meanwhile (the fast preset on a starved CPU).
		waitUntil(t, n.name+" to get the update", func() bool {
			_, ok := n.col.findWhere(since, func(e Event) bool {
				return e.Kind != EventLeave && e.Member.Name == "node-1" && reflect.DeepEqual(e.Member.Meta, want)
			})
			return ok
		})
		waitUntil(t, n.name+" to list the new Meta", func() bool {
			m, _ := member(n.Gossip, "node-1")
			return reflect.DeepEqual(m.Meta, want)
		})
	}
}

func TestGracefulLeaveIsSeenAsLeft(t *testing.T) {
	nodes := startCluster(t, 3, nodeConfig, nil)
	leaver := nodes[2]
	start := time.Now()
	if err := leaver.Leave(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if st := leaver.LocalMember().State; st != StateLeft {
		t.Errorf("leaver LocalMember().State = %v, want left", st)
	}
	leftEvent := func(e Event) bool {
		return e.Kind == EventLeave && e.Member.Name == "node-2" && e.Member.State == StateLeft
	}
	for _, n := range nodes[:2] {
		waitUntil(t, n.name+" to see node-2 leave (state left)", func() bool {
			_, ok := n.col.findWhere(start, leftEvent)
			return ok
		})
		ev, _ := n.col.findWhere(start, leftEvent)
		if upd, ok := n.col.find(EventUpdate, "node-2", start); !ok || upd.Member.State != StateLeaving || !upd.at.Before(ev.at) {
			t.Errorf("%s: no EventUpdate(node-2, leaving) before the leave: %+v", n.name, upd)
		}
		waitUntil(t, n.name+" to drop node-2", func() bool {
			_, ok := member(n.Gossip, "node-2")
			return !ok
		})
		t.Logf("%s saw the leave after %v", n.name, ev.at.Sub(start))
	}
	// The leaver sees its own departure too, and calling Leave again is fine.
	waitUntil(t, "leaver's own EventLeave", func() bool {
		_, ok := leaver.col.findWhere(start, leftEvent)
		return ok
	})
	if err := leaver.Leave(ctxTimeout(t, waitTimeout)); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := leaver.UpdateMeta(ctxTimeout(t, waitTimeout), Meta{}); !errors.Is(err, ErrLeft) {
		t.Errorf("UpdateMeta after Leave = %v, want ErrLeft", err)
	}
}

func TestCrashIsDetected(t *testing.T) {
	nodes := startCluster(t, 3, fastConfig, nil)
	start := time.Now()
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, n := range nodes[:2] {
		waitUntil(t, n.name+" to declare node-2 dead", func() bool {
			_, ok := n.col.find(EventLeave, "node-2", start)
			return ok
		})
		ev, _ := n.col.find(EventLeave, "node-2", start)
		if ev.Member.State != StateDead {
			t.Errorf("%s: EventLeave(node-2) state %v, want dead", n.name, ev.Member.State)
		}
		t.Logf("%s declared node-2 dead after %v", n.name, ev.at.Sub(start))
	}
	waitConverged(t, nodes[:2])
}

func TestJoinRetriesUntilSeedIsUp(t *testing.T) {
	// Learn a port gossip can bind, then free it: the seed will come up
	// there later.
	probe := startNode(t, nodeConfig(t, "probe"))
	seedAddr := probe.Addr()
	if err := probe.Shutdown(); err != nil {
		t.Fatal(err)
	}

	joiner := startNode(t, nodeConfig(t, "joiner", seedAddr))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := joiner.WaitJoined(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitJoined before the seed is up = %v, want DeadlineExceeded", err)
	}

	cfg := nodeConfig(t, "seed")
	cfg.BindAddr = seedAddr
	seed := startNodeAt(t, cfg)
	if err := joiner.WaitJoined(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatalf("WaitJoined after the seed came up: %v", err)
	}
	waitConverged(t, []*testNode{seed, joiner})
}

func TestJoinedByAnotherMember(t *testing.T) {
	// a's only seed never comes up, but b joins a: a is in a cluster.
	probe := startNode(t, nodeConfig(t, "probe"))
	nowhere := probe.Addr()
	_ = probe.Shutdown()

	a := startNode(t, nodeConfig(t, "a", nowhere))
	b := startNode(t, nodeConfig(t, "b", a.Addr()))
	if err := a.WaitJoined(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatalf("a.WaitJoined: %v", err)
	}
	waitConverged(t, []*testNode{a, b})
}

func TestSelfOnlySeedStartsCluster(t *testing.T) {
	probe := startNode(t, nodeConfig(t, "probe"))
	addr := probe.Addr()
	_ = probe.Shutdown()

	cfg := nodeConfig(t, "solo", addr)
	cfg.BindAddr = addr
	solo := startNodeAt(t, cfg)
	if err := solo.WaitJoined(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatalf("WaitJoined with only itself as seed: %v", err)
	}
}

func TestSeedsJoinEveryAddress(t *testing.T) {
	// Two separate clusters; a node given one seed in each merges them,
	// which only happens if it joins every seed, not just the first.
	a := startNode(t, nodeConfig(t, "a"))
	b := startNode(t, nodeConfig(t, "b"))
	cfg := nodeConfig(t, "c", a.Addr(), b.Addr())
	cfg.RejoinInterval = 0 // the first join alone must do it
	c := startNode(t, cfg)
	waitConverged(t, []*testNode{a, b, c})
}

// fakeResolver resolves names from a fixed table.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ips, ok := f[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestSeedNameResolvesToEveryAddress(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	g := &Gossip{
		cfg: Config{
			Seeds:      []string{"seeds.test:7946", "10.0.0.9:7000", "missing.test:1", "[::1]:7946"},
			TCPTimeout: time.Second,
		},
		resolver: fakeResolver{"seeds.test": {
			netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"),
			netip.MustParseAddr("::ffff:10.0.0.3"), lo, netip.MustParseAddr("10.0.0.1"),
		}},
		addr:      "127.0.0.1:7946",
		advertise: "127.0.0.1:7946",
		bindIP:    lo,
	}
	got, err := g.resolveSeeds(context.Background())
	want := []string{"10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946", "10.0.0.9:7000", "[::1]:7946"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("resolveSeeds = %v, want %v (self and duplicates dropped)", got, want)
	}
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || dnsErr.Name != "missing.test" {
		t.Errorf("resolveSeeds error = %v, want the DNS error for missing.test", err)
	}
}

func TestSeedByDNSName(t *testing.T) {
	a := startNode(t, nodeConfig(t, "a"))
	_, port, _ := net.SplitHostPort(a.Addr())
	cfg := nodeConfig(t, "b", net.JoinHostPort("seed.cluster.test", port))
	cfg.Resolver = fakeResolver{"seed.cluster.test": {netip.MustParseAddr("127.0.0.1")}}
	b := startNode(t, cfg)
	if err := b.WaitJoined(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatalf("WaitJoined: %v", err)
	}
	waitConverged(t, []*testNode{a, b})
}

func TestRestartWithSameName(t *testing.T) {
	cases := []struct {
		name       string
		graceful   bool
		newAddress bool
		waitGone   bool // restart only once the others dropped it
	}{
		{"crash, same address", false, false, true},
		{"crash, new address", false, true, true},
		{"crash, new address, before detection", false, true, false},
		{"leave, same address", true, false, true},
		{"leave, new address", true, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes := startCluster(t, 3, fastConfig, nil)
			old := nodes[2]
			oldAddr := old.Addr()
			gone := time.Now()
			if tc.graceful {
				if err := old.Leave(ctxTimeout(t, waitTimeout)); err != nil {
					t.Fatalf("Leave: %v", err)
				}
			}
			if err := old.Shutdown(); err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes[:2] {
				if !tc.waitGone {
					break
				}
				waitUntil(t, n.name+" to drop node-2", func() bool {
					_, ok := n.col.find(EventLeave, "node-2", gone)
					return ok
				})
			}

			cfg := fastConfig(t, "node-2", nodes[0].Addr())
			back := time.Now()
			var restarted *testNode
			if tc.newAddress {
				restarted = startNode(t, cfg)
			} else {
				cfg.BindAddr = oldAddr
				restarted = startNodeAt(t, cfg)
			}
			if tc.newAddress && restarted.Addr() == oldAddr {
				t.Fatalf("restarted node got the old address %s", oldAddr)
			}
			all := []*testNode{nodes[0], nodes[1], restarted}
			waitConverged(t, all)
			for _, n := range nodes[:2] {
				waitUntil(t, n.name+" to list node-2 at its new address", func() bool {
					m, _ := member(n.Gossip, "node-2")
					return m.GossipAddr == restarted.Addr()
				})
				// Members() runs ahead of Events(): wait for delivery.
				waitUntil(t, n.name+" to get EventJoin(node-2) after the restart", func() bool {
					_, ok := n.col.find(EventJoin, "node-2", back)
					return ok
				})
				ev, _ := n.col.find(EventJoin, "node-2", back)
				if ev.Member.GossipAddr != restarted.Addr() {
					t.Errorf("%s: node-2 rejoined at %s, want %s", n.name, ev.Member.GossipAddr, restarted.Addr())
				}
				t.Logf("%s saw node-2 back after %v", n.name, ev.at.Sub(back))
			}
		})
	}
}

func TestRestartBeforeCrashIsDetected(t *testing.T) {
	// Restarted at the same address faster than failure detection: the
	// others never see it go, and keep listing it at its address.
	slow := func(c *Config) { c.SuspicionMult = 20 }
	nodes := startCluster(t, 3, nodeConfig, slow)
	addr := nodes[2].Addr()
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	cfg := nodeConfig(t, "node-2", nodes[0].Addr())
	cfg.BindAddr = addr
	slow(&cfg)
	restarted := startNodeAt(t, cfg)
	waitConverged(t, []*testNode{nodes[0], nodes[1], restarted})
	if err := restarted.WaitJoined(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
}

func TestOversizedMetaIsRejected(t *testing.T) {
	big := Meta{DataAddr: strings.Repeat("h", MetaMaxSize) + ":1"}

	cfg := nodeConfig(t, "big")
	cfg.Meta = big
	if _, err := Start(cfg); !errors.Is(err, ErrMetaTooLarge) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Start with oversized Meta = %v, want ErrInvalidConfig and ErrMetaTooLarge", err)
	}

	n := startNode(t, nodeConfig(t, "small"))
	if err := n.UpdateMeta(ctxTimeout(t, waitTimeout), big); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta with oversized Meta = %v, want ErrMetaTooLarge", err)
	}
	if got := n.LocalMember().Meta; got.DataAddr != dataAddrOf("small") {
		t.Errorf("Meta changed by a rejected update: %+v", got)
	}
	// Just under the limit (with room for the leaving flag) is accepted.
	var fits Meta
	for k := 1; ; k++ {
		m := Meta{DataAddr: strings.Repeat("h", k) + ":1"}
		if _, err := encodeMeta(m, true); err != nil {
			break
		}
		fits = m
	}
	if err := n.UpdateMeta(ctxTimeout(t, waitTimeout), fits); err != nil {
		t.Fatalf("UpdateMeta with a %d-byte DataAddr: %v", len(fits.DataAddr), err)
	}
	if err := n.Leave(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatalf("Leave with maximal Meta: %v", err)
	}
}

func TestEventsClosedAfterShutdown(t *testing.T) {
	g, err := Start(nodeConfig(t, "solo"))
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads: events pile up in the queue without blocking anything.
	if err := g.UpdateMeta(ctxTimeout(t, waitTimeout), Meta{DataAddr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-g.Events():
			if !ok {
				goto closed
			}
		case <-deadline:
			t.Fatal("Events() not closed after Shutdown")
		}
	}
closed:
	if err := g.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	ctx := ctxTimeout(t, waitTimeout)
	if err := g.UpdateMeta(ctx, Meta{}); !errors.Is(err, ErrShutdown) {
		t.Errorf("UpdateMeta after Shutdown = %v, want ErrShutdown", err)
	}
	if err := g.Leave(ctx); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown = %v, want ErrShutdown", err)
	}
}

func TestConcurrentShutdown(t *testing.T) {
	nodes := startCluster(t, 2, nodeConfig, nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _ = nodes[1].Leave(ctxTimeout(t, waitTimeout)) })
		wg.Go(func() { _ = nodes[1].UpdateMeta(ctxTimeout(t, waitTimeout), Meta{Proto: 2}) })
		wg.Go(func() { _ = nodes[1].Shutdown() })
		wg.Go(func() { _ = nodes[1].Members() })
	}
	wg.Wait()
	select {
	case <-nodes[1].col.done:
	case <-time.After(waitTimeout):
		t.Fatal("Events() not closed")
	}
}

func TestCancelledContext(t *testing.T) {
	n := startNode(t, nodeConfig(t, "solo"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.UpdateMeta(ctx, Meta{Proto: 9}); !errors.Is(err, context.Canceled) {
		t.Errorf("UpdateMeta(cancelled) = %v, want Canceled", err)
	}
	if err := n.Leave(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Leave(cancelled) = %v, want Canceled", err)
	}
	if got := n.LocalMember(); got.Meta.Proto == 9 || got.State != StateAlive {
		t.Errorf("cancelled calls changed the node: %+v", got)
	}
}

func TestUndecodableMetaIsExposedEmpty(t *testing.T) {
	var logs lockedBuffer
	cfg := nodeConfig(t, "good")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	good := startNode(t, cfg)

	// A plain memberlist node publishing garbage metadata.
	mlc := memberlist.DefaultLocalConfig()
	mlc.Name = "garbage"
	mlc.BindAddr = "127.0.0.1"
	mlc.BindPort = 0
	mlc.Logger = newMemberlistLogger(slog.New(slog.DiscardHandler))
	mlc.Delegate = rawMeta{0xc1, 0xff, 0x00}
	ml, err := memberlist.Create(mlc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if _, err := ml.Join([]string{good.Addr()}); err != nil {
		t.Fatal(err)
	}

	waitUntil(t, "the garbage node's join event", func() bool {
		_, ok := good.col.find(EventJoin, "garbage", time.Time{})
		return ok
	})
	m, ok := member(good.Gossip, "garbage")
	if !ok || !reflect.DeepEqual(m.Meta, Meta{}) || m.GossipAddr == "" {
		t.Errorf("garbage member = %+v, %v; want listed with an empty Meta", m, ok)
	}
	waitUntil(t, "a warning about the metadata", func() bool {
		return strings.Contains(logs.String(), "metadata could not be decoded")
	})
}

// rawMeta is a memberlist delegate publishing fixed metadata bytes.
type rawMeta []byte

func (r rawMeta) NodeMeta(int) []byte               { return r }
func (rawMeta) NotifyMsg([]byte)                    {}
func (rawMeta) GetBroadcasts(int, int) [][]byte     { return nil }
func (rawMeta) LocalState(bool) []byte              { return nil }
func (rawMeta) MergeRemoteState(buf []byte, _ bool) {}

// lockedBuffer is a strings.Builder safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestMemberlistLogsAreRouted(t *testing.T) {
	var logs lockedBuffer
	a := startNode(t, nodeConfig(t, "a"))
	cfg := nodeConfig(t, "b", a.Addr())
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := startNode(t, cfg)
	if err := b.WaitJoined(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	// "Initiating push/pull sync" is a [DEBUG] line memberlist logs on join.
	waitUntil(t, "memberlist's push/pull line", func() bool {
		return strings.Contains(logs.String(), "level=DEBUG msg=\"Initiating push/pull sync with:")
	})
	if !strings.Contains(logs.String(), "component=memberlist") {
		t.Errorf("memberlist lines not tagged: %s", logs.String())
	}
	if strings.Contains(logs.String(), "[DEBUG]") {
		t.Errorf("level tag left in the message: %s", logs.String())
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	// A sub-test, so that its cleanups (every Shutdown) have run before
	// counting.
	t.Run("cluster", func(t *testing.T) {
		nodes := startCluster(t, 3, nodeConfig, nil)
		if err := nodes[1].UpdateMeta(ctxTimeout(t, waitTimeout), Meta{Proto: 3}); err != nil {
			t.Fatal(err)
		}
		if err := nodes[2].Leave(ctxTimeout(t, waitTimeout)); err != nil {
			t.Fatal(err)
		}
	})
	deadline := time.Now().Add(waitTimeout)
	for {
		left := ourGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still running %v after Shutdown:\n%s",
				len(left), waitTimeout, strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnreadEventsAreKeptInOrder(t *testing.T) {
	// deaf does not read its events while the cluster changes around it.
	// Its view must stay current, and every event must wait for it, in
	// order: replaying the stream must rebuild exactly its member list,
	// each event must fit the state before it (a join only for an absent
	// member, a leave or update only for a present one), and o3's join,
	// leaving flag and leave must all be there.
	deaf, err := Start(nodeConfig(t, "deaf"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deaf.Shutdown() })

	var others []*testNode
	for i := range 4 {
		others = append(others, startNode(t, nodeConfig(t, fmt.Sprintf("o%d", i), deaf.Addr())))
	}
	waitUntil(t, "deaf and o3 to list all five", func() bool {
		// o3 must know the others, or it has nobody to tell it leaves.
		return deaf.NumMembers() == 5 && others[3].NumMembers() == 5
	})
	if err := others[3].Leave(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "deaf to drop o3", func() bool {
		return sameNames(deaf.Members(), []string{"deaf", "o0", "o1", "o2"})
	})

	replayed := map[string]Member{}
	var seen []string
	saw := func(s string) bool { return slices.Contains(seen, s) }
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev := <-deaf.Events():
			name := ev.Member.Name
			_, present := replayed[name]
			seen = append(seen, ev.Kind.String()+":"+name+":"+ev.Member.State.String())
			switch {
			case ev.Kind == EventJoin && present, ev.Kind != EventJoin && !present:
				t.Fatalf("event %s does not follow from the ones before: %v", seen[len(seen)-1], seen)
			case ev.Kind == EventLeave:
				delete(replayed, name)
			default:
				replayed[name] = ev.Member
			}
			continue
		case <-deadline:
			t.Fatalf("replayed %v != Members() %v; events %v", replayed, deaf.Members(), seen)
		default:
		}
		// The queue is empty for now: does the replay match?
		members := deaf.Members()
		match := len(members) == len(replayed)
		for _, m := range members {
			match = match && reflect.DeepEqual(replayed[m.Name], m)
		}
		if match && saw("join:o3:alive") && saw("update:o3:leaving") && saw("leave:o3:left") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if seen[0] != "join:deaf:alive" {
		t.Errorf("first event %s, want deaf's own join", seen[0])
	}
	if i, j, k := slices.Index(seen, "join:o3:alive"), slices.Index(seen, "update:o3:leaving"), slices.Index(seen, "leave:o3:left"); !(i < j && j < k) {
		t.Errorf("o3's events out of order: %v", seen)
	}
}

// When every member leaves at once (a whole cluster stopping), none of
// them waits out its deadline for a leave message that nobody is left to
// hear: memberlist gossips only to members that have not left, so its
// Leave would block until the timeout once the others are gone.
func TestWholeClusterLeavesAtOnce(t *testing.T) {
	const deadline = 10 * time.Second
	for round := range 5 {
		nodes := startCluster(t, 3, fastConfig, nil)
		var wg sync.WaitGroup
		took := make([]time.Duration, len(nodes))
		errs := make([]error, len(nodes))
		for i, n := range nodes {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				start := time.Now()
				errs[i] = n.Leave(ctx)
				took[i] = time.Since(start)
				_ = n.Shutdown()
			})
		}
		wg.Wait()
		// Waiting out the deadline shows as an error (the leave broadcast
		// unconfirmed, or ctx ended); a round that saw one ends the test.
		for i, n := range nodes {
			if errs[i] != nil {
				t.Errorf("round %d: %s: Leave after %v: %v", round, n.name, took[i], errs[i])
			}
		}
		if t.Failed() {
			return
		}
		t.Logf("round %d: Leave took %v", round, took)
	}
}
