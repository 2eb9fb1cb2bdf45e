package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/starlingcache/starling/gossip"
	"github.com/starlingcache/starling/node/admin"
	"github.com/starlingcache/starling/node/resp"
	"github.com/starlingcache/starling/node/store"
	"github.com/starlingcache/starling/ring"
	"github.com/starlingcache/starling/transport"
)

// Config holds everything a node needs. Build one from DefaultConfig (LAN
// timings) or DefaultLocalConfig (fast failure detection for tests and a
// single machine), then set Name, Addr and the gossip addresses.
type Config struct {
	// Name identifies the node in the cluster. It must be unique and stable
	// across restarts: the ring places keys by name, so a restarted node with
	// the same name gets the same share of the key space back.
	Name string

	// Addr is the host:port the msgpack transport listens on for clients and
	// peers. Port 0 picks a free port (tests).
	Addr string

	// Advertise, if set, is the host other nodes and clients should use to
	// reach this node (for both the data and gossip ports). Needed when Addr
	// binds a wildcard address such as 0.0.0.0.
	Advertise string

	// Gossip configures membership. Its Name and Meta are filled in by the
	// node; set BindAddr and Seeds.
	Gossip gossip.Config

	// Transport configures the server peers and clients connect to, and the
	// client this node forwards requests with. DefaultConfig gives that
	// client one connection per peer when GOMAXPROCS is 1 (see peerConns),
	// two otherwise.
	Transport transport.Config

	// RESP configures the Redis-protocol front end. It is disabled unless
	// RESP.Addr is set.
	RESP resp.Config

	// HTTP configures the operator's HTTP endpoints: Prometheus /metrics,
	// /healthz, /readyz and the status page. Disabled unless HTTP.Addr is
	// set.
	HTTP admin.Config

	// ServerTLS, if set, secures the connections this node accepts on its
	// data port (from peers and clients); ClientTLS those it dials to
	// peers. transport.LoadTLS builds both from PEM files, for mutual TLS
	// between nodes. Transport.Secret is the other half of peer
	// authentication: with it set, only holders of the cluster secret may
	// talk to the node.
	ServerTLS, ClientTLS *tls.Config

	// Store bounds and tunes the local storage engine.
	Store store.Config

	// Ring configures the consistent-hash ring rebuilt on every membership
	// change.
	Ring ring.Config

	// Replicas is how many nodes hold each key: the primary (the key's
	// owner on the ring) and Replicas-1 successors. 1 keeps a single copy,
	// as memcached does; 2 survives any single crash.
	Replicas int

	// WriteAck says how many copies a write waits for before it is
	// acknowledged: AckOne (the coordinator's own), AckQuorum (a majority of
	// Replicas, counting the coordinator; for Replicas=2 that is both) or
	// AckAll. A replica that is unreachable or misses ReplicaTimeout is
	// skipped rather than failing the write, and gets the write later
	// through a hint: availability first, as a cache should.
	WriteAck AckMode

	// ReplicaTimeout bounds how long a write waits for one replica. Keep it
	// far below gossip's failure detection: a dead replica must cost a
	// write at most this, once; then the peer is skipped for PeerBackoff.
	// A write acknowledged while a replica was unreachable has fewer copies
	// until its hint is delivered: Replicas=2 survives one crash of a
	// healthy cluster, not a crash of the only copy left.
	ReplicaTimeout time.Duration

	// PeerBackoff is how long a peer that failed a call is skipped by reads
	// and writes before it is tried again, so a crash costs each client
	// one timeout rather than one per request until gossip notices.
	PeerBackoff time.Duration

	// TombstoneTTL is how long a deleted key's tombstone is kept. It must
	// outlast rebalancing and hinted hand-off, so that a stale copy arriving
	// late cannot bring the key back.
	TombstoneTTL time.Duration

	// RebalanceInterval is how often the node retries hints (writes a
	// replica missed) and re-checks misplaced keys. Ring changes trigger a
	// rebalance at once regardless.
	RebalanceInterval time.Duration

	// HandoffGrace is how long after a ring change a read that misses on a
	// key's new owner asks the previous owners, so no miss appears while
	// keys are still being handed over.
	HandoffGrace time.Duration

	// HandoffBatch is how many entries travel in one rebalancing batch: it
	// bounds the memory and bytes in flight per peer during a rebalance.
	HandoffBatch int

	// JoinWait bounds how long a starting node holds requests while it
	// tries to reach its seeds: answering before it knows the cluster could
	// serve misses for keys it does not own. Seeds that do not answer in
	// time leave it serving as a cluster of one, joining when they appear.
	JoinWait time.Duration

	// PauseThreshold is how long the process may go without running (a
	// SIGSTOP, a frozen VM) before the node distrusts its own store: its
	// peers may have taken writes for its keys meanwhile. Shorter stalls
	// are repaired by hints, as for a slow replica.
	PauseThreshold time.Duration

	// ResyncWindow is how long after such a pause every read of a key this
	// node owns first asks the key's other owners for their copy, newest
	// version winning, while hand-off and hints catch the node up.
	ResyncWindow time.Duration

	// ForwardTimeout bounds one forwarded request when the caller's context
	// has no earlier deadline. It must stay well below gossip's failure
	// detection time: a request must not hang on a dead owner that gossip
	// has not yet removed.
	ForwardTimeout time.Duration

	// Logger receives the node's structured logs. Nil discards them.
	Logger *slog.Logger
}

