package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/starlingcache/starling/node/metrics"
	"github.com/starlingcache/starling/transport"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	ok.Addr = "127.0.0.1:8080"
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid Addr refused: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"addr without port": func(c *Config) { c.Addr = "localhost" },
		"refresh too fast":  func(c *Config) { c.RefreshInterval = time.Millisecond },
		"no source timeout": func(c *Config) { c.SourceTimeout = 0 },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig", name, err)
		}
		if _, err := NewServer(c, &fakeSource{}, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewServer error = %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := NewServer(DefaultConfig(), nil, nil); err == nil {
		t.Error("NewServer accepted a nil Source")
	}
}

func TestHealthz(t *testing.T) {
	src := newFakeCluster(t, "n1", "n2", "n3")
	src.setReady(errors.New("still joining")) // liveness ignores readiness
	_, base := startServer(t, DefaultConfig(), src, nil)
	resp, body := get(t, base+"/healthz")
	if resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", resp.StatusCode, body)
	}
}

// TestReadyzFlips follows the Source's readiness both ways.
func TestReadyzFlips(t *testing.T) {
	src := newFakeCluster(t, "n1", "n2", "n3")
	src.setReady(errors.New("hand-off pending"))
	_, base := startServer(t, DefaultConfig(), src, nil)

	resp, body := get(t, base+"/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "hand-off pending") {
		t.Errorf("not ready: /readyz = %d %q, want 503 with the reason", resp.StatusCode, body)
	}
	src.setReady(nil)
	resp, body = get(t, base+"/readyz")
	if resp.StatusCode != http.StatusOK || body != "ready\n" {
		t.Errorf("ready: /readyz = %d %q, want 200", resp.StatusCode, body)
	}
	src.setReady(errors.New("ring not built"))
	resp, body = get(t, base+"/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "ring not built") {
		t.Errorf("not ready again: /readyz = %d %q", resp.StatusCode, body)
	}
}

func TestPprof(t *testing.T) {
	src := newFakeCluster(t, "n1")
	t.Run("off by default", func(t *testing.T) {
		_, base := startServer(t, DefaultConfig(), src, nil)
		for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine"} {
			if resp, _ := get(t, base+p); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s = %d with pprof disabled, want 404", p, resp.StatusCode)
			}
		}
	})
	t.Run("enabled", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.EnablePprof = true
		_, base := startServer(t, cfg, src, nil)
		resp, body := get(t, base+"/debug/pprof/")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "goroutine") {
			t.Errorf("/debug/pprof/ = %d, want 200 with the profile index", resp.StatusCode)
		}
		resp, body = get(t, base+"/debug/pprof/goroutine?debug=1")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "goroutine profile") {
			t.Errorf("/debug/pprof/goroutine = %d %.80q", resp.StatusCode, body)
		}
	})
}

// TestAPIStatus checks the JSON the page polls, field names included: the
// page's script depends on them.
func TestAPIStatus(t *testing.T) {
	src := newFakeCluster(t, "n1", "n2", "n3")
	src.clusterErr = nil
	rec := metrics.NewRecorder()
	rec.Observe(transport.OpGet, metrics.OK, false, 40*time.Microsecond)
	rec.Observe(transport.OpGet, metrics.NotFound, true, 400*time.Microsecond)
	rec.Observe(transport.OpSet, metrics.Error, false, 2*time.Millisecond)
	rec.AddBytes(300, 700)
	_, base := startServer(t, DefaultConfig(), src, rec)

	resp, body := get(t, base+"/api/status")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/status = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// The shape, as the page's script reads it.
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "refresh_ms", "ready", "node", "requests", "bytes_in", "bytes_out", "cluster"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("missing top-level key %q in %s", k, body)
		}
	}
	node := raw["node"].(map[string]any)
	for _, k := range []string{"name", "version", "data_addr", "gossip_addr", "members", "ring", "store", "rebalance", "gossip_health"} {
		if _, ok := node[k]; !ok {
			t.Errorf("missing node key %q", k)
		}
	}
	if v, ok := node["ring"].(map[string]any)["version"].(string); !ok || v == "" {
		t.Errorf("ring version %v should be a decimal string (JavaScript numbers lose 64-bit values)", node["ring"])
	}
	m0 := node["members"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "state", "data_addr", "resp_addr", "http_addr", "gossip_addr"} {
		if _, ok := m0[k]; !ok {
			t.Errorf("missing member key %q", k)
		}
	}

	// The values.
	var ov Overview
	if err := json.Unmarshal([]byte(body), &ov); err != nil {
		t.Fatal(err)
	}
	want := src.status
	if ov.Node.Name != "n1" || len(ov.Node.Members) != 3 || ov.Node.Ring.Version != want.Ring.Version ||
		len(ov.Node.Ring.Shares) != 3 || ov.Node.Store != want.Store || ov.Node.Rebalance != want.Rebalance {
		t.Errorf("node = %+v\nwant %+v", ov.Node, want)
	}
	if !ov.Ready || ov.NotReady != "" || ov.RefreshMillis != 1000 || ov.ClusterError != "" {
		t.Errorf("ready=%v %q refresh=%d cluster_error=%q", ov.Ready, ov.NotReady, ov.RefreshMillis, ov.ClusterError)
	}
	if len(ov.Cluster) != 3 || ov.Cluster[0].Requests != 1000+250 {
		t.Errorf("cluster = %+v", ov.Cluster)
	}
	if ov.BytesIn != 300 || ov.BytesOut != 700 {
		t.Errorf("bytes = %d/%d", ov.BytesIn, ov.BytesOut)
	}
	if len(ov.Requests) != 2 {
		t.Fatalf("requests = %+v, want get and set", ov.Requests)
	}
	g, s := ov.Requests[0], ov.Requests[1]
	if g.Op != "get" || g.Requests != 2 || g.Forwarded != 1 || g.NotFound != 1 || g.Errors != 0 ||
		g.MeanMicros != 220 || g.P99Micros != 500 {
		t.Errorf("get = %+v", g)
	}
	if s.Op != "set" || s.Requests != 1 || s.Errors != 1 {
		t.Errorf("set = %+v", s)
	}
}

