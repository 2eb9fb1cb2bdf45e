package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// Resolver looks up the addresses of a DNS name. *net.Resolver satisfies
// it; tests substitute a fake to give a seed name several addresses.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is everything Start needs. Build one from DefaultLANConfig or
// DefaultFastConfig, then set Name, BindAddr, Seeds and Meta.
type Config struct {
	// Name is this node's unique name in the cluster. Required: it is never
	// defaulted to the hostname, since many nodes may share a host.
	Name string

	// BindAddr is the IP:port gossip listens on, over both TCP and UDP.
	// Port 0 picks a free port (see Gossip.Addr). Binding 0.0.0.0 without
	// AdvertiseAddr advertises one of the host's private IPs, chosen by
	// memberlist; binding :: requires AdvertiseAddr.
	BindAddr string

	// AdvertiseAddr, if set, is the address other nodes should use to reach
	// this one: "host" (the bound port is advertised) or "host:port". A DNS
	// name is resolved once, at Start. Empty advertises the bound address.
	AdvertiseAddr string

	// Seeds are gossip addresses (host:port) to join. A DNS name resolving
	// to several addresses (a Kubernetes headless service, a compose
	// service) joins them all, in parallel; names are resolved again on
	// every attempt, by Resolver (memberlist's own lookup is bypassed). This
	// node's own address is skipped, so every node of a cluster can be given
	// the same list. Empty starts a new cluster.
	Seeds []string

	// Meta is published to the other members; see Meta. Its encoding must
	// fit in MetaMaxSize bytes.
	Meta Meta

	// Label, if set, is attached to every gossip packet and stream; nodes
	// with different labels ignore each other. It keeps two clusters that
	// share a network from merging by accident. At most 255 bytes.
	Label string

	// ProbeInterval is how often this node probes one random member;
	// ProbeTimeout is how long it waits for the ack before asking
	// IndirectChecks other members to probe it too. Together they bound how
	// fast a crash is noticed.
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	IndirectChecks int

	// SuspicionMult scales how long a member stays suspect before it is
	// declared dead (SuspicionMult * log10(N) * ProbeInterval, at least one
	// ProbeInterval each); SuspicionMaxTimeoutMult bounds how much longer
	// the timeout may be while few members confirm the suspicion.
	SuspicionMult           int
	SuspicionMaxTimeoutMult int

	// AwarenessMaxMultiplier caps how far this node slows its own probing
	// when it notices it is itself unhealthy (see Gossip.HealthScore).
	AwarenessMaxMultiplier int

	// GossipInterval is how often queued broadcasts are sent to GossipNodes
	// random members. GossipToTheDeadTime is how long a dead member still
	// receives gossip, giving it a chance to refute.
	GossipInterval      time.Duration
	GossipNodes         int
	GossipToTheDeadTime time.Duration

	// RetransmitMult scales how many times each broadcast is retransmitted
	// (RetransmitMult * log10(N+1)). Too low and some members miss events
	// until the next push/pull.
	RetransmitMult int

	// PushPullInterval is how often this node syncs its full member list
	// with one random member over TCP: the backstop that repairs events
	// lost by gossip. 0 disables it (not recommended).
	PushPullInterval time.Duration

	// TCPTimeout bounds a TCP connect, push/pull or join with one node, and
	// a DNS lookup of a seed or advertise name.
	TCPTimeout time.Duration

	// DeadNodeReclaimTime is how long after a node is declared dead its name
	// may be taken by a node at a different address: a node restarted under
	// the same name with a new IP or port is rejected until then. 0 rejects
	// it forever (memberlist's default, unsuited to restarts).
	DeadNodeReclaimTime time.Duration

	// JoinRetryMin and JoinRetryMax bound the exponential backoff (with
	// jitter) between join attempts while no seed has answered yet: a seed
	// that is not up yet is normal while a cluster starts.
	JoinRetryMin time.Duration
	JoinRetryMax time.Duration

	// RejoinInterval is how often, once joined, the node joins its seeds
	// again: up to three seed addresses picked at random, so a seed name
	// behind which every node runs does not make every node sync with all
	// of them. Each join is a full state sync, so it repairs missed join and
	// leave events and merges the two sides of a healed partition. 0
	// disables it.
	RejoinInterval time.Duration

	// BroadcastTimeout bounds how long UpdateMeta and Leave wait for their
	// broadcast to go out when their context has no deadline.
	BroadcastTimeout time.Duration

	// RepairDelay turns on member-list repair: gossip loses an event now
	// and then (a few of 100 members miss a join until the next push/pull,
	// tens of seconds later), so each node compares a digest of its member
	// list with its peers' and, when two lists that have both been
	// unchanged for RepairDelay still differ, syncs with that peer at once.
	// It must exceed the time gossip normally takes to spread an event, or
	// nodes sync while the event is still on its way. 0 disables it. See
	// repair.go.
	RepairDelay time.Duration

	// SecretKey, if set, encrypts and authenticates every gossip packet and
	// stream (AES-GCM) with this key; it must be 16, 24 or 32 bytes (AES-128,
	// -192, -256). Nodes without the key, or with another, cannot join, and
	// a node with it ignores gossip that is not encrypted. Empty gossips in
	// clear text. See ParseKey and LoadKeyFile, and InstallKey for rotation.
	SecretKey Key

	// ExtraKeys are further keys accepted for decryption while SecretKey
	// encrypts: the other keys of a rotation in progress. They require
	// SecretKey and are validated like it.
	ExtraKeys []Key

	// Resolver resolves seed and advertise DNS names. Nil uses
	// net.DefaultResolver.
	Resolver Resolver

	// Logger receives this package's logs and memberlist's, the latter
	// tagged component=memberlist at the level of their [DEBUG], [INFO],
	// [WARN] or [ERR] prefix. Nil discards them.
	Logger *slog.Logger
}

