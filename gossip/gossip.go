// Package gossip tells a node who else is in the cluster. It wraps
// hashicorp/memberlist (the only package of ours that imports it): each node
// publishes a small Meta (its data, RESP and HTTP addresses), joins its seeds
// with retries, and gets back the current member list and an ordered stream
// of join, leave and update events. It never sees keys or the ring.
//
// memberlist calls its delegates while holding its own node lock, so the
// callbacks here only copy the node into this package's view and queue an
// event; a goroutine delivers the queue on Events(). Members() is that view,
// never memberlist's own node structs, which memberlist keeps writing to.
//
// Four things memberlist v0.7.0 does not give and this package adds:
//   - left versus dead: memberlist never fills in Node.State, so before a
//     graceful leave a node raises a leaving flag in its metadata and pushes
//     it to every member over TCP; a departure whose last metadata carries
//     the flag is StateLeft, any other StateDead;
//   - joining seeds that are not up yet, with backoff, and re-joining them
//     periodically to repair missed events and partitions;
//   - safe metadata: sizes are checked before memberlist could panic, and a
//     member whose metadata cannot be decoded is listed with the zero Meta
//     (no DataAddr, so node/ leaves it out of the ring) and a warning logged;
//   - member-list repair (repair.go): a member that missed a join or a
//     departure notices within a second or so, not at the next push/pull.
//
// Gossip can be encrypted with a shared key (Config.SecretKey), rotated at
// run time without downtime (see InstallKey).
//
// Suspicion is not exposed by memberlist: suspect members are listed as
// alive until declared dead.
package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrInvalidConfig wraps every problem Config.Validate finds.
	ErrInvalidConfig = errors.New("gossip: invalid config")
	// ErrMetaTooLarge is returned when the encoded Meta would not fit in
	// MetaMaxSize bytes (memberlist would panic on it).
	ErrMetaTooLarge = errors.New("gossip: metadata too large")
	// ErrBadMeta is returned for a Meta with a malformed address, and wraps
	// the reason a member's metadata from the network could not be decoded.
	ErrBadMeta = errors.New("gossip: malformed metadata")
	// ErrShutdown is returned by calls made after Shutdown.
	ErrShutdown = errors.New("gossip: shut down")
	// ErrLeft is returned by UpdateMeta after Leave: a node that left
	// cannot rejoin with the same Gossip (start a new one).
	ErrLeft = errors.New("gossip: left the cluster")
	// ErrBroadcastTimeout is returned when UpdateMeta or Leave could not
	// confirm its broadcast went out in time. The broadcast stays queued
	// and usually goes out shortly after.
	ErrBroadcastTimeout = errors.New("gossip: broadcast not confirmed in time")
	// ErrBadKey is returned for an encryption key that is not base64 or not
	// 16, 24 or 32 bytes long.
	ErrBadKey = errors.New("gossip: bad encryption key")
	// ErrNotEncrypted is returned by the key rotation calls on a node
	// started without a SecretKey.
	ErrNotEncrypted = errors.New("gossip: encryption not enabled")
	// ErrKeyNotInstalled is returned by UseKey for a key that InstallKey
	// has not added.
	ErrKeyNotInstalled = errors.New("gossip: key not installed")
	// ErrPrimaryKey is returned by RemoveKey for the key in use: make
	// another one primary first.
	ErrPrimaryKey = errors.New("gossip: cannot remove the primary key")
)

// Gossip is this node's membership in the cluster: a running memberlist
// plus the loops that join seeds and deliver events. Create it with Start
// and stop it with Leave (optional) and Shutdown. All methods are safe for
// concurrent use.
type Gossip struct {
	cfg       Config
	log       *slog.Logger
	resolver  Resolver
	ml        *memberlist.Memberlist
	keyring   *memberlist.Keyring // nil without encryption
	addr      string              // bound host:port
	advertise string              // advertised host:port, what the others see
	bindIP    netip.Addr

	out        chan Event    // Events(); closed by the pump on Shutdown
	wake       chan struct{} // capacity 1: events were queued
	joined     chan struct{} // closed once joined (see WaitJoined)
	joinedOnce sync.Once
	stop       chan struct{} // closed by Shutdown: stops the pump, ends waits
	done       chan struct{} // closed when Shutdown has finished

	loopCtx    context.Context // cancelled by Leave and Shutdown: stops (re)joining
	loopCancel context.CancelFunc
	wg         sync.WaitGroup // join loop, event pump, broadcast operations

	// opMu serialises the operations that change this node's own state in
	// memberlist (UpdateMeta, Leave, Shutdown): memberlist panics on a Leave
	// after Shutdown, and NodeMeta must return what the current operation
	// set. It may be held while memberlist waits for a broadcast.
	opMu   sync.Mutex
	closed bool

	// metaMu guards this node's published state and, while it leaves, the
	// members that confirmed seeing its leaving flag. memberlist reads it
	// through NodeMeta and MergeRemoteState; it is never held while calling
	// into memberlist.
	metaMu    sync.Mutex
	meta      Meta
	metaRaw   []byte
	leaving   bool
	left      bool
	leaveAcks map[string]bool // member name -> confirmed; nil unless leaving

	// viewMu guards this node's copy of the member list, its digest and
	// the events not yet delivered. memberlist callbacks hold it briefly;
	// it is never held while calling into memberlist or sending on a
	// channel.
	viewMu      sync.Mutex
	members     map[string]Member
	digest      viewDigest // of the names in members
	viewChanged time.Time  // when a name was last added to or removed from members
	pending     []queuedEvent
	stopped     bool // no more events are queued

	// repairMu guards the rate limit of member-list repairs (checkPeer).
	repairMu      sync.Mutex
	repairedFrom  viewDigest    // this node's digest at the last repair
	repairNext    time.Time     // no repair from the same digest before
	repairBackoff time.Duration // doubles while repairs leave the list unchanged

	repairCh chan repairRequest // capacity 1: the next repair to run
	repairs  atomic.Int64       // repairs started, for tests and the simulation
}

