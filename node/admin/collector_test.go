package admin

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/starlingcache/starling/node/metrics"
	"github.com/starlingcache/starling/transport"
)

// scrape fetches /metrics and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := get(t, base+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d: %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// find returns the metric of family name whose labels include all of
// labels (given as name, value pairs), or nil.
func find(fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns the value of a counter or gauge, or -1 if it is absent.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	m := find(fams, name, labels...)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// TestMetricsCounters scrapes, records a known sequence, scrapes again,
// and checks that each series moved by exactly what was recorded.
func TestMetricsCounters(t *testing.T) {
	src := newFakeCluster(t, "n1", "n2", "n3")
	rec := metrics.NewRecorder()
	rec.Observe(transport.OpGet, metrics.OK, false, time.Microsecond) // so "get" exists before
	_, base := startServer(t, DefaultConfig(), src, rec)

	before := scrape(t, base)
	rec.Observe(transport.OpGet, metrics.OK, false, 20*time.Microsecond)      // bucket le=2.5e-05
	rec.Observe(transport.OpGet, metrics.OK, false, 20*time.Microsecond)      // same
	rec.Observe(transport.OpGet, metrics.NotFound, false, 3*time.Millisecond) // le=0.005
	rec.Observe(transport.OpGet, metrics.OK, true, 700*time.Microsecond)      // forwarded, le=0.001
	rec.Observe(transport.OpSet, metrics.Error, true, 10*time.Second)         // beyond every bound
	rec.AddBytes(1000, 250)
	after := scrape(t, base)

	delta := func(name string, labels ...string) float64 {
		b := value(before, name, labels...)
		if b < 0 {
			b = 0
		}
		return value(after, name, labels...) - b
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"op", "get", "result", "ok", "route", "local"}, 2},
		{[]string{"op", "get", "result", "not_found", "route", "local"}, 1},
		{[]string{"op", "get", "result", "error", "route", "local"}, 0},
		{[]string{"op", "get", "result", "ok", "route", "forwarded"}, 1},
		{[]string{"op", "set", "result", "error", "route", "forwarded"}, 1},
		{[]string{"op", "set", "result", "ok", "route", "local"}, 0},
	} {
		if got := delta("starling_requests_total", c.labels...); got != c.want {
			t.Errorf("starling_requests_total%v moved by %v, want %v", c.labels, got, c.want)
		}
	}
	if got := value(after, "starling_requests_total", "op", "delete"); got != -1 {
		t.Errorf("an operation never recorded is exported: %v", got)
	}
	if got := delta("starling_received_bytes_total"); got != 1000 {
		t.Errorf("received bytes moved by %v", got)
	}
	if got := delta("starling_sent_bytes_total"); got != 250 {
		t.Errorf("sent bytes moved by %v", got)
	}

	// The local get histogram: 1 observation before, 4 after (1+2+1).
	h := find(after, "starling_request_duration_seconds", "op", "get", "route", "local").GetHistogram()
	if h.GetSampleCount() != 4 {
		t.Errorf("get/local histogram count = %d, want 4", h.GetSampleCount())
	}
	if got, want := h.GetSampleSum(), (1+20+20+3000)*1e-6; abs(got-want) > 1e-9 {
		t.Errorf("get/local histogram sum = %v, want %v", got, want)
	}
	cum := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	for le, want := range map[float64]uint64{1e-5: 1, 2.5e-5: 3, 0.0025: 3, 0.005: 4, 5: 4} {
		if cum[le] != want {
			t.Errorf("get/local bucket le=%v = %d, want %d", le, cum[le], want)
		}
	}
	hs := find(after, "starling_request_duration_seconds", "op", "set", "route", "forwarded").GetHistogram()
	for _, b := range hs.GetBucket() {
		if b.GetUpperBound() <= 5 && b.GetCumulativeCount() != 0 {
			t.Errorf("set/forwarded bucket le=%v = %d: a 10 s request belongs only in +Inf", b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
	if hs.GetSampleCount() != 1 {
		t.Errorf("set/forwarded histogram count = %d, want 1", hs.GetSampleCount())
	}

	// Figures from the Source.
	for name, want := range map[string]float64{
		"starling_store_entries":                   1200,
		"starling_store_tombstones":                7,
		"starling_store_used_bytes":                3 << 20,
		"starling_store_max_bytes":                 64 << 20,
		"starling_store_hits_total":                900,
		"starling_store_misses_total":              100,
		"starling_store_evictions_total":           11,
		"starling_store_expirations_total":         13,
		"starling_ring_members":                    3,
		"starling_ring_vnodes":                     float64(src.status.Ring.Shares[0].VNodes),
		"starling_ring_share_ratio":                src.status.Ring.Shares[0].Fraction,
		"starling_rebalance_moved_keys_total":      42,
		"starling_rebalance_moved_bytes_total":     4096,
		"starling_rebalance_last_duration_seconds": 1.5,
		"starling_rebalance_running":               1,
		"starling_replication_copies_total":        77,
		"starling_replication_pending_keys":        5,
		"starling_handoff_fallback_reads_total":    3,
		"starling_gossip_health_score":             2,
		"starling_ready":                           1,
		"starling_status_error":                    0,
	} {
		if got := value(after, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(after, "starling_members", "state", "alive"); got != 3 {
		t.Errorf("alive members = %v", got)
	}
	if got := value(after, "starling_members", "state", "dead"); got != 0 {
		t.Errorf("dead members = %v, want an explicit 0", got)
	}
	ringVer := "0x" + strings.TrimLeft(strings.ToLower(hex64(src.status.Ring.Version)), "0")
	if got := value(after, "starling_ring_info", "version", ringVer); got != 1 {
		t.Errorf("starling_ring_info{version=%q} = %v", ringVer, got)
	}
	if got := value(after, "starling_build_info", "node", "n1", "version", "0.1.0"); got != 1 {
		t.Errorf("starling_build_info = %v", got)
	}
	// The standard collectors sit in the same private registry.
	if value(after, "go_goroutines") <= 0 {
		t.Error("go_goroutines missing")
	}
	if _, ok := after["process_start_time_seconds"]; !ok {
		t.Error("process collector missing")
	}

	src.setReady(errors.New("joining"))
	if got := value(scrape(t, base), "starling_ready"); got != 0 {
		t.Errorf("starling_ready = %v after readiness was lost", got)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func hex64(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}

// TestMetricsLint runs Prometheus's own linter over starling's series:
// names, units and suffixes follow its conventions.
func TestMetricsLint(t *testing.T) {
	rec := metrics.NewRecorder()
	rec.Observe(transport.OpGet, metrics.OK, false, time.Millisecond)
	srv, err := NewServer(DefaultConfig(), newFakeCluster(t, "n1", "n2"), rec)
	if err != nil {
		t.Fatal(err)
	}
	fams, err := srv.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []*dto.MetricFamily
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "starling_") {
			ours = append(ours, f)
		}
	}
	if len(ours) < 25 {
		t.Fatalf("only %d starling_ families", len(ours))
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsStatusError: when the node cannot report its status, the
// scrape still succeeds with the request metrics and flags the failure.
func TestMetricsStatusError(t *testing.T) {
	src := newFakeCluster(t, "n1")
	src.statusErr = errors.New("stopping")
	rec := metrics.NewRecorder()
	rec.Observe(transport.OpGet, metrics.OK, false, time.Millisecond)
	_, base := startServer(t, DefaultConfig(), src, rec)
	fams := scrape(t, base)
	if got := value(fams, "starling_status_error"); got != 1 {
		t.Errorf("starling_status_error = %v, want 1", got)
	}
	if got := value(fams, "starling_requests_total", "op", "get", "result", "ok", "route", "local"); got != 1 {
		t.Errorf("request metrics lost when status failed: %v", got)
	}
	if _, ok := fams["starling_store_entries"]; ok {
		t.Error("store metrics exported without a status")
	}
}

// TestMetricsPerServer: every server has its own registry, so two nodes in
// one process export their own figures without colliding.
func TestMetricsPerServer(t *testing.T) {
	r1, r2 := metrics.NewRecorder(), metrics.NewRecorder()
	r1.Observe(transport.OpGet, metrics.OK, false, time.Millisecond)
	r2.Observe(transport.OpGet, metrics.OK, false, time.Millisecond)
	r2.Observe(transport.OpGet, metrics.OK, false, time.Millisecond)
	_, b1 := startServer(t, DefaultConfig(), newFakeCluster(t, "n1"), r1)
	_, b2 := startServer(t, DefaultConfig(), newFakeCluster(t, "n2"), r2)
	lbl := []string{"op", "get", "result", "ok", "route", "local"}
	if got := value(scrape(t, b1), "starling_requests_total", lbl...); got != 1 {
		t.Errorf("server 1 = %v, want 1", got)
	}
	if got := value(scrape(t, b2), "starling_requests_total", lbl...); got != 2 {
		t.Errorf("server 2 = %v, want 2", got)
	}
	if err := prometheus.NewRegistry().Register(newCollector(newFakeCluster(t, "n3"), nil, time.Second, nil)); err != nil {
		t.Errorf("collector does not register cleanly: %v", err)
	}
}
