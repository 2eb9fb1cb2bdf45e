package gossip

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The scale simulation: n nodes with the LAN preset in one process on
// 127.0.0.1, measuring how long every member takes to see a join and a
// crash. It costs a few minutes of two cores, so it runs only when asked:
//
//	STARLING_GOSSIP_SIM=1 go test -run TestScaleSimulation -v -timeout 60m ./gossip/
//
// STARLING_GOSSIP_SIM_NODES (default 100) and STARLING_GOSSIP_SIM_RUNS
// (default 3) size it; STARLING_GOSSIP_SIM_REPAIR=0 turns the member-list
// repair off (the "before" figures). STARLING_GOSSIP_SIM_DEAF=k makes k
// random members deaf (every incoming packet dropped, as a stalled process
// or a network blip would) for the first 2 s of each join, so that they
// miss the join's gossip. See docs/gossip-scale.md.
func TestScaleSimulation(t *testing.T) {
	if os.Getenv("STARLING_GOSSIP_SIM") == "" {
		t.Skip("set STARLING_GOSSIP_SIM=1 to run the 100-node simulation")
	}
	n := envInt(t, "STARLING_GOSSIP_SIM_NODES", 100, 3)
	runs := envInt(t, "STARLING_GOSSIP_SIM_RUNS", 3, 1)
	deaf := envInt(t, "STARLING_GOSSIP_SIM_DEAF", 0, 0)
	repair := os.Getenv("STARLING_GOSSIP_SIM_REPAIR") != "0"

	mod := func(c *Config) {
		if !repair {
			c.RepairDelay = 0
		}
	}
	sim := startSim(t, n-1, mod)
	lan := simConfig(t, "x", mod)
	t.Logf("nodes=%d runs=%d repair=%v (delay %v) deaf=%d; shortest crash detection %v",
		n, runs, repair, lan.RepairDelay, deaf, detectionWindow(lan, n))
	t.Logf("startup: %d nodes started in %v; after the last start, nodes listing all of them: median %v, max %v, %d still incomplete after 5 s",
		n-1, sim.started.Round(time.Millisecond), sim.convMedian.Round(time.Millisecond), sim.convMax.Round(time.Millisecond), sim.convLate)
	t.Logf("idle: %.1f%% of a core over %v", sim.idleCPU(idleWindow), idleWindow)
	t.Logf("| run | join max ms | join median ms | join stragglers (>1 s) | crash first ms | crash max ms | crash median ms | crash stragglers (>first+1 s) | repairs (join/crash) | CPU %% of a core |")
	var all []simResult
	for run := 1; run <= runs; run++ {
		r := sim.run(t, run, mod, deaf)
		all = append(all, r)
		t.Logf("| %d | %.0f | %.0f | %d | %.0f | %.0f | %.0f | %d | %d/%d | %.0f |",
			run, r.joinMax, r.joinMedian, r.joinStragglers, r.crashFirst, r.crashMax, r.crashMedian, r.crashStragglers,
			r.joinRepairs, r.crashRepairs, r.cpu)
		if len(r.slowest) > 0 {
			t.Logf("run %d: slowest to see the join: %v", run, r.slowest)
		}
		if deaf > 0 {
			t.Logf("run %d: the %d deaf members saw the join %v after they could hear again", run, deaf, r.deafLate)
		}
	}
	var joinStragglers, crashStragglers int
	var worstJoin float64
	for _, r := range all {
		joinStragglers += r.joinStragglers
		crashStragglers += r.crashStragglers
		worstJoin = max(worstJoin, r.joinMax)
	}
	t.Logf("total: join stragglers %d, crash stragglers %d, worst join %.0f ms", joinStragglers, crashStragglers, worstJoin)
}

// envInt reads an integer of at least least from the environment, or def.
func envInt(tb testing.TB, name string, def, least int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < least {
		tb.Fatalf("%s=%q: want an integer of at least %d", name, s, least)
	}
	return v
}