// queuedEvent is an event waiting for the pump, with the metadata decode
// error (if any) to log when it is delivered rather than under
// memberlist's lock.
type queuedEvent struct {
	ev      Event
	metaErr error
}

// Start validates cfg, binds the gossip port and creates the memberlist
// (this node alone is a cluster of one), then starts the loops and returns
// without waiting for seeds: a background loop joins them, retrying with
// backoff until one answers, and re-joins every RejoinInterval. Use
// WaitJoined to wait for the join.
func Start(cfg Config) (*Gossip, error) {
	return start(cfg, nil)
}

// start is Start with a hook that may wrap the network transport, so tests
// can drop packets.
func start(cfg Config, wrap func(*memberlist.NetTransport) memberlist.Transport) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secret, extra := cfg.SecretKey, cfg.ExtraKeys
	cfg.Seeds = slices.Clone(cfg.Seeds)
	cfg.SecretKey, cfg.ExtraKeys = nil, nil // only the keyring holds them
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var resolver Resolver = net.DefaultResolver
	if cfg.Resolver != nil {
		resolver = cfg.Resolver
	}
	raw, err := encodeMeta(cfg.Meta, false)
	if err != nil {
		return nil, err
	}
	keyring, err := newKeyring(secret, extra)
	if err != nil {
		return nil, err
	}

	g := &Gossip{
		cfg:         cfg,
		log:         logger,
		resolver:    resolver,
		out:         make(chan Event),
		wake:        make(chan struct{}, 1),
		joined:      make(chan struct{}),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		meta:        cfg.Meta,
		metaRaw:     raw,
		members:     make(map[string]Member),
		keyring:     keyring,
		viewChanged: time.Now(),
		repairCh:    make(chan repairRequest, 1),
	}
	g.loopCtx, g.loopCancel = context.WithCancel(context.Background())

	mlc := cfg.memberlistConfig()
	mlc.Logger = newMemberlistLogger(logger)
	mlc.Delegate = &metaDelegate{g: g}
	mlc.Events = &eventDelegate{g: g}
	mlc.Ping = &pingDelegate{g: g}
	if keyring != nil {
		mlc.Keyring = keyring
	}

	host, portStr, _ := net.SplitHostPort(cfg.BindAddr) // checked by Validate
	port, _ := parsePort(portStr, true)
	g.bindIP, _ = netip.ParseAddr(host)
	nt, err := newNetTransport(host, port, mlc.Logger)
	if err != nil {
		g.loopCancel()
		return nil, fmt.Errorf("gossip: bind %s: %w", cfg.BindAddr, err)
	}
	bound := nt.GetAutoBindPort()
	g.addr = net.JoinHostPort(host, fmt.Sprint(bound))
	mlc.Transport = nt
	if wrap != nil {
		mlc.Transport = wrap(nt)
	}
	mlc.BindAddr = host
	mlc.BindPort = bound
	mlc.AdvertisePort = bound
	if cfg.AdvertiseAddr != "" {
		ip, aport, err := g.resolveAdvertise(cfg.AdvertiseAddr, bound)
		if err != nil {
			_ = nt.Shutdown()
			g.loopCancel()
			return nil, err
		}
		mlc.AdvertiseAddr = ip.String()
		mlc.AdvertisePort = aport
	}

	ml, err := memberlist.Create(mlc)
	if err != nil {
		_ = nt.Shutdown()
		g.loopCancel()
		return nil, fmt.Errorf("gossip: create memberlist: %w", err)
	}
	g.ml = ml
	// Read once, before anything else can run UpdateNode on this node.
	g.advertise = ml.LocalNode().Address()

	g.wg.Add(1)
	go g.pump()
	if cfg.RepairDelay > 0 {
		g.wg.Add(1)
		go g.repairLoop()
	}
	if len(cfg.Seeds) == 0 {
		g.markJoined()
	} else {
		g.wg.Add(1)
		go g.joinLoop()
	}
	g.log.Info("gossip started", "name", cfg.Name, "addr", g.addr, "advertise", g.advertise, "seeds", cfg.Seeds,
		"encrypted", g.keyring != nil)
	return g, nil
}

