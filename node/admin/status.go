package admin

import (
	"context"
	"time"

	"github.com/starlingcache/starling/transport"
)

// Source is what the admin server reports on: the node implements it. Each
// method may be called concurrently, from scrapes and page polls, and
// should return promptly; the server bounds ctx by Config.SourceTimeout.
type Source interface {
	// Ready returns nil when the node should receive traffic: it has
	// joined its cluster, built a ring and has no hand-off pending.
	// Otherwise the error says why not; /readyz shows it to the operator.
	Ready() error

	// Status returns this node's view of itself and of the cluster. It
	// must not call peers: scrapes use it.
	Status(ctx context.Context) (Status, error)

	// ClusterStatus returns every member's own figures, gathered from the
	// members (OpStats), this node included. A member that did not answer
	// is reported with Error set rather than failing the whole call.
	ClusterStatus(ctx context.Context) ([]NodeStatus, error)
}

// Status is one node's view of itself and of the cluster.
type Status struct {
	// Name is the node's name, its identity on the ring.
	Name string `json:"name"`
	// Version is the starling release the node runs.
	Version string `json:"version"`
	// StartedAt is when the node started; the zero time if unknown.
	StartedAt time.Time `json:"started_at,omitzero"`
	// The node's own addresses; empty when the listener is disabled.
	DataAddr   string `json:"data_addr"`
	RESPAddr   string `json:"resp_addr,omitempty"`
	GossipAddr string `json:"gossip_addr"`
	HTTPAddr   string `json:"http_addr,omitempty"`
	// Members are the members this node sees, sorted by name.
	Members []Member `json:"members"`
	// Ring is the ring this node routes by.
	Ring Ring `json:"ring"`
	// Store is the local store's size and counters.
	Store Store `json:"store"`
	// Rebalance counts replication and hand-off work.
	Rebalance Rebalance `json:"rebalance"`
	// GossipHealth is memberlist's awareness score: 0 is healthy, higher
	// means this node is failing to keep up with its probes (see
	// gossip.Gossip.HealthScore).
	GossipHealth int `json:"gossip_health"`
}

// Member is one member as this node sees it.
type Member struct {
	Name string `json:"name"`
	// State is gossip's liveness for it: "alive", "suspect", "leaving",
	// "left" or "dead" (gossip.State.String).
	State      string `json:"state"`
	DataAddr   string `json:"data_addr"`
	RESPAddr   string `json:"resp_addr,omitempty"`
	HTTPAddr   string `json:"http_addr,omitempty"`
	GossipAddr string `json:"gossip_addr"`
}

// Ring describes the consistent-hash ring a node routes by.
type Ring struct {
	// Version identifies the ring (ring.Ring.Version): nodes that agree on
	// it route identically. It travels as a decimal string in JSON because
	// JavaScript numbers cannot hold 64 bits.
	Version uint64 `json:"version,string"`
	// Shares lists each ring member's fraction of the key space, by name.
	Shares []Share `json:"shares"`
}

// Share is one member's part of the ring.
type Share struct {
	Name string `json:"name"`
	// Fraction of the hash space the member owns, 0 to 1; the fractions of
	// all members sum to 1 (ring.Ring.Shares).
	Fraction float64 `json:"fraction"`
	// VNodes is the number of points the member has on the ring.
	VNodes int `json:"vnodes"`
}

// Store is the local store's size and counters (store.Stats).
type Store struct {
	Entries     int64 `json:"entries"`
	Tombstones  int64 `json:"tombstones"`
	Bytes       int64 `json:"bytes"`
	MaxMemory   int64 `json:"max_memory"`
	Hits        int64 `json:"hits"`
	Misses      int64 `json:"misses"`
	Evictions   int64 `json:"evictions"`
	Expirations int64 `json:"expirations"`
}

// Rebalance counts the work of keeping every key on its owners.
type Rebalance struct {
	// KeysMoved and BytesMoved count entries handed to new owners.
	KeysMoved  int64 `json:"keys_moved"`
	BytesMoved int64 `json:"bytes_moved"`
	// Replicated counts copies acknowledged by replicas.
	Replicated int64 `json:"replicated"`
	// FallbackHits counts requests that first fetched their key from other
	// owners and found a copy: from a previous owner while a hand-off had
	// not delivered it, or from the other owners after a pause.
	FallbackHits int64 `json:"fallback_hits"`
	// UnderReplicated is the number of keys waiting for a hint to reach a
	// replica that missed them.
	UnderReplicated int64 `json:"under_replicated"`
	// Running is the number of rebalance passes in progress.
	Running int64 `json:"running"`
	// LastHandoff is how long the last pass that moved keys took.
	LastHandoff time.Duration `json:"last_handoff_ns"`
}

// NodeStatus is one member's own figures, as it reported them.
type NodeStatus struct {
	Name string `json:"name"`
	// Addr is the data address the figures were fetched from.
	Addr string `json:"addr"`
	// Error says why the member's figures are missing; the other fields
	// are then zero.
	Error string `json:"error,omitempty"`
	// Requests counts the requests the member has served or forwarded
	// since it started. It only grows (until a restart), so the page
	// derives ops/s from successive polls.
	Requests int64 `json:"requests"`
	// Entries, Bytes and MaxMemory are its store's size and bound.
	Entries   int64 `json:"entries"`
	Bytes     int64 `json:"bytes"`
	MaxMemory int64 `json:"max_memory"`
	// Hits and Misses count its store's reads.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
}

// NodeStatusFromStats builds a member's NodeStatus from the counters it
// returned for OpStats.
func NodeStatusFromStats(name, addr string, s *transport.Stats) NodeStatus {
	ns := NodeStatus{Name: name, Addr: addr}
	if s == nil {
		ns.Error = "no stats in reply"
		return ns
	}
	ns.Requests = s.Local + s.Forwarded
	ns.Entries, ns.Bytes, ns.MaxMemory = s.Entries, s.Bytes, s.MaxMemory
	ns.Hits, ns.Misses = s.Hits, s.Misses
	return ns
}

// Overview is the body of /api/status: everything the status page shows,
// in one poll.
type Overview struct {
	// Time is when the overview was taken, by the serving node's clock;
	// the page divides counter deltas by differences of it.
	Time time.Time `json:"time"`
	// RefreshMillis is how often the page should poll.
	RefreshMillis int64 `json:"refresh_ms"`
	// Ready and NotReady mirror /readyz.
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	// Node is the serving node's Status.
	Node Status `json:"node"`
	// Requests summarises the serving node's requests by operation.
	Requests []OpSummary `json:"requests"`
	// BytesIn and BytesOut count the serving node's request traffic.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Cluster holds every member's own figures; ClusterError says why it
	// is missing.
	Cluster      []NodeStatus `json:"cluster"`
	ClusterError string       `json:"cluster_error,omitempty"`
}

// OpSummary is one operation's counters on the serving node.
type OpSummary struct {
	Op        string `json:"op"`
	Requests  uint64 `json:"requests"`
	Forwarded uint64 `json:"forwarded"`
	NotFound  uint64 `json:"not_found"`
	Errors    uint64 `json:"errors"`
	// MeanMicros is the mean latency; P99Micros the upper bound of the
	// latency bucket holding the 99th percentile.
	MeanMicros float64 `json:"mean_us"`
	P99Micros  float64 `json:"p99_us"`
}