// DefaultLANConfig returns memberlist's LAN timings (probe every 1 s, crash
// detected in roughly 5-10 s) for nodes on separate machines of one data
// centre. It departs from memberlist's LAN profile in four places: push/pull
// every 10 s instead of 30 s (missed events heal sooner; the cost is one small
// TCP sync per node per interval), DeadNodeReclaimTime 5 s instead of never
// (a node restarted at a new address can rejoin), a 30 s seed re-join, and
// member-list repair after 500 ms (RepairDelay: gossip spreads a join to 100
// nodes in about 600 ms, and the few members it misses catch up within about
// a second instead of at the next push/pull; see docs/gossip-scale.md).
// BindAddr is 127.0.0.1:7946, reachable from this host only: set it (or
// AdvertiseAddr) for a real cluster.
func DefaultLANConfig() Config {
	ml := memberlist.DefaultLANConfig()
	return Config{
		BindAddr:                "127.0.0.1:7946",
		ProbeInterval:           ml.ProbeInterval,
		ProbeTimeout:            ml.ProbeTimeout,
		IndirectChecks:          ml.IndirectChecks,
		SuspicionMult:           ml.SuspicionMult,
		SuspicionMaxTimeoutMult: ml.SuspicionMaxTimeoutMult,
		AwarenessMaxMultiplier:  ml.AwarenessMaxMultiplier,
		GossipInterval:          ml.GossipInterval,
		GossipNodes:             ml.GossipNodes,
		GossipToTheDeadTime:     ml.GossipToTheDeadTime,
		RetransmitMult:          ml.RetransmitMult,
		PushPullInterval:        10 * time.Second,
		TCPTimeout:              ml.TCPTimeout,
		DeadNodeReclaimTime:     5 * time.Second,
		JoinRetryMin:            500 * time.Millisecond,
		JoinRetryMax:            10 * time.Second,
		RejoinInterval:          30 * time.Second,
		BroadcastTimeout:        5 * time.Second,
		RepairDelay:             500 * time.Millisecond,
	}
}

// DefaultFastConfig returns timings for tests and single-host clusters:
// probe 100 ms, probe timeout 50 ms, gossip 20 ms, suspicion 2, push/pull
// 1 s, repair 100 ms, so a join is seen in tens of milliseconds and a crash
// in under half a second. It binds 127.0.0.1 on a free port. It costs CPU (about 44% of a
// core idle at 100 nodes in one process), and on a CPU-starved machine
// (a loaded 2-core box running -race tests) a live node that cannot refute
// a suspicion within 200 ms is declared dead and then rejoins: raise
// SuspicionMult where such flaps matter.
func DefaultFastConfig() Config {
	c := DefaultLANConfig()
	c.BindAddr = "127.0.0.1:0"
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.SuspicionMult = 2
	c.PushPullInterval = time.Second
	c.GossipToTheDeadTime = 2 * time.Second
	c.TCPTimeout = time.Second
	c.DeadNodeReclaimTime = 500 * time.Millisecond
	c.JoinRetryMin = 20 * time.Millisecond
	c.JoinRetryMax = 250 * time.Millisecond
	c.RejoinInterval = time.Second
	c.BroadcastTimeout = time.Second
	c.RepairDelay = 100 * time.Millisecond
	return c
}

