package admin

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starlingcache/starling/node/metrics"
)

// knownStates are always exported by starling_members, at 0 when no member
// is in them, so that a dashboard's series do not vanish while the cluster
// is healthy.
var knownStates = [...]string{"alive", "suspect", "leaving", "left", "dead"}

// collector turns a Source and a Recorder into Prometheus metrics at
// scrape time. Nothing is kept between scrapes: counters live in the
// Recorder and the node, so a scrape costs one Status call and one
// Snapshot.
type collector struct {
	src     Source
	rec     *metrics.Recorder
	timeout time.Duration
	log     *slog.Logger
	bounds  []float64 // histogram bucket bounds in seconds

	requests, duration, bytesIn, bytesOut *prometheus.Desc

	statusErr, ready, info *prometheus.Desc

	entries, tombstones, usedBytes, maxBytes       *prometheus.Desc
	hits, misses, evictions, expirations           *prometheus.Desc
	members, ringInfo, ringMembers, share, vnodes  *prometheus.Desc
	keysMoved, bytesMoved, lastHandoff, rebalances *prometheus.Desc
	replicated, underReplicated, fallbacks, health *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(src Source, rec *metrics.Recorder, timeout time.Duration, log *slog.Logger) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("starling_"+name, help, labels, nil)
	}
	c := &collector{
		src:     src,
		rec:     rec,
		timeout: timeout,
		log:     log,

		requests: d("requests_total", "Requests by operation, result (ok, not_found, error) and route (local: served from this node's store; forwarded: sent on to the key's owner).", "op", "result", "route"),
		duration: d("request_duration_seconds", "Request latency by operation and route, as this node measured it.", "op", "route"),
		bytesIn:  d("received_bytes_total", "Bytes received in requests."),
		bytesOut: d("sent_bytes_total", "Bytes sent in responses."),

		statusErr: d("status_error", "Reports that the node's status could not be read during this scrape."),
		ready:     d("ready", "1 when the node is ready for traffic (/readyz), 0 otherwise."),
		info:      d("build_info", "Always 1; labels name the node and its version.", "node", "version"),

		entries:     d("store_entries", "Live entries in the local store."),
		tombstones:  d("store_tombstones", "Tombstones (deleted keys remembered against stale copies) in the local store."),
		usedBytes:   d("store_used_bytes", "Memory charged against the store's bound."),
		maxBytes:    d("store_max_bytes", "The store's memory bound."),
		hits:        d("store_hits_total", "Store reads that found a live entry."),
		misses:      d("store_misses_total", "Store reads that found nothing."),
		evictions:   d("store_evictions_total", "Entries evicted to make room."),
		expirations: d("store_expirations_total", "Expired entries reclaimed."),

		members:     d("members", "Members this node sees, by gossip state.", "state"),
		ringInfo:    d("ring_info", "Always 1; the version label identifies the ring this node routes by (nodes that agree route identically).", "version"),
		ringMembers: d("ring_members", "Members on the ring this node routes by."),
		share:       d("ring_share_ratio", "Fraction of the key space this node owns, 0 to 1."),
		vnodes:      d("ring_vnodes", "Points this node has on the ring."),

		keysMoved:       d("rebalance_moved_keys_total", "Keys handed to new owners."),
		bytesMoved:      d("rebalance_moved_bytes_total", "Bytes of entries handed to new owners."),
		lastHandoff:     d("rebalance_last_duration_seconds", "Duration of the last rebalance pass that moved keys."),
		rebalances:      d("rebalance_running", "Rebalance passes in progress."),
		replicated:      d("replication_copies_total", "Copies of writes acknowledged by replicas."),
		underReplicated: d("replication_pending_keys", "Keys waiting for a hint to reach a replica that missed them."),
		fallbacks:       d("handoff_fallback_reads_total", "Requests that first fetched their key from other owners and found a copy: from a previous owner while the hand-off had not delivered it, or from the other owners after this node was paused."),
		health:          d("gossip_health_score", "memberlist's awareness score: 0 is healthy, higher means this node is slow to answer probes."),
	}
	for _, b := range metrics.Bounds() {
		c.bounds = append(c.bounds, b.Seconds())
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.requests, c.duration, c.bytesIn, c.bytesOut,
		c.statusErr, c.ready, c.info,
		c.entries, c.tombstones, c.usedBytes, c.maxBytes,
		c.hits, c.misses, c.evictions, c.expirations,
		c.members, c.ringInfo, c.ringMembers, c.share, c.vnodes,
		c.keysMoved, c.bytesMoved, c.lastHandoff, c.rebalances,
		c.replicated, c.underReplicated, c.fallbacks, c.health,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.collectRequests(ch)
	ready := 0.0
	if c.src.Ready() == nil {
		ready = 1
	}
	ch <- gauge(c.ready, ready)

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.src.Status(ctx)
	if err != nil {
		// Report the failure in-band: the scrape still serves the request
		// metrics, and an alert can fire on starling_status_error.
		c.log.Warn("metrics: node status unavailable", "err", err)
		ch <- gauge(c.statusErr, 1)
		return
	}
	ch <- gauge(c.statusErr, 0)
	ch <- gauge(c.info, 1, st.Name, st.Version)

	s := st.Store
	ch <- gauge(c.entries, float64(s.Entries))
	ch <- gauge(c.tombstones, float64(s.Tombstones))
	ch <- gauge(c.usedBytes, float64(s.Bytes))
	ch <- gauge(c.maxBytes, float64(s.MaxMemory))
	ch <- counter(c.hits, float64(s.Hits))
	ch <- counter(c.misses, float64(s.Misses))
	ch <- counter(c.evictions, float64(s.Evictions))
	ch <- counter(c.expirations, float64(s.Expirations))

	byState := make(map[string]int, len(knownStates))
	for _, st := range knownStates {
		byState[st] = 0
	}
	for _, m := range st.Members {
		state := m.State
		if state == "" {
			state = "unknown"
		}
		byState[state]++
	}
	for state, n := range byState {
		ch <- gauge(c.members, float64(n), state)
	}

	ch <- gauge(c.ringInfo, 1, "0x"+strconv.FormatUint(st.Ring.Version, 16))
	ch <- gauge(c.ringMembers, float64(len(st.Ring.Shares)))
	var share float64
	var vnodes int
	for _, sh := range st.Ring.Shares {
		if sh.Name == st.Name {
			share, vnodes = sh.Fraction, sh.VNodes
		}
	}
	ch <- gauge(c.share, share)
	ch <- gauge(c.vnodes, float64(vnodes))

	r := st.Rebalance
	ch <- counter(c.keysMoved, float64(r.KeysMoved))
	ch <- counter(c.bytesMoved, float64(r.BytesMoved))
	ch <- gauge(c.lastHandoff, r.LastHandoff.Seconds())
	ch <- gauge(c.rebalances, float64(r.Running))
	ch <- counter(c.replicated, float64(r.Replicated))
	ch <- gauge(c.underReplicated, float64(r.UnderReplicated))
	ch <- counter(c.fallbacks, float64(r.FallbackHits))
	ch <- gauge(c.health, float64(st.GossipHealth))
}