// peerConns is how many connections a node given procs cores opens to each
// peer to forward requests on. A second connection lets a peer with cores
// to spare serve the node's requests on two of them; but it also halves
// what each write and each of the peer's reads carries, and so doubles the
// system calls and wake-ups per request on both sides. Clusters are
// usually alike, so a node that may run on one core most likely forwards
// to peers that can too, where the second connection buys nothing but
// that overhead: three nodes on one core, forwarding pipelined GETs, made
// a third of the writes and half the peer reads per request over one
// connection. GOMAXPROCS is 1 on a one-CPU machine, under an affinity or
// cpuset of one CPU (taskset, docker --cpuset-cpus, Kubernetes' static CPU
// manager) or when set so; a CPU quota (docker --cpus=1, a Kubernetes
// limit of one CPU) leaves it at 2 or more, and such nodes are better
// started with --peer-conns 1.
func peerConns(procs int) int {
	if procs <= 1 {
		return 1
	}
	return transport.DefaultConfig().ConnsPerPeer
}

// DefaultConfig returns a configuration with LAN gossip timings, suited to
// nodes on separate machines of one data centre.
func DefaultConfig() Config {
	tcfg := transport.DefaultConfig()
	tcfg.ConnsPerPeer = peerConns(runtime.GOMAXPROCS(0))
	return Config{
		Addr:           "127.0.0.1:7001",
		Gossip:         gossip.DefaultLANConfig(),
		Transport:      tcfg,
		RESP:           resp.DefaultConfig(),
		HTTP:           admin.DefaultConfig(),
		Store:          store.DefaultConfig(),
		Ring:           ring.DefaultConfig(),
		ForwardTimeout: 2 * time.Second,

		Replicas:          2,
		WriteAck:          AckQuorum,
		ReplicaTimeout:    500 * time.Millisecond,
		PeerBackoff:       time.Second,
		TombstoneTTL:      10 * time.Minute,
		RebalanceInterval: 10 * time.Second,
		HandoffGrace:      30 * time.Second,
		HandoffBatch:      256,
		JoinWait:          5 * time.Second,
		PauseThreshold:    2 * time.Second,
		ResyncWindow:      30 * time.Second,
	}
}

// DefaultLocalConfig returns DefaultConfig with fast gossip timings: failures
// are detected in well under a second, at the cost of more gossip traffic
// and CPU. Use it for tests and for clusters on one machine.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	c.Gossip = gossip.DefaultFastConfig()
	c.ForwardTimeout = time.Second
	c.ReplicaTimeout = 250 * time.Millisecond
	c.PeerBackoff = 500 * time.Millisecond
	c.RebalanceInterval = time.Second
	c.HandoffGrace = 10 * time.Second
	c.PauseThreshold = time.Second
	c.ResyncWindow = 10 * time.Second
	c.JoinWait = 2 * time.Second
	return c
}