// newNetTransport binds memberlist's TCP+UDP transport. With port 0 the
// kernel picks a free TCP port and the UDP socket must get the same one,
// which can be taken: retry a few times, as memberlist itself does.
func newNetTransport(host string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	attempts := 1
	if port == 0 {
		attempts = 10
	}
	var err error
	for range attempts {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host},
			BindPort:  port,
			Logger:    logger,
		})
		if err == nil {
			return nt, nil
		}
	}
	return nil, err
}

// resolveAdvertise turns AdvertiseAddr ("host" or "host:port", host an IP
// or a DNS name) into the IP and port memberlist advertises. Without a
// port, the bound port is advertised.
func (g *Gossip) resolveAdvertise(s string, boundPort int) (netip.Addr, int, error) {
	host, portStr, hasPort := splitOptionalPort(s)
	port := boundPort
	if hasPort {
		port, _ = parsePort(portStr, false) // checked by Validate
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap(), port, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.TCPTimeout)
	defer cancel()
	ips, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("gossip: resolve AdvertiseAddr %q: %w", s, err)
	}
	if len(ips) == 0 {
		return netip.Addr{}, 0, fmt.Errorf("gossip: resolve AdvertiseAddr %q: no addresses", s)
	}
	return ips[0].Unmap(), port, nil
}

