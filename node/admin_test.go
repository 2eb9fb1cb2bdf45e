package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

// TestHTTPMetricsAfterWorkload runs a known workload through one node of a
// three-node cluster and checks that its /metrics moved by exactly that:
// requests by operation, result and route (local or forwarded), the
// store's entries, the ring's membership; and that /readyz answers 200
// once the node has joined, 503 while it catches up after a pause.
func TestHTTPMetricsAfterWorkload(t *testing.T) {
	nodes := nodetest.StartCluster(t, 3, func(c *node.Config) {
		c.Replicas = 1
		c.HTTP.Addr = "127.0.0.1:0"
	})
	nd := nodes[0]
	base := "http://" + nd.HTTPAddr()
	ctx := context.Background()
	waitStatus(t, base+"/readyz", http.StatusOK)
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}

	before := scrapeMetrics(t, base)
	const sets, misses = 30, 7
	local := 0
	for i := range sets {
		key := fmt.Sprintf("metrics-key-%d", i)
		if nd.Ring().Owner(key) == nd.Name() {
			local++
		}
		if resp := nd.Handle(ctx, &transport.Request{Op: transport.OpSet, Key: key, Value: []byte("v")}); resp.Code != transport.CodeOK {
			t.Fatalf("set %s: %+v", key, resp)
		}
		if resp := nd.Handle(ctx, &transport.Request{Op: transport.OpGet, Key: key}); resp.Code != transport.CodeOK {
			t.Fatalf("get %s: %+v", key, resp)
		}
	}
	for i := range misses {
		nd.Handle(ctx, &transport.Request{Op: transport.OpGet, Key: fmt.Sprintf("absent-%d", i)})
	}
	if local == 0 || local == sets {
		t.Fatalf("%d of %d keys local: the test needs both routes", local, sets)
	}
	after := scrapeMetrics(t, base)

	delta := func(name string, labels ...string) float64 {
		return metricValue(after, name, labels...) - metricValue(before, name, labels...)
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"starling_requests_total", []string{"op", "set", "result", "ok", "route", "local"}, float64(local)},
		{"starling_requests_total", []string{"op", "set", "result", "ok", "route", "forwarded"}, float64(sets - local)},
		{"starling_requests_total", []string{"op", "get", "result", "ok", "route", "local"}, float64(local)},
		{"starling_requests_total", []string{"op", "get", "result", "ok", "route", "forwarded"}, float64(sets - local)},
	}
	for _, c := range checks {
		if got := delta(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Misses go wherever their keys live; count them over both routes.
	gotMisses := delta("starling_requests_total", "op", "get", "result", "not_found", "route", "local") +
		delta("starling_requests_total", "op", "get", "result", "not_found", "route", "forwarded")
	if gotMisses != misses {
		t.Errorf("GET misses moved by %v, want %d", gotMisses, misses)
	}
	if got, want := metricValue(after, "starling_store_entries"), float64(nd.Store().Stats().Entries); got != want {
		t.Errorf("starling_store_entries = %v, want %v", got, want)
	}
	if got := metricValue(after, "starling_members", "state", "alive"); got != 3 {
		t.Errorf("starling_members{state=alive} = %v, want 3", got)
	}
	if got := metricValue(after, "starling_ring_members"); got != 3 {
		t.Errorf("starling_ring_members = %v, want 3", got)
	}

	node.Pause(nd, time.Minute)
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "pause") {
		t.Errorf("/readyz after a pause = %d %q, want 503 naming the pause", code, body)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	nodetest.WaitFor(t, 10*time.Second, func() bool {
		code, _ := httpGet(t, url)
		return code == want
	}, "status %d from %s", want, url)
}

func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue returns the value of the counter or gauge of family name
// whose labels include labels (name, value pairs); 0 if there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
		return m.GetUntyped().GetValue()
	}
	return 0
}
