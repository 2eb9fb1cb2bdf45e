package resp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/starlingcache/starling/transport"
)

// fakeClock is a settable clock shared by the server and the fake backend,
// so TTL tests advance time instead of sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeEntry struct {
	val []byte
	exp time.Time // zero: no expiry
}

// fakeBackend is an in-memory, single-member Backend with the semantics
// the node promises for each operation.
type fakeBackend struct {
	now func() time.Time

	mu      sync.Mutex
	data    map[string]*fakeEntry
	batches []int // len(reqs) of every Do call
	// peers are extra Broadcast replies, standing in for other members.
	peers []*transport.Response
	// fail, if set, may replace the response to a request.
	fail func(*transport.Request) *transport.Response
}

func newFakeBackend(now func() time.Time) *fakeBackend {
	return &fakeBackend{now: now, data: make(map[string]*fakeEntry)}
}

func (b *fakeBackend) Do(_ context.Context, reqs []*transport.Request, resps []*transport.Response) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches = append(b.batches, len(reqs))
	for i, r := range reqs {
		if b.fail != nil {
			if resp := b.fail(r); resp != nil {
				resps[i] = resp
				continue
			}
		}
		resps[i] = b.serveLocked(r)
	}
}

func (b *fakeBackend) Broadcast(ctx context.Context, req *transport.Request) []*transport.Response {
	resps := make([]*transport.Response, 1)
	b.Do(ctx, []*transport.Request{req}, resps)
	b.mu.Lock()
	defer b.mu.Unlock()
	return append(resps, b.peers...)
}

// Scan walks the live keys in sorted order, the cursor being how many
// come before the next step's first.
func (b *fakeBackend) Scan(_ context.Context, cursor uint64, match string, count int) ([]string, uint64, error) {
	b.mu.Lock()
	var all []string
	for k := range b.data {
		if _, ok := b.liveLocked(k); ok {
			all = append(all, k)
		}
	}
	b.mu.Unlock()
	slices.Sort(all)
	if cursor >= uint64(len(all)) {
		return nil, 0, nil
	}
	end := min(int(cursor)+count, len(all))
	var keys []string
	for _, k := range all[cursor:end] {
		if ok, _ := path.Match(match, k); ok {
			keys = append(keys, k)
		}
	}
	if end == len(all) {
		return keys, 0, nil
	}
	return keys, uint64(end), nil
}

func (b *fakeBackend) Members() []transport.Member {
	return []transport.Member{{Name: "fake", DataAddr: "127.0.0.1:1", GossipAddr: "127.0.0.1:2", State: "alive"}}
}

func (b *fakeBackend) Stats() transport.Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return transport.Stats{Entries: int64(len(b.data)), Bytes: 1536, MaxMemory: 1 << 20, Hits: 7, Misses: 3, Evictions: 2, Expirations: 1}
}

func (b *fakeBackend) batchSizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.batches...)
}

func (b *fakeBackend) liveLocked(key string) (*fakeEntry, bool) {
	e, ok := b.data[key]
	if !ok {
		return nil, false
	}
	if !e.exp.IsZero() && !b.now().Before(e.exp) {
		delete(b.data, key)
		return nil, false
	}
	return e, true
}

func (b *fakeBackend) remainingLocked(e *fakeEntry) int64 {
	if e.exp.IsZero() {
		return 0
	}
	left := e.exp.Sub(b.now())
	return int64((left + time.Millisecond - 1) / time.Millisecond)
}

func (b *fakeBackend) expiry(ttl int64) time.Time {
	return b.now().Add(time.Duration(ttl) * time.Millisecond)
}

var notFound = transport.Response{Code: transport.CodeNotFound}

