package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/starlingcache/starling/node/metrics"
	"github.com/starlingcache/starling/ring"
)

// fakeSource is a Source whose answers the test sets. ClusterStatus makes
// every member's request counter grow by a fixed step per call, as a busy
// cluster's would, so the page has rates to show.
type fakeSource struct {
	mu         sync.Mutex
	ready      error
	status     Status
	statusErr  error
	cluster    []NodeStatus
	clusterErr error
	step       int64 // added to every member's Requests per ClusterStatus call
	calls      int
}

func (f *fakeSource) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

func (f *fakeSource) setReady(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready = err
}

func (f *fakeSource) Status(ctx context.Context) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusErr != nil {
		return Status{}, f.statusErr
	}
	// A copy the caller may read while the test changes the fake.
	st := f.status
	st.Members = slices.Clone(st.Members)
	st.Ring.Shares = slices.Clone(st.Ring.Shares)
	return st, ctx.Err()
}

func (f *fakeSource) ClusterStatus(ctx context.Context) ([]NodeStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clusterErr != nil {
		return nil, f.clusterErr
	}
	f.calls++
	out := make([]NodeStatus, len(f.cluster))
	for i, n := range f.cluster {
		if n.Error == "" {
			n.Requests += f.step * int64(f.calls)
		}
		out[i] = n
	}
	return out, ctx.Err()
}

// newFakeCluster returns a fake Source for a cluster of the named members,
// seen from the first, with a real ring's shares.
func newFakeCluster(t testing.TB, names ...string) *fakeSource {
	t.Helper()
	cfg := ring.DefaultConfig()
	r, err := ring.New(cfg, names)
	if err != nil {
		t.Fatal(err)
	}
	shares := r.Shares()
	st := Status{
		Name:       names[0],
		Version:    "0.1.0",
		StartedAt:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		DataAddr:   "127.0.0.1:7001",
		RESPAddr:   "127.0.0.1:6379",
		GossipAddr: "127.0.0.1:7946",
		HTTPAddr:   "127.0.0.1:8001",
		Ring:       Ring{Version: r.Version()},
		Store: Store{
			Entries: 1200, Tombstones: 7, Bytes: 3 << 20, MaxMemory: 64 << 20,
			Hits: 900, Misses: 100, Evictions: 11, Expirations: 13,
		},
		Rebalance: Rebalance{
			KeysMoved: 42, BytesMoved: 4096, Replicated: 77, FallbackHits: 3,
			UnderReplicated: 5, Running: 1, LastHandoff: 1500 * time.Millisecond,
		},
		GossipHealth: 2,
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	var cluster []NodeStatus
	for i, n := range sorted {
		st.Members = append(st.Members, Member{
			Name:       n,
			State:      "alive",
			DataAddr:   fmt.Sprintf("127.0.0.1:%d", 7001+i),
			RESPAddr:   fmt.Sprintf("127.0.0.1:%d", 6379+i),
			HTTPAddr:   fmt.Sprintf("127.0.0.1:%d", 8001+i),
			GossipAddr: fmt.Sprintf("127.0.0.1:%d", 7946+i),
		})
		st.Ring.Shares = append(st.Ring.Shares, Share{Name: n, Fraction: shares[n], VNodes: r.VNodes()})
		cluster = append(cluster, NodeStatus{
			Name: n, Addr: fmt.Sprintf("127.0.0.1:%d", 7001+i),
			Requests: int64(1000 * (i + 1)), Entries: int64(400 * (i + 1)),
			Bytes: int64(i+1) * 5 << 20, MaxMemory: 64 << 20, Hits: 10, Misses: 2,
		})
	}
	return &fakeSource{status: st, cluster: cluster, step: 250}
}

// startServer serves an admin server on an ephemeral loopback port until
// the test ends, and returns its base URL.
func startServer(t testing.TB, cfg Config, src Source, rec *metrics.Recorder) (*Server, string) {
	t.Helper()
	srv, err := NewServer(cfg, src, rec)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, "http://" + ln.Addr().String()
}

// get fetches url with a bounded client and returns the response and its
// body.
func get(t testing.TB, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}