// simConfig is the LAN preset on a free loopback port, logging warnings.
func simConfig(tb testing.TB, name string, mod func(*Config), seeds ...string) Config {
	cfg := DefaultLANConfig()
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Name = name
	cfg.Seeds = seeds
	cfg.Meta = Meta{DataAddr: dataAddrOf(name), Proto: 1}
	cfg.Logger = testLog(tb, slog.LevelError)
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

// detectionWindow is how long memberlist takes at best to declare a crashed
// member of an n-node cluster dead: a probe round to notice it (one
// ProbeInterval) plus the shortest suspicion timeout, which applies once
// enough members confirm the suspicion. It is reported for reference; the
// crash target is relative to the first member that declares the crash.
func detectionWindow(c Config, n int) time.Duration {
	scale := max(1, math.Log10(float64(n)))
	return c.ProbeInterval + time.Duration(float64(c.SuspicionMult)*scale*float64(c.ProbeInterval))
}

// idleWindow is how long the idle cluster's CPU use is measured.
const idleWindow = 10 * time.Second

// sim is a running cluster that the runs join nodes to and crash nodes of.
type sim struct {
	nodes []*testNode
	fault map[*testNode]*faultTransport

	started             time.Duration // to start every node, one after the other
	convMedian, convMax time.Duration // after the last start, until a node lists every node
	convLate            int           // nodes that took over 5 s
}

// startSim starts n nodes, one after the other, each seeded with the first
// two, and waits until every node lists all of them, recording when each
// one did.
func startSim(tb testing.TB, n int, mod func(*Config)) *sim {
	tb.Helper()
	start := time.Now()
	s := &sim{fault: make(map[*testNode]*faultTransport)}
	for i := range n {
		var seeds []string
		for _, seed := range s.nodes[:min(2, len(s.nodes))] {
			seeds = append(seeds, seed.Addr())
		}
		s.start(tb, simConfig(tb, fmt.Sprintf("node-%d", i), mod, seeds...))
	}
	last := time.Now()
	s.started = last.Sub(start)

	done := make(map[*testNode]time.Duration, n)
	waitWithin(tb, fmt.Sprintf("%d nodes to converge", n), 3*time.Minute, func() bool {
		for _, nd := range s.nodes {
			if _, ok := done[nd]; !ok && nd.NumMembers() == n {
				done[nd] = time.Since(last)
			}
		}
		return len(done) == n
	})
	s.waitConverged(tb, 3*time.Minute) // the counts above were the right names
	ds := make([]time.Duration, 0, n)
	for _, d := range done {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	s.convMedian, s.convMax = ds[n/2], ds[n-1]
	for _, d := range ds {
		if d > 5*time.Second {
			s.convLate++
		}
	}
	return s
}

// start starts a node and adds it to s.
func (s *sim) start(tb testing.TB, cfg Config) *testNode {
	n, ft := startFaultNode(tb, cfg)
	s.nodes = append(s.nodes, n)
	s.fault[n] = ft
	return n
}

// idleCPU returns the CPU the idle cluster uses over d, in % of one core.
func (s *sim) idleCPU(d time.Duration) float64 {
	cpu0, wall0 := cpuTime(), time.Now()
	<-time.After(d)
	return 100 * float64(cpuTime()-cpu0) / float64(time.Since(wall0))
}

// waitConverged waits until every node lists exactly the nodes of s.
func (s *sim) waitConverged(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	want := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		want[i] = n.name
	}
	waitWithin(tb, fmt.Sprintf("%d nodes to converge", len(s.nodes)), timeout, func() bool {
		for _, n := range s.nodes {
			if !sameNames(n.Members(), want) {
				return false
			}
		}
		return true
	})
}

// simResult is one run's figures.
type simResult struct {
	joinMax, joinMedian               float64 // ms
	crashFirst, crashMax, crashMedian float64 // ms
	joinStragglers, crashStragglers   int
	joinRepairs, crashRepairs         int64
	cpu                               float64         // % of one core over the run
	slowest                           []time.Duration // join delays over 1 s, at most 10
	deafLate                          []time.Duration // when the deaf members saw the join, after the deafness
}

// run joins one new node to the cluster and measures until every member
// lists it, then crashes one old member and measures until every other
// member has dropped it. The joiner stays, so the cluster keeps its size.
func (s *sim) run(tb testing.TB, run int, mod func(*Config), deaf int) simResult {
	tb.Helper()
	var r simResult
	// Start from a quiet cluster: no member still gossiping its digest after
	// the previous run's changes.
	waitWithin(tb, "every member list to be unchanged for 3 s", time.Minute, func() bool {
		for _, n := range s.nodes {
			if _, age := n.viewState(); age < 3*time.Second {
				return false
			}
		}
		return true
	})
	cpu0, wall0 := cpuTime(), time.Now()

	repairs0 := repairs(s.nodes)
	old := slices.Clone(s.nodes)
	seed := old[run%len(old)]
	var deafened []*testNode
	for _, i := range rand.Perm(len(old)) {
		if len(deafened) < deaf && old[i] != seed {
			deafened = append(deafened, old[i])
			s.fault[old[i]].deaf.Store(true)
		}
	}
	const deafFor = 2 * time.Second
	start := time.Now()
	joiner := s.start(tb, simConfig(tb, fmt.Sprintf("joiner-%d", run), mod, seed.Addr()))
	if len(deafened) > 0 {
		time.AfterFunc(time.Until(start.Add(deafFor)), func() {
			for _, n := range deafened {
				s.fault[n].deaf.Store(false)
			}
		})
	}
	ds := s.latencies(tb, old, EventJoin, joiner.name, start, 2*time.Minute)
	for _, n := range deafened {
		ev, _ := n.col.find(EventJoin, joiner.name, start)
		r.deafLate = append(r.deafLate, ev.at.Sub(start.Add(deafFor)).Round(time.Millisecond))
	}
	slices.Sort(r.deafLate)
	r.joinMax, r.joinMedian, r.joinStragglers = summarize(ds, time.Second)
	for i := len(ds) - 1; i >= 0 && ds[i] > time.Second && len(r.slowest) < 10; i-- {
		r.slowest = append(r.slowest, ds[i].Round(time.Millisecond))
	}
	s.waitConverged(tb, 3*time.Minute)
	r.joinRepairs = repairs(s.nodes) - repairs0

	victim := s.nodes[1+(run*37)%(len(s.nodes)-2)] // neither a seed nor the joiner
	rest := slices.DeleteFunc(slices.Clone(s.nodes), func(n *testNode) bool { return n == victim })
	repairs0 = repairs(rest)
	start = time.Now()
	if err := victim.Shutdown(); err != nil {
		tb.Fatalf("Shutdown(%s): %v", victim.name, err)
	}
	ds = s.latencies(tb, rest, EventLeave, victim.name, start, 2*time.Minute)
	r.crashFirst = float64(slices.Min(ds)) / float64(time.Millisecond)
	r.crashMax, r.crashMedian, r.crashStragglers = summarize(ds, slices.Min(ds)+time.Second)
	s.nodes = rest
	s.waitConverged(tb, 3*time.Minute)
	r.crashRepairs = repairs(rest) - repairs0

	r.cpu = 100 * float64(cpuTime()-cpu0) / float64(time.Since(wall0))
	return r
}

// repairs is the number of repair push/pulls the nodes have started.
func repairs(nodes []*testNode) int64 {
	var sum int64
	for _, n := range nodes {
		sum += n.repairs.Load()
	}
	return sum
}

// latencies waits until every node got the event about name and returns
// each one's delay since start.
func (s *sim) latencies(tb testing.TB, nodes []*testNode, kind EventKind, name string, start time.Time, timeout time.Duration) []time.Duration {
	tb.Helper()
	waitWithin(tb, fmt.Sprintf("every node to get %v(%s)", kind, name), timeout, func() bool {
		for _, n := range nodes {
			if _, ok := n.col.find(kind, name, start); !ok {
				return false
			}
		}
		return true
	})
	ds := make([]time.Duration, 0, len(nodes))
	for _, n := range nodes {
		ev, _ := n.col.find(kind, name, start)
		ds = append(ds, ev.at.Sub(start))
	}
	return ds
}

// summarize returns the maximum and median in milliseconds and how many
// delays exceed limit.
func summarize(ds []time.Duration, limit time.Duration) (maxMS, medianMS float64, over int) {
	slices.Sort(ds)
	for _, d := range ds {
		if d > limit {
			over++
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return ms(ds[len(ds)-1]), ms(ds[len(ds)/2]), over
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