// WaitJoined blocks until this node is part of a cluster: a seed answered a
// join, or another member joined this node. It returns at once for a node
// without seeds (or whose only seed is itself). With the same seed list on
// every node, the first node up waits here until a second one starts.
func (g *Gossip) WaitJoined(ctx context.Context) error {
	select {
	case <-g.joined:
		return nil
	default:
	}
	select {
	case <-g.joined:
		return nil
	case <-g.stop:
		return ErrShutdown
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Events returns the membership events in the order memberlist saw them,
// starting with this node's own join. Events are never dropped and never
// block memberlist: they wait in an unbounded queue until read, so the
// consumer must keep reading. The channel is closed by Shutdown; events
// still queued then are discarded.
func (g *Gossip) Events() <-chan Event {
	return g.out
}

// Members returns the members that have joined and not yet left or died,
// this node included (until it leaves), sorted by name. It reflects every
// event queued so far, possibly some not yet read from Events().
func (g *Gossip) Members() []Member {
	g.viewMu.Lock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	g.viewMu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// NumMembers returns len(Members()) without copying the list.
func (g *Gossip) NumMembers() int {
	g.viewMu.Lock()
	defer g.viewMu.Unlock()
	return len(g.members)
}

// LocalMember returns this node as the others see it: its advertised
// address, the Meta it publishes and its state (alive, leaving, left).
func (g *Gossip) LocalMember() Member {
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	st := StateAlive
	switch {
	case g.left:
		st = StateLeft
	case g.leaving:
		st = StateLeaving
	}
	return Member{Name: g.cfg.Name, GossipAddr: g.advertise, Meta: g.meta, State: st}
}

// Addr returns the host:port gossip is bound to, with the port the kernel
// picked when BindAddr asked for port 0. Seeds of other nodes point here.
func (g *Gossip) Addr() string {
	return g.addr
}

// HealthScore returns memberlist's awareness score: 0 when this node meets
// its probe deadlines, higher (up to AwarenessMaxMultiplier-1) when it is
// itself slow or cut off and so may be wrongly accusing others.
func (g *Gossip) HealthScore() int {
	return g.ml.GetHealthScore()
}

// UpdateMeta publishes new metadata and waits until the update has been
// broadcast, up to ctx's deadline (BroadcastTimeout if it has none; past
// it, ErrBroadcastTimeout, and the update still goes out). The others see
// an EventUpdate.
func (g *Gossip) UpdateMeta(ctx context.Context, m Meta) error {
	raw, err := encodeMeta(m, false)
	if err != nil {
		return err
	}
	return g.runOp(ctx, func(_ context.Context, deadline time.Time) error {
		g.metaMu.Lock()
		if g.left || g.leaving {
			g.metaMu.Unlock()
			return ErrLeft
		}
		g.meta, g.metaRaw = m, raw
		g.metaMu.Unlock()
		if err := g.ml.UpdateNode(waitFor(deadline)); err != nil {
			return fmt.Errorf("%w: metadata update: %v", ErrBroadcastTimeout, err)
		}
		return nil
	})
}

// waitFor converts a deadline into a memberlist timeout. memberlist reads 0
// as "wait forever", so a deadline already past still gets a millisecond.
func waitFor(deadline time.Time) time.Duration {
	return max(time.Until(deadline), time.Millisecond)
}

// runOp runs op under opMu in a tracked goroutine, so that ctx ending
// returns at once while op finishes its (bounded) memberlist waits in the
// background, and Shutdown waits for it. op gets ctx and ctx's deadline, or
// now+BroadcastTimeout if ctx has none. An op that has not started when ctx
// ends is not run.
func (g *Gossip) runOp(ctx context.Context, op func(ctx context.Context, deadline time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(g.cfg.BroadcastTimeout)
	}
	g.opMu.Lock()
	if g.closed {
		g.opMu.Unlock()
		return ErrShutdown
	}
	g.wg.Add(1) // before Shutdown can set closed and Wait
	g.opMu.Unlock()

	res := make(chan error, 1)
	go func() {
		defer g.wg.Done()
		g.opMu.Lock()
		defer g.opMu.Unlock()
		switch {
		case g.closed:
			res <- ErrShutdown
		case ctx.Err() != nil:
			res <- ctx.Err()
		default:
			res <- op(ctx, deadline)
		}
	}()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops memberlist, the join loop and the event pump, and closes
// Events(). Without a Leave first, the others see a crash. It waits for an
// UpdateMeta or Leave in progress to finish its broadcast wait. Calling it
// again returns nil once the first call has finished.
func (g *Gossip) Shutdown() error {
	g.opMu.Lock()
	if g.closed {
		g.opMu.Unlock()
		<-g.done
		return nil
	}
	g.closed = true
	g.opMu.Unlock()

	g.loopCancel()
	err := g.ml.Shutdown()
	g.viewMu.Lock()
	g.stopped = true
	g.pending = nil
	g.viewMu.Unlock()
	close(g.stop)
	g.wg.Wait()
	close(g.done)
	g.log.Info("gossip stopped")
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// markJoined records that this node is part of a cluster (see WaitJoined).
func (g *Gossip) markJoined() {
	g.joinedOnce.Do(func() { close(g.joined) })
}

// isJoined reports whether markJoined has been called.
func (g *Gossip) isJoined() bool {
	select {
	case <-g.joined:
		return true
	default:
		return false
	}
}

// observe records a memberlist event in the view and queues it. It runs
// under memberlist's node lock: it must not block and must not call into
// memberlist. n is copied, never kept.
func (g *Gossip) observe(kind EventKind, n *memberlist.Node) {
	meta, leaving, metaErr := decodeMeta(n.Meta)
	m := Member{Name: n.Name, GossipAddr: n.Address(), Meta: meta, State: StateAlive}
	switch {
	case kind == EventLeave && leaving:
		m.State = StateLeft
	case kind == EventLeave:
		m.State = StateDead
	case leaving:
		m.State = StateLeaving
	}

	g.viewMu.Lock()
	_, present := g.members[m.Name]
	switch {
	case kind == EventLeave && present:
		delete(g.members, m.Name)
		g.digest.remove(m.Name)
		g.viewChanged = time.Now()
	case kind != EventLeave:
		g.members[m.Name] = m
		if !present {
			g.digest.add(m.Name)
			g.viewChanged = time.Now()
		}
	}
	queued := !g.stopped
	if queued {
		g.pending = append(g.pending, queuedEvent{ev: Event{Kind: kind, Member: m}, metaErr: metaErr})
	}
	g.viewMu.Unlock()

	if queued {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	if kind == EventJoin && m.Name != g.cfg.Name {
		g.markJoined()
	}
}

// takePending removes and returns the queued events.
func (g *Gossip) takePending() []queuedEvent {
	g.viewMu.Lock()
	defer g.viewMu.Unlock()
	p := g.pending
	g.pending = nil
	return p
}

// pump delivers queued events on g.out until Shutdown, then closes it.
func (g *Gossip) pump() {
	defer g.wg.Done()
	defer close(g.out)
	for {
		select {
		case <-g.wake:
		case <-g.stop:
			return
		}
		for batch := g.takePending(); len(batch) > 0; batch = g.takePending() {
			for _, q := range batch {
				if q.metaErr != nil {
					g.log.Warn("member metadata could not be decoded; exposing the member without it",
						"member", q.ev.Member.Name, "addr", q.ev.Member.GossipAddr, "event", q.ev.Kind.String(), "err", q.metaErr)
				}
				select {
				case g.out <- q.ev:
				case <-g.stop:
					return
				}
			}
		}
	}
}