// AckMode is how many copies of a write are confirmed before it is
// acknowledged to the client.
type AckMode uint8

// Write acknowledgement modes; see Config.WriteAck.
const (
	AckQuorum AckMode = iota
	AckOne
	AckAll
)

// ParseAckMode parses "one", "quorum" or "all".
func ParseAckMode(s string) (AckMode, error) {
	switch s {
	case "one":
		return AckOne, nil
	case "quorum":
		return AckQuorum, nil
	case "all":
		return AckAll, nil
	}
	return 0, fmt.Errorf("%w: write ack %q (want one, quorum or all)", ErrInvalidConfig, s)
}

// String returns the mode's flag spelling.
func (m AckMode) String() string {
	switch m {
	case AckOne:
		return "one"
	case AckAll:
		return "all"
	}
	return "quorum"
}

// waitFor returns how many replica acknowledgements (not counting the
// coordinator's own copy) a write waits for, given how many replicas it
// was sent to.
func (m AckMode) waitFor(replicas, sent int) int {
	switch m {
	case AckOne:
		return 0
	case AckAll:
		return sent
	}
	return min(replicas/2, sent) // a majority of replicas, counting ours
}

// Validate reports the first problem that would stop a node from starting,
// so a misconfiguration fails fast with a clear message instead of at the
// first request.
func (c *Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("%w: node name is required", ErrInvalidConfig)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("%w: data address %q: %v", ErrInvalidConfig, c.Addr, err)
	}
	if c.ForwardTimeout <= 0 {
		return fmt.Errorf("%w: forward timeout must be positive", ErrInvalidConfig)
	}
	if c.Replicas < 1 || c.Replicas > maxReplicas {
		return fmt.Errorf("%w: replicas %d must be in [1, %d]", ErrInvalidConfig, c.Replicas, maxReplicas)
	}
	if c.WriteAck > AckAll {
		return fmt.Errorf("%w: unknown write ack mode %d", ErrInvalidConfig, c.WriteAck)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"replica timeout", c.ReplicaTimeout}, {"peer backoff", c.PeerBackoff}, {"tombstone TTL", c.TombstoneTTL},
		{"rebalance interval", c.RebalanceInterval}, {"handoff grace", c.HandoffGrace},
		{"pause threshold", c.PauseThreshold}, {"resync window", c.ResyncWindow}, {"join wait", c.JoinWait},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%w: %s must be positive", ErrInvalidConfig, d.name)
		}
	}
	if c.HandoffBatch < 1 {
		return fmt.Errorf("%w: handoff batch must be at least 1", ErrInvalidConfig)
	}
	if err := c.Transport.Validate(); err != nil {
		return fmt.Errorf("%w: transport: %w", ErrInvalidConfig, err)
	}
	if c.RESP.Addr != "" {
		if _, _, err := net.SplitHostPort(c.RESP.Addr); err != nil {
			return fmt.Errorf("%w: RESP address %q: %v", ErrInvalidConfig, c.RESP.Addr, err)
		}
		if err := c.RESP.Validate(); err != nil {
			return fmt.Errorf("%w: resp: %w", ErrInvalidConfig, err)
		}
	}
	if err := c.Store.Validate(); err != nil {
		return fmt.Errorf("%w: store: %w", ErrInvalidConfig, err)
	}
	if err := c.Ring.Validate(); err != nil {
		return fmt.Errorf("%w: ring: %w", ErrInvalidConfig, err)
	}
	return nil
}

// maxReplicas bounds Config.Replicas; owner lists live in fixed arrays of
// this size on the request path.
const maxReplicas = 7

// Errors returned by New, Start and the request path.
var (
	// ErrInvalidConfig wraps every configuration problem found by Validate.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrNotStarted is returned by calls that need a running node.
	ErrNotStarted = errors.New("node not started")
	// ErrShutdown is returned by calls made after Shutdown.
	ErrShutdown = errors.New("node shut down")
)
