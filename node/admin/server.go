// Package admin serves a node's operator endpoints over HTTP: Prometheus
// metrics, liveness and readiness probes, a live status page of the
// cluster, and (when enabled) Go's profiler.
//
// The server knows nothing of the node's internals: it reads everything
// through the Source interface, which the node implements, and a
// metrics.Recorder, which the node updates on its request path. Each
// Server has its own Prometheus registry, so many nodes can run in one
// process.
package admin

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/starlingcache/starling/node/metrics"
)

//go:embed static
var staticFiles embed.FS

// Timeouts of the HTTP server. There is no write timeout: a CPU profile
// streams for as long as the operator asked (30 s by default).
const (
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 2 * time.Minute
	// maxScrapes bounds concurrent /metrics requests: each one calls
	// Source.Status, and a stampede of scrapers must not pile those up.
	maxScrapes = 4
)

// Server is a node's admin HTTP server. Create it with NewServer, hand it
// listeners with Serve, and stop it with Shutdown.
type Server struct {
	cfg     Config
	src     Source
	rec     *metrics.Recorder
	log     *slog.Logger
	reg     *prometheus.Registry
	handler http.Handler
	http    *http.Server

	mu     sync.Mutex
	closed bool
}

// NewServer validates cfg and returns a server reporting on src and rec.
// rec may be nil: request metrics are then left out. It does not listen:
// call Serve.
func NewServer(cfg Config, src Source, rec *metrics.Recorder) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("admin: nil Source")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, src: src, rec: rec, log: log, reg: prometheus.NewRegistry()}
	if err := s.reg.Register(newCollector(src, rec, cfg.SourceTimeout, log)); err != nil {
		return nil, fmt.Errorf("admin: register collector: %w", err)
	}
	if err := s.reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("admin: register Go collector: %w", err)
	}
	if err := s.reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("admin: register process collector: %w", err)
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("admin: embedded files: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
		Registry:            s.reg,
	}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/status", s.status)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	if cfg.EnablePprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.handler = mux
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler returns the server's routes, for tests and for programs that
// mount them in their own HTTP server.
func (s *Server) Handler() http.Handler { return s.handler }

// Registerer returns the server's private Prometheus registry, so the
// program embedding a node can export its own metrics next to starling's.
func (s *Server) Registerer() prometheus.Registerer { return s.reg }

// Serve accepts HTTP connections on l until Shutdown. It always closes l,
// and returns ErrServerClosed after Shutdown or the listener's error
// otherwise.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		l.Close()
		return ErrServerClosed
	}
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting connections and waits until ctx ends for
// requests in flight (a CPU profile may be one) to finish. It is safe to
// call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err := s.http.Shutdown(ctx); err != nil {
		// Cut whatever is still running rather than leaving it behind.
		_ = s.http.Close()
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// healthz answers as long as the process serves HTTP at all: it is the
// liveness probe, and says nothing of the cluster.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	textHeaders(w)
	io.WriteString(w, "ok\n")
}

// readyz is the readiness probe: 200 once the node should receive
// traffic, 503 with the reason until then.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	textHeaders(w)
	if err := s.src.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	io.WriteString(w, "ready\n")
}

// status serves the Overview the status page polls. This node's Status and
// the members' figures are fetched in parallel: the latter waits on peers.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.SourceTimeout)
	defer cancel()

	var (
		cluster    []NodeStatus
		clusterErr error
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		cluster, clusterErr = s.src.ClusterStatus(ctx)
	}()
	st, err := s.src.Status(ctx)
	<-done
	if err != nil {
		s.log.Warn("admin: node status unavailable", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}

	snap := s.rec.Snapshot()
	ov := Overview{
		Time:          time.Now(),
		RefreshMillis: s.cfg.RefreshInterval.Milliseconds(),
		Ready:         true,
		Node:          st,
		Requests:      summarize(snap),
		BytesIn:       snap.BytesIn,
		BytesOut:      snap.BytesOut,
		Cluster:       cluster,
	}
	if err := s.src.Ready(); err != nil {
		ov.Ready, ov.NotReady = false, err.Error()
	}
	if clusterErr != nil {
		ov.ClusterError = clusterErr.Error()
	}
	if ov.Node.Members == nil {
		ov.Node.Members = []Member{}
	}
	if ov.Node.Ring.Shares == nil {
		ov.Node.Ring.Shares = []Share{}
	}
	if ov.Cluster == nil {
		ov.Cluster = []NodeStatus{}
	}
	writeJSON(w, http.StatusOK, ov)
}

// summarize condenses a Recorder snapshot into one line per operation.
func summarize(snap metrics.Snapshot) []OpSummary {
	out := make([]OpSummary, 0, len(snap.Ops))
	for i := range snap.Ops {
		o := &snap.Ops[i]
		t := o.Total()
		sum := OpSummary{
			Op:        o.Name(),
			Requests:  t.Requests(),
			Forwarded: o.Forwarded.Requests(),
			NotFound:  t.Results[metrics.NotFound],
			Errors:    t.Results[metrics.Error],
			P99Micros: float64(t.Quantile(0.99)) / float64(time.Microsecond),
		}
		if n := t.Observations(); n > 0 {
			sum.MeanMicros = float64(t.Sum) / float64(n) / float64(time.Microsecond)
		}
		out = append(out, sum)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func textHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
}

// pageHeaders forbids the page anything from outside this server, which
// also proves it needs no CDN.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

func staticHandler(static fs.FS) http.Handler {
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		pageHeaders(w)
		files.ServeHTTP(w, r)
	})
}

// promLogger hands promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