func (b *fakeBackend) serveLocked(r *transport.Request) *transport.Response {
	e, ok := b.liveLocked(r.Key)
	switch r.Op {
	case transport.OpGet:
		if !ok {
			return &notFound
		}
		return &transport.Response{Value: append([]byte(nil), e.val...), TTL: b.remainingLocked(e)}
	case transport.OpSet:
		resp := &transport.Response{}
		if r.Flags&transport.FlagGetOld != 0 && ok {
			resp.HasOld, resp.Value = true, append([]byte(nil), e.val...)
		}
		if r.Flags&transport.FlagIfAbsent != 0 && ok || r.Flags&transport.FlagIfPresent != 0 && !ok {
			return resp
		}
		ne := &fakeEntry{val: append([]byte(nil), r.Value...)}
		switch {
		case r.TTL > 0:
			ne.exp = b.expiry(r.TTL)
		case r.Flags&transport.FlagKeepTTL != 0 && ok:
			ne.exp = e.exp
		}
		b.data[r.Key] = ne
		resp.Int = 1
		return resp
	case transport.OpDelete:
		if !ok {
			return &notFound
		}
		delete(b.data, r.Key)
		return &transport.Response{}
	case transport.OpGetDel:
		if !ok {
			return &notFound
		}
		delete(b.data, r.Key)
		return &transport.Response{Value: e.val}
	case transport.OpExpire:
		if !ok {
			return &transport.Response{}
		}
		if r.Flags&transport.FlagPersist != 0 {
			e.exp = time.Time{}
		} else {
			e.exp = b.expiry(r.TTL)
		}
		return &transport.Response{Int: 1}
	case transport.OpTTL:
		if !ok {
			return &notFound
		}
		return &transport.Response{TTL: b.remainingLocked(e)}
	case transport.OpIncr:
		var n int64
		if ok {
			v, err := strconv.ParseInt(string(e.val), 10, 64)
			if err != nil {
				return &transport.Response{Code: transport.CodeNotInteger, Err: transport.ErrNotInteger.Error()}
			}
			n = v
		}
		if r.Delta > 0 && n > 1<<63-1-r.Delta || r.Delta < 0 && n < -1<<63-r.Delta {
			return &transport.Response{Code: transport.CodeOverflow, Err: transport.ErrOverflow.Error()}
		}
		n += r.Delta
		if !ok {
			e = &fakeEntry{}
			b.data[r.Key] = e
		}
		e.val = strconv.AppendInt(e.val[:0], n, 10)
		return &transport.Response{Int: n}
	case transport.OpAppend:
		if !ok {
			e = &fakeEntry{}
			b.data[r.Key] = e
		}
		e.val = append(e.val, r.Value...)
		return &transport.Response{Int: int64(len(e.val))}
	case transport.OpExists:
		if ok {
			return &transport.Response{Int: 1}
		}
		return &transport.Response{}
	case transport.OpGetEx:
		if !ok {
			return &notFound
		}
		switch {
		case r.Flags&transport.FlagPersist != 0:
			e.exp = time.Time{}
		case r.TTL > 0:
			e.exp = b.expiry(r.TTL)
		}
		return &transport.Response{Value: append([]byte(nil), e.val...), TTL: b.remainingLocked(e)}
	case transport.OpDBSize:
		n := 0
		for k := range b.data {
			if _, live := b.liveLocked(k); live {
				n++
			}
		}
		return &transport.Response{Int: int64(n)}
	case transport.OpFlushAll:
		clear(b.data)
		return &transport.Response{}
	}
	return &transport.Response{Code: transport.CodeUnknownOp, Err: "unknown operation " + r.Op.String()}
}

// testServer is a running server on a loopback port with a fake backend.
type testServer struct {
	srv   *Server
	be    *fakeBackend
	clock *fakeClock
	addr  string
}

// startServer starts a server on 127.0.0.1:0 and shuts it down when the
// test ends.
func startServer(t testing.TB, mutate func(*Config)) *testServer {
	t.Helper()
	clock := newFakeClock()
	be := newFakeBackend(clock.Now)
	cfg := DefaultConfig()
	cfg.NodeName = "test-node"
	cfg.Now = clock.Now
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := NewServer(cfg, be)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return &testServer{srv: srv, be: be, clock: clock, addr: ln.Addr().String()}
}

// client returns a go-redis client speaking protocol proto (2 or 3).
func (ts *testServer) client(t testing.TB, proto int, mutate func(*redis.Options)) *redis.Client {
	t.Helper()
	opt := &redis.Options{Addr: ts.addr, Protocol: proto, MaxRetries: -1, PoolSize: 4}
	if mutate != nil {
		mutate(opt)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// rawConn is a plain TCP connection for byte-level protocol tests.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func (ts *testServer) raw(t testing.TB) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.nc, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// line reads one reply line without its CRLF.
func (rc *rawConn) line() string {
	rc.t.Helper()
	s, err := rc.br.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("read reply line (got %q so far): %v", s, err)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// expect reads len(want) reply lines and compares them.
func (rc *rawConn) expect(want ...string) {
	rc.t.Helper()
	for i, w := range want {
		if got := rc.line(); got != w {
			rc.t.Fatalf("reply line %d = %q, want %q", i, got, w)
		}
	}
}

// expectClosed waits for the server to close the connection.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	rest, err := io.ReadAll(rc.br)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			rc.t.Fatalf("connection not closed by the server (read %q)", rest)
		}
	}
	if len(rest) > 0 {
		rc.t.Fatalf("unexpected bytes before close: %q", rest)
	}
}

// cmd encodes a command as a RESP multibulk request.
func cmd(args ...string) string {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	return b.String()
}