// TestAPIStatusDegraded: a Source that cannot answer in full still gives
// the page something to show, and says why.
func TestAPIStatusDegraded(t *testing.T) {
	src := newFakeCluster(t, "n1", "n2")
	src.clusterErr = errors.New("peers unreachable")
	src.ready = errors.New("joining")
	_, base := startServer(t, DefaultConfig(), src, nil)
	resp, body := get(t, base+"/api/status")
	var ov Overview
	if err := json.Unmarshal([]byte(body), &ov); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/api/status = %d %v", resp.StatusCode, err)
	}
	if ov.Ready || ov.NotReady != "joining" || ov.ClusterError != "peers unreachable" || ov.Cluster == nil || ov.Requests == nil {
		t.Errorf("overview = %+v", ov)
	}

	src.mu.Lock()
	src.statusErr = errors.New("node stopping")
	src.mu.Unlock()
	resp, body = get(t, base+"/api/status")
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "node stopping") {
		t.Errorf("status error: /api/status = %d %q, want 500 with the error", resp.StatusCode, body)
	}
}

// TestRoutes checks the page and its files, and that nothing else is
// served.
func TestRoutes(t *testing.T) {
	src := newFakeCluster(t, "n1")
	srv, base := startServer(t, DefaultConfig(), src, nil)

	resp, body := get(t, base+"/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<svg id="ring"`) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("/ = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("page CSP = %q", csp)
	}
	for path, ctype := range map[string]string{
		"/static/app.js":      "text/javascript",
		"/static/style.css":   "text/css",
		"/static/favicon.svg": "image/svg+xml",
	} {
		resp, body := get(t, base+path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || body == "" {
			t.Errorf("%s = %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, path := range []string{"/nope", "/static/", "/static/missing.js", "/index.html/x"} {
		if resp, _ := get(t, base+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s = %d, want 404", path, resp.StatusCode)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/healthz", nil)
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", w.Code)
	}
}

// TestServeShutdown: Serve ends with ErrServerClosed, Shutdown can be
// repeated, and a server that was shut down serves no more.
func TestServeShutdown(t *testing.T) {
	srv, err := NewServer(DefaultConfig(), newFakeCluster(t, "n1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if resp, _ := get(t, "http://"+ln.Addr().String()+"/healthz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown returned %v", err)
	}
	if _, err := ln2.Accept(); err == nil {
		t.Error("Serve after Shutdown left its listener open")
	}
}

func TestNodeStatusFromStats(t *testing.T) {
	ns := NodeStatusFromStats("n2", "127.0.0.1:7002", &transport.Stats{
		Entries: 5, Bytes: 600, MaxMemory: 1 << 20, Hits: 7, Misses: 8, Local: 30, Forwarded: 12,
	})
	want := NodeStatus{Name: "n2", Addr: "127.0.0.1:7002", Requests: 42, Entries: 5, Bytes: 600, MaxMemory: 1 << 20, Hits: 7, Misses: 8}
	if ns != want {
		t.Errorf("NodeStatusFromStats = %+v, want %+v", ns, want)
	}
	if ns := NodeStatusFromStats("n3", "a", nil); ns.Error == "" {
		t.Error("nil stats gave no error")
	}
}