// Validate reports every problem that would stop Start, each wrapping
// ErrInvalidConfig, so a misconfiguration fails before anything binds.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}

	if c.Name == "" {
		bad("Name is required")
	} else if len(c.Name) > 255 {
		bad("Name is %d bytes, limit 255", len(c.Name))
	}

	if host, port, err := net.SplitHostPort(c.BindAddr); err != nil {
		bad("BindAddr %q: %v", c.BindAddr, err)
	} else if ip, err := netip.ParseAddr(host); err != nil {
		bad("BindAddr %q: host must be an IP address", c.BindAddr)
	} else if _, err := parsePort(port, true); err != nil {
		bad("BindAddr %q: %v", c.BindAddr, err)
	} else if ip.Is6() && ip.IsUnspecified() && c.AdvertiseAddr == "" {
		bad("BindAddr %q binds every IPv6 address: set AdvertiseAddr", c.BindAddr)
	}

	if c.AdvertiseAddr != "" {
		host, port, hasPort := splitOptionalPort(c.AdvertiseAddr)
		if host == "" {
			bad("AdvertiseAddr %q: missing host", c.AdvertiseAddr)
		} else if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
			bad("AdvertiseAddr %q: cannot advertise an unspecified address", c.AdvertiseAddr)
		}
		if hasPort {
			if _, err := parsePort(port, false); err != nil {
				bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
			}
		}
	}

	for _, s := range c.Seeds {
		if err := checkHostPort(s, false); err != nil {
			bad("seed %q: %v", s, err)
		}
	}

	if _, err := encodeMeta(c.Meta, false); err != nil {
		errs = append(errs, fmt.Errorf("%w: Meta: %w", ErrInvalidConfig, err))
	}
	if len(c.Label) > memberlist.LabelMaxSize {
		bad("Label is %d bytes, limit %d", len(c.Label), memberlist.LabelMaxSize)
	}
	if len(c.SecretKey) > 0 {
		if err := checkKey(c.SecretKey); err != nil {
			bad("SecretKey: %v", err)
		}
	} else if len(c.ExtraKeys) > 0 {
		bad("ExtraKeys require a SecretKey")
	}
	for i, k := range c.ExtraKeys {
		if err := checkKey(k); err != nil {
			bad("ExtraKeys[%d]: %v", i, err)
		}
	}

	positive := []struct {
		name string
		d    time.Duration
	}{
		{"ProbeInterval", c.ProbeInterval},
		{"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval},
		{"TCPTimeout", c.TCPTimeout},
		{"JoinRetryMin", c.JoinRetryMin},
		{"JoinRetryMax", c.JoinRetryMax},
		{"BroadcastTimeout", c.BroadcastTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad("%s must be positive, got %v", p.name, p.d)
		}
	}
	nonNegative := []struct {
		name string
		d    time.Duration
	}{
		{"GossipToTheDeadTime", c.GossipToTheDeadTime},
		{"PushPullInterval", c.PushPullInterval},
		{"DeadNodeReclaimTime", c.DeadNodeReclaimTime},
		{"RejoinInterval", c.RejoinInterval},
		{"RepairDelay", c.RepairDelay},
	}
	for _, p := range nonNegative {
		if p.d < 0 {
			bad("%s must not be negative, got %v", p.name, p.d)
		}
	}
	if c.ProbeTimeout > c.ProbeInterval && c.ProbeInterval > 0 {
		bad("ProbeTimeout %v exceeds ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.JoinRetryMax < c.JoinRetryMin {
		bad("JoinRetryMax %v is below JoinRetryMin %v", c.JoinRetryMax, c.JoinRetryMin)
	}

	atLeast := []struct {
		name string
		v    int
		min  int
	}{
		{"IndirectChecks", c.IndirectChecks, 0},
		{"SuspicionMult", c.SuspicionMult, 1},
		{"SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult, 1},
		{"AwarenessMaxMultiplier", c.AwarenessMaxMultiplier, 1},
		{"GossipNodes", c.GossipNodes, 1},
		{"RetransmitMult", c.RetransmitMult, 1},
	}
	for _, a := range atLeast {
		if a.v < a.min {
			bad("%s must be at least %d, got %d", a.name, a.min, a.v)
		}
	}
	return errors.Join(errs...)
}

// splitOptionalPort splits "host" or "host:port" (IPv6 hosts with a port in
// brackets). hasPort reports whether a port was given.
func splitOptionalPort(s string) (host, port string, hasPort bool) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p, true
	}
	if len(s) > 1 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1], "", false
	}
	return s, "", false
}

// memberlistConfig copies the timings into a memberlist configuration. The
// transport, names, addresses and delegates are filled in by Start.
func (c *Config) memberlistConfig() *memberlist.Config {
	ml := memberlist.DefaultLANConfig()
	ml.Name = c.Name
	ml.Label = c.Label
	ml.ProbeInterval = c.ProbeInterval
	ml.ProbeTimeout = c.ProbeTimeout
	ml.IndirectChecks = c.IndirectChecks
	ml.SuspicionMult = c.SuspicionMult
	ml.SuspicionMaxTimeoutMult = c.SuspicionMaxTimeoutMult
	ml.AwarenessMaxMultiplier = c.AwarenessMaxMultiplier
	ml.GossipInterval = c.GossipInterval
	ml.GossipNodes = c.GossipNodes
	ml.GossipToTheDeadTime = c.GossipToTheDeadTime
	ml.RetransmitMult = c.RetransmitMult
	ml.PushPullInterval = c.PushPullInterval
	ml.TCPTimeout = c.TCPTimeout
	ml.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	return ml
}
