package gossip

import (
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestViewDigestIgnoresOrder(t *testing.T) {
	var a, b viewDigest
	for _, n := range []string{"x", "y", "z"} {
		a.add(n)
	}
	for _, n := range []string{"z", "w", "x", "y"} {
		b.add(n)
	}
	b.remove("w")
	if a != b {
		t.Errorf("same names, different digests: %+v %+v", a, b)
	}
	b.remove("x")
	b.add("x2")
	if a == b || a.count != b.count {
		t.Errorf("a renamed member must change the sum, not the count: %+v %+v", a, b)
	}
	// Every node must hash alike, whatever its process or version.
	for _, s := range []string{"", "a", "node-1", strings.Repeat("é", 100)} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got := nameHash(s); got != h.Sum64() {
			t.Errorf("nameHash(%q) = %x, want FNV-1a %x", s, got, h.Sum64())
		}
	}
}

func TestDigestMessageRoundTrip(t *testing.T) {
	d := viewDigest{sum: math.MaxUint64 - 3, count: 100}
	b := encodeDigest(d, 1500*time.Millisecond, "node-7")
	got, age, name, err := decodeDigest(b)
	if err != nil || got != d || age != 1500*time.Millisecond || name != "node-7" {
		t.Fatalf("decodeDigest = %+v %v %q %v", got, age, name, err)
	}
	// An age past what 32 bits of milliseconds hold is capped, not wrapped.
	if _, age, _, _ := decodeDigest(encodeDigest(d, 2000*time.Hour, "n")); age != (1<<32-1)*time.Millisecond {
		t.Errorf("capped age = %v", age)
	}
	for name, b := range map[string][]byte{
		"empty":        nil,
		"no name":      b[:digestLen],
		"short":        b[:5],
		"unknown kind": append([]byte{9}, b[1:]...),
		"long name":    encodeDigest(d, 0, strings.Repeat("n", 256)),
	} {
		if _, _, _, err := decodeDigest(b); err == nil {
			t.Errorf("%s: decodeDigest(%x) accepted", name, b)
		}
	}
}

// FuzzDecodeDigest feeds arbitrary user messages, as a broken or hostile
// peer could gossip, to the digest decoder: never a panic, and whatever is
// accepted re-encodes to the same bytes.
func FuzzDecodeDigest(f *testing.F) {
	f.Add(encodeDigest(viewDigest{sum: 1, count: 2}, time.Second, "a"))
	f.Add([]byte{digestMsg})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, age, name, err := decodeDigest(b)
		if err != nil {
			return
		}
		if got := encodeDigest(d, age, name); string(got) != string(b) {
			t.Fatalf("re-encoded %x as %x", b, got)
		}
	})
}

// bareGossip is a Gossip with just enough state for checkPeer.
func bareGossip(delay time.Duration, members ...string) *Gossip {
	g := &Gossip{
		cfg:      Config{Name: members[0], RepairDelay: delay, PushPullInterval: 8 * delay},
		members:  make(map[string]Member),
		repairCh: make(chan repairRequest, 1),
	}
	for _, m := range members {
		g.members[m] = Member{Name: m, GossipAddr: "addr-of-" + m}
		g.digest.add(m)
	}
	return g
}

// takeRepair returns the queued repair request, if any.
func takeRepair(g *Gossip) (repairRequest, bool) {
	select {
	case r := <-g.repairCh:
		return r, true
	default:
		return repairRequest{}, false
	}
}