// collectRequests exports the Recorder's counters. Only operations that
// were recorded appear; for those, every result and route does, at 0 if
// need be, so that ratios such as errors over requests are defined.
func (c *collector) collectRequests(ch chan<- prometheus.Metric) {
	if c.rec == nil {
		return
	}
	snap := c.rec.Snapshot()
	ch <- counter(c.bytesIn, float64(snap.BytesIn))
	ch <- counter(c.bytesOut, float64(snap.BytesOut))
	for i := range snap.Ops {
		o := &snap.Ops[i]
		name := o.Name()
		for _, route := range []struct {
			name   string
			counts *metrics.Counts
		}{{"local", &o.Local}, {"forwarded", &o.Forwarded}} {
			for res := range metrics.NumResults {
				ch <- counter(c.requests, float64(route.counts.Results[res]), name, metrics.Result(res).String(), route.name)
			}
			ch <- c.histogram(route.counts, name, route.name)
		}
	}
}

// histogram converts a Recorder's bucket counts into a Prometheus
// histogram, whose buckets are cumulative.
func (c *collector) histogram(cnt *metrics.Counts, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(c.bounds))
	var cum uint64
	for i, b := range c.bounds {
		cum += cnt.Buckets[i]
		buckets[b] = cum
	}
	total := cum + cnt.Buckets[len(c.bounds)]
	return orInvalid(c.duration)(prometheus.NewConstHistogram(c.duration, total, cnt.Sum.Seconds(), buckets, labels...))
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return orInvalid(d)(prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...))
}

func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return orInvalid(d)(prometheus.NewConstMetric(d, prometheus.CounterValue, v, labels...))
}

// orInvalid turns a metric that could not be built (a label value that is
// not UTF-8, say a node name) into an error reported by the scrape, where
// the Must constructors would have panicked the node.
func orInvalid(d *prometheus.Desc) func(prometheus.Metric, error) prometheus.Metric {
	return func(m prometheus.Metric, err error) prometheus.Metric {
		if err != nil {
			return prometheus.NewInvalidMetric(d, err)
		}
		return m
	}
}