func TestCheckPeerRules(t *testing.T) {
	const delay = time.Minute // ages below are set by hand
	g := bareGossip(delay, "me", "p")
	var same, other viewDigest
	same = g.digest
	other = same
	other.add("x")

	g.viewChanged = time.Now() // this node's list just changed
	g.checkPeer("p", "", other, 2*delay)
	if _, ok := takeRepair(g); ok {
		t.Fatal("repair while this node's own list is still settling")
	}
	g.viewChanged = time.Now().Add(-2 * delay)
	g.checkPeer("p", "", other, delay/2)
	if _, ok := takeRepair(g); ok {
		t.Fatal("repair while the peer's list is still settling")
	}
	g.checkPeer("p", "", same, 2*delay)
	if _, ok := takeRepair(g); ok {
		t.Fatal("repair with an equal list")
	}
	g.checkPeer("me", "", other, 2*delay)
	g.checkPeer("stranger", "", other, 2*delay)
	if _, ok := takeRepair(g); ok {
		t.Fatal("repair with itself, or with a peer it has no address for")
	}

	g.checkPeer("p", "", other, 2*delay)
	r, ok := takeRepair(g)
	if !ok || r.peer != "p" || r.addr != "addr-of-p" || r.mine != same || r.yours != other {
		t.Fatalf("repair = %+v, %v; want one with p at its listed address", r, ok)
	}
	// The same difference again, right away: rate limited.
	g.checkPeer("p", "", other, 2*delay)
	g.checkPeer("stranger", "addr-given", other, 2*delay)
	if _, ok := takeRepair(g); ok {
		t.Fatal("second repair from the same list before the backoff")
	}
	// Once due, the next one comes and the backoff doubles.
	g.repairNext = time.Now().Add(-time.Millisecond)
	g.checkPeer("stranger", "addr-given", other, 2*delay)
	if r, ok := takeRepair(g); !ok || r.addr != "addr-given" {
		t.Fatalf("due repair = %+v, %v", r, ok)
	}
	if g.repairBackoff != 2*delay {
		t.Errorf("backoff after a repair that changed nothing = %v, want %v", g.repairBackoff, 2*delay)
	}
	for range 10 {
		g.repairNext = time.Now().Add(-time.Millisecond)
		g.checkPeer("p", "", other, 2*delay)
		takeRepair(g)
	}
	if g.repairBackoff != g.cfg.PushPullInterval {
		t.Errorf("backoff = %v, want capped at PushPullInterval %v", g.repairBackoff, g.cfg.PushPullInterval)
	}
	// A list that changed since starts over at RepairDelay.
	g.digest.add("y")
	g.checkPeer("p", "", other, 2*delay)
	if _, ok := takeRepair(g); !ok || g.repairBackoff != delay {
		t.Errorf("after a change: repair %v, backoff %v; want a repair and %v", ok, g.repairBackoff, delay)
	}

	off := bareGossip(0, "me", "p")
	off.checkPeer("p", "", other, time.Hour)
	if _, ok := takeRepair(off); ok {
		t.Fatal("repair with RepairDelay 0")
	}
}

// faultTransport is memberlist's UDP+TCP transport with faults as data: it
// counts the packets the node sends, and while deaf drops every packet the
// node receives (streams still work, so memberlist's TCP fallback ping
// keeps the deaf node alive in the others' eyes).
type faultTransport struct {
	*memberlist.NetTransport
	deaf atomic.Bool
	sent atomic.Int64

	in       chan *memberlist.Packet
	stop     chan struct{}
	stopOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*faultTransport)(nil)

func newFaultTransport(nt *memberlist.NetTransport) *faultTransport {
	f := &faultTransport{NetTransport: nt, in: make(chan *memberlist.Packet), stop: make(chan struct{})}
	go func() {
		for {
			select {
			case p := <-nt.PacketCh():
				if f.deaf.Load() {
					continue
				}
				select {
				case f.in <- p:
				case <-f.stop:
					return
				}
			case <-f.stop:
				return
			}
		}
	}()
	return f
}

func (f *faultTransport) PacketCh() <-chan *memberlist.Packet { return f.in }

func (f *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	f.sent.Add(1)
	return f.NetTransport.WriteTo(b, addr)
}

func (f *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	f.sent.Add(1)
	return f.NetTransport.WriteToAddress(b, a)
}

// Shutdown stops the inner transport first: its UDP reader may be blocked
// handing over a packet, which the forwarder must still take.
func (f *faultTransport) Shutdown() error {
	err := f.NetTransport.Shutdown()
	f.stopOnce.Do(func() { close(f.stop) })
	return err
}

// startFaultNode starts a node whose transport is a faultTransport.
func startFaultNode(tb testing.TB, cfg Config) (*testNode, *faultTransport) {
	tb.Helper()
	var ft *faultTransport
	g, err := start(cfg, func(nt *memberlist.NetTransport) memberlist.Transport {
		ft = newFaultTransport(nt)
		return ft
	})
	if err != nil {
		tb.Fatalf("start(%s): %v", cfg.Name, err)
	}
	return newTestNode(tb, g), ft
}

func TestRepairCatchesUpAMemberThatMissedAJoin(t *testing.T) {
	// Push/pull and re-joins off: once gossip has given up on b, only the
	// repair can tell it about x.
	mod := func(c *Config) {
		c.PushPullInterval = 0
		c.RejoinInterval = 0
	}
	var (
		nodes []*testNode
		fts   = map[string]*faultTransport{}
	)
	for _, name := range []string{"a", "b", "c"} {
		var seeds []string
		if len(nodes) > 0 {
			seeds = []string{nodes[0].Addr()}
		}
		cfg := nodeConfig(t, name, seeds...)
		mod(&cfg)
		n, ft := startFaultNode(t, cfg)
		nodes, fts[name] = append(nodes, n), ft
	}
	waitConverged(t, nodes)
	a, b, c := nodes[0], nodes[1], nodes[2]
	var x *testNode
	repairs := func() int64 {
		sum := a.repairs.Load() + b.repairs.Load() + c.repairs.Load()
		if x != nil {
			sum += x.repairs.Load()
		}
		return sum
	}
	before := repairs()

	fts["b"].deaf.Store(true)
	cfg := nodeConfig(t, "x", a.Addr())
	mod(&cfg)
	var xft *faultTransport
	x, xft = startFaultNode(t, cfg)
	fts["x"] = xft
	all := []string{"a", "b", "c", "x"}
	waitUntil(t, "a, c and x to list x", func() bool {
		return sameNames(a.Members(), all) && sameNames(c.Members(), all) && sameNames(x.Members(), all)
	})
	// memberlist sends a broadcast on at most RetransmitMult*ceil(log10(n+1))
	// packets (4 here), every packet it sends carrying it while it is
	// queued: once a, c and x have each sent a few more packets than that,
	// x's join is no longer in anyone's gossip, and b has dropped it. b may
	// have been repaired meanwhile (over TCP, which it still hears: its
	// outgoing gossip still carries its digest), but not by gossip.
	limit := int64(cfg.RetransmitMult*int(math.Ceil(math.Log10(5)))) + 4
	for _, name := range []string{"a", "c", "x"} {
		ft, from := fts[name], fts[name].sent.Load()
		waitUntil(t, fmt.Sprintf("%s to send %d more packets", name, limit), func() bool {
			return ft.sent.Load()-from >= limit
		})
	}
	fts["b"].deaf.Store(false)
	waitUntil(t, "b to list x", func() bool { return sameNames(b.Members(), all) })
	if repairs() == before {
		t.Error("b caught up without a repair")
	}
}

func TestRepairOffSendsNoDigests(t *testing.T) {
	cfg := nodeConfig(t, "a")
	cfg.RepairDelay = 0
	a := startNode(t, cfg)
	if b := a.digestMessage(false); b != nil {
		t.Errorf("digest in acks with repair off: %x", b)
	}
	if b := (&metaDelegate{g: a.Gossip}).GetBroadcasts(2, 1400); b != nil {
		t.Errorf("digest in gossip with repair off: %x", b)
	}
}

func TestEveryNodeSeesTheJoin(t *testing.T) {
	// The normal-suite version of the scale simulation (sim_test.go): 20
	// nodes with the LAN preset, push/pull and re-joins off so that gossip
	// and the repair alone must bring every node to list every other, and
	// then a newcomer.
	if testing.Short() {
		t.Skip("20 nodes")
	}
	const n = 20
	mod := func(c *Config) {
		c.PushPullInterval = 0
		c.RejoinInterval = 0
		// Bound the stalls a CPU-starved test machine causes.
		c.JoinRetryMax = time.Second
		c.TCPTimeout = 2 * time.Second
	}
	nodes := make([]*testNode, 0, n+1)
	for i := range n {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].Addr()}
		}
		nodes = append(nodes, startNode(t, simConfig(t, fmt.Sprintf("node-%d", i), mod, seeds...)))
	}
	start := time.Now()
	waitWithin(t, "20 nodes to converge", time.Minute, func() bool { return converged(nodes) })
	t.Logf("20 nodes converged in %v", time.Since(start))

	start = time.Now()
	joiner := startNode(t, simConfig(t, "joiner", mod, nodes[7].Addr()))
	nodes = append(nodes, joiner)
	waitWithin(t, "every node to list the joiner", time.Minute, func() bool { return converged(nodes) })
	t.Logf("every node listed the joiner after %v", time.Since(start))
	for _, nd := range nodes[:n] {
		waitUntil(t, nd.name+" to deliver EventJoin(joiner)", func() bool {
			_, ok := nd.col.find(EventJoin, "joiner", start)
			return ok
		})
	}
}

// converged reports whether every node lists exactly the given nodes.
func converged(nodes []*testNode) bool {
	want := make([]string, len(nodes))
	for i, n := range nodes {
		want[i] = n.name
	}
	for _, n := range nodes {
		if !sameNames(n.Members(), want) {
			return false
		}
	}
	return true
}
