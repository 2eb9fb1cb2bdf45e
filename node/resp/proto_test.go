package resp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/starlingcache/starling/transport"
)

// memConn is a net.Conn that serves fixed input, one chunk per Read, then
// io.EOF, and records what is written. It makes batching deterministic:
// TCP may split a write, a memConn does not.
type memConn struct {
	chunks [][]byte
	out    bytes.Buffer
}

func (m *memConn) Read(p []byte) (int, error) {
	if len(m.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, m.chunks[0])
	if n == len(m.chunks[0]) {
		m.chunks = m.chunks[1:]
	} else {
		m.chunks[0] = m.chunks[0][n:]
	}
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error)        { return m.out.Write(p) }
func (m *memConn) Close() error                       { return nil }
func (m *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6379} }
func (m *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }

// serveMem runs one connection over input chunks and returns its output.
func serveMem(t testing.TB, s *Server, chunks ...string) string {
	t.Helper()
	mc := &memConn{}
	for _, c := range chunks {
		mc.chunks = append(mc.chunks, []byte(c))
	}
	newConn(s, mc, mc).serve()
	return mc.out.String()
}

func newMemServer(t testing.TB, mutate func(*Config)) (*Server, *fakeBackend) {
	t.Helper()
	clock := newFakeClock()
	be := newFakeBackend(clock.Now)
	cfg := DefaultConfig()
	cfg.Now = clock.Now
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := NewServer(cfg, be)
	if err != nil {
		t.Fatal(err)
	}
	return s, be
}

// TestPipelineOneBatch: 16 pipelined commands that arrive together become
// one Backend.Do call (a multi-key command contributing one request per
// key) and 16 replies in order.
func TestPipelineOneBatch(t *testing.T) {
	s, be := newMemServer(t, nil)
	var in, want strings.Builder
	for i := range 8 {
		in.WriteString(cmd("SET", fmt.Sprint("k", i), fmt.Sprint("v", i)))
		want.WriteString("+OK\r\n")
	}
	for i := range 6 {
		in.WriteString(cmd("GET", fmt.Sprint("k", 7-i)))
		want.WriteString(fmt.Sprintf("$2\r\nv%d\r\n", 7-i))
	}
	in.WriteString(cmd("MGET", "k1", "nope", "k2"))
	want.WriteString("*3\r\n$2\r\nv1\r\n$-1\r\n$2\r\nv2\r\n")
	in.WriteString(cmd("PING"))
	want.WriteString("+PONG\r\n")
	if got := serveMem(t, s, in.String()); got != want.String() {
		t.Fatalf("replies:\n%q\nwant\n%q", got, want.String())
	}
	if got := be.batchSizes(); len(got) != 1 || got[0] != 8+6+3 {
		t.Fatalf("Do calls with batch sizes %v, want one call of 17 requests", got)
	}
}

// TestPipelineSplitReads: a pipeline cut at arbitrary points (inside a
// header, inside a bulk) still yields every reply in order.
func TestPipelineSplitReads(t *testing.T) {
	s, _ := newMemServer(t, nil)
	var in, want strings.Builder
	for i := range 16 {
		in.WriteString(cmd("SET", fmt.Sprint("key", i), strings.Repeat("x", i*10)))
		in.WriteString(cmd("GET", fmt.Sprint("key", i)))
		want.WriteString(fmt.Sprintf("+OK\r\n$%d\r\n%s\r\n", i*10, strings.Repeat("x", i*10)))
	}
	all := in.String()
	for _, step := range []int{1, 2, 3, 7, 13, 64, 1000} {
		var chunks []string
		for i := 0; i < len(all); i += step {
			chunks = append(chunks, all[i:min(i+step, len(all))])
		}
		if got := serveMem(t, s, chunks...); got != want.String() {
			t.Fatalf("step %d: replies differ:\n%q\nwant\n%q", step, got, want.String())
		}
	}
}

// TestMaxPipeline: a batch never holds more than MaxPipeline commands.
func TestMaxPipeline(t *testing.T) {
	s, be := newMemServer(t, func(c *Config) { c.MaxPipeline = 4 })
	out := serveMem(t, s, strings.Repeat(cmd("GET", "a"), 10))
	if out != strings.Repeat("$-1\r\n", 10) {
		t.Fatalf("replies %q", out)
	}
	if got := be.batchSizes(); fmt.Sprint(got) != "[4 4 2]" {
		t.Fatalf("batch sizes %v, want [4 4 2]", got)
	}
}

// TestPipelineGoRedis: 16 commands sent without waiting get 16 replies, in
// order, over TCP.
func TestPipelineGoRedis(t *testing.T) {
	for _, proto := range []int{2, 3} {
		ts := startServer(t, nil)
		rdb := ts.client(t, proto, nil)
		ctx := context.Background()
		pipe := rdb.Pipeline()
		var sets []*redis.StatusCmd
		var incrs []*redis.IntCmd
		var gets []*redis.StringCmd
		for i := range 6 {
			sets = append(sets, pipe.Set(ctx, fmt.Sprint("k", i), fmt.Sprint("v", i), 0))
		}
		for i := range 5 {
			incrs = append(incrs, pipe.Incr(ctx, "counter"))
			gets = append(gets, pipe.Get(ctx, fmt.Sprint("k", 5-i)))
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil || len(cmds) != 16 {
			t.Fatalf("Exec: %d commands, %v", len(cmds), err)
		}
		for i, c := range sets {
			if v, err := c.Result(); v != "OK" || err != nil {
				t.Fatalf("SET %d = %q, %v", i, v, err)
			}
		}
		for i := range 5 {
			if v, err := incrs[i].Result(); v != int64(i+1) || err != nil {
				t.Fatalf("INCR %d = %d, %v", i, v, err)
			}
			if v, err := gets[i].Result(); v != fmt.Sprint("v", 5-i) || err != nil {
				t.Fatalf("GET %d = %q, %v", i, v, err)
			}
		}
	}
}

func TestInlineCommands(t *testing.T) {
	s, _ := newMemServer(t, nil)
	in := "SET greeting \"hello \\x41\\tworld\\\"\"\r\n" +
		"\r\n" + // blank lines are ignored
		"GET greeting\n" +
		"set 'it''s' x\r\n" + // a closing quote must be followed by a space
		"ECHO 'it\\'s'\r\n" +
		"ECHO a\"b c\"\r\n" + // quotes inside a word start a quoted part
		"*0\r\n" + // empty multibulk: ignored
		"  PING   \r\n"
	want := "+OK\r\n" +
		"$14\r\nhello A\tworld\"\r\n" +
		"-ERR Protocol error: unbalanced quotes in request\r\n"
	if got := serveMem(t, s, in); got != want {
		t.Fatalf("replies\n%q\nwant\n%q", got, want)
	}
	in = "ECHO 'it\\'s'\r\nECHO a\"b c\"\r\n*0\r\n  PING   \r\nECHO \"a\"b\r\n"
	want = "$4\r\nit's\r\n$4\r\nab c\r\n+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n"
	if got := serveMem(t, s, in); got != want {
		t.Fatalf("replies\n%q\nwant\n%q", got, want)
	}
}

// TestProtocolErrors: malformed input gets Redis's protocol error, the
// replies to the commands before it, and a closed connection; the server
// keeps serving everyone else.
func TestProtocolErrors(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxBulkLen = 1 << 20; c.MaxMultiBulkLen = 1000; c.MaxQueryBuffer = 2 << 20 })
	cases := []struct {
		name, in, want string
	}{
		{"garbage after a command", cmd("PING") + "*2\r\n!garbage\r\n", "-ERR Protocol error: expected '$', got '!'"},
		{"binary garbage", "*1\r\n\xff\xfe\r\n", "-ERR Protocol error: expected '$', got '\\xff'"},
		{"bad multibulk count", "*x\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"huge multibulk count", "*2147483648\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"count over MaxMultiBulkLen", "*1001\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"oversized bulk", "*2\r\n$3\r\nGET\r\n$1048577\r\n", "-ERR Protocol error: invalid bulk length"},
		{"huge bulk", "*1\r\n$99999999999999999999\r\n", "-ERR Protocol error: invalid bulk length"},
		{"negative bulk", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length"},
		{"unbalanced quotes", "SET a \"b\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{"inline too long", strings.Repeat("a", 70<<10), "-ERR Protocol error: too big inline request"},
		{"count line too long", "*" + strings.Repeat("1", 70<<10), "-ERR Protocol error: too big mbulk count string"},
		{"bulk line too long", "*1\r\n$" + strings.Repeat("1", 70<<10), "-ERR Protocol error: too big bulk count string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := ts.raw(t)
			rc.send(tc.in)
			if strings.HasPrefix(tc.in, cmd("PING")) {
				rc.expect("+PONG")
			}
			rc.expect(tc.want)
			rc.expectClosed()
		})
	}
	rdb := ts.client(t, 3, nil)
	eq(t, "PING after protocol errors", "PONG")(rdb.Ping(context.Background()).Result())
}

// TestLargeValue: a value larger than the initial buffer, sent in pieces,
// round-trips, and the connection's buffers shrink back afterwards.
func TestLargeValue(t *testing.T) {
	ts := startServer(t, nil)
	rdb := ts.client(t, 2, nil)
	ctx := context.Background()
	big := strings.Repeat("0123456789abcdef", 200<<10/16)
	eq(t, "SET big", "OK")(rdb.Set(ctx, "big", big, 0).Result())
	got, err := rdb.Get(ctx, "big").Result()
	if err != nil || got != big {
		t.Fatalf("GET big: %d bytes, %v", len(got), err)
	}
	eq(t, "STRLEN big", int64(len(big)))(rdb.StrLen(ctx, "big").Result())
}

func TestQueryBufferLimit(t *testing.T) {
	s, _ := newMemServer(t, func(c *Config) { c.MaxBulkLen = 1000; c.MaxQueryBuffer = 1000 + minQueryRoom })
	in := "*100000\r\n" + strings.Repeat("$1000\r\n"+strings.Repeat("x", 1000)+"\r\n", 100)
	out := serveMem(t, s, in)
	if out != "-ERR Protocol error: query buffer limit reached\r\n" {
		t.Fatalf("reply %q", out)
	}
}

func TestMaxConns(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConns = 2 })
	a, b := ts.raw(t), ts.raw(t)
	a.send(cmd("PING"))
	a.expect("+PONG")
	b.send(cmd("PING"))
	b.expect("+PONG")
	c := ts.raw(t)
	c.expect("-ERR max number of clients reached")
	c.expectClosed()
	a.send(cmd("QUIT"))
	a.expect("+OK")
	a.expectClosed()
	waitFor(t, func() bool { return ts.srv.ConnectedClients() == 1 }, "the quitting client to be gone")
	d := ts.raw(t)
	d.send(cmd("PING"))
	d.expect("+PONG")
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.IdleTimeout = 50 * time.Millisecond })
	rc := ts.raw(t)
	rc.send(cmd("PING"))
	rc.expect("+PONG")
	rc.expectClosed()
}

// TestShutdown: Shutdown answers what is in flight, closes every
// connection, makes Serve return ErrServerClosed and can be repeated.
func TestShutdown(t *testing.T) {
	s, _ := newMemServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	waitFor(t, func() bool { return s.Addr() != nil }, "Serve to start")
	var rcs []*rawConn
	for range 3 {
		nc, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		rc := &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
		rc.send(cmd("PING"))
		rc.expect("+PONG")
		rcs = append(rcs, rc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
	wg.Wait()
	for _, rc := range rcs {
		rc.expectClosed()
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if n := s.ConnectedClients(); n != 0 {
		t.Fatalf("%d clients after Shutdown", n)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln2); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown returned %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"bad addr":                   func(c *Config) { c.Addr = "nope" },
		"no bulk":                    func(c *Config) { c.MaxBulkLen = 0 },
		"no multibulk":               func(c *Config) { c.MaxMultiBulkLen = 0 },
		"no pipeline":                func(c *Config) { c.MaxPipeline = 0 },
		"small buffer":               func(c *Config) { c.MaxQueryBuffer = c.MaxBulkLen },
		"negative conns":             func(c *Config) { c.MaxConns = -1 },
		"negative command timeout":   func(c *Config) { c.CommandTimeout = -1 },
		"negative handshake timeout": func(c *Config) { c.HandshakeTimeout = -1 },
		"newline in name":            func(c *Config) { c.NodeName = "a\nb" },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
	c := DefaultConfig()
	c.Addr = "127.0.0.1:6379"
	if err := c.Validate(); err != nil {
		t.Fatalf("valid addr: %v", err)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// smallBufListener shrinks the socket buffers of accepted connections so
// that a test fills them with little data.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10)
		_ = tc.SetWriteBuffer(64 << 10)
	}
	return nc, err
}

// TestPipelineWithoutReading: a client that sends a long pipeline and reads
// only once it has sent everything must not deadlock against a server
// blocked writing replies.
func TestPipelineWithoutReading(t *testing.T) {
	s, _ := newMemServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(smallBufListener{ln}) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tc := nc.(*net.TCPConn)
	_ = tc.SetReadBuffer(64 << 10)
	_ = tc.SetWriteBuffer(64 << 10)
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))

	const n = 20000
	val := strings.Repeat("v", 100)
	var in bytes.Buffer
	in.WriteString(cmd("SET", "k", val))
	for range n {
		in.WriteString(cmd("GET", "k"))
	}
	if _, err := nc.Write(in.Bytes()); err != nil {
		t.Fatalf("writing %d bytes of pipeline: %v (the server stopped reading)", in.Len(), err)
	}
	want := "+OK\r\n" + strings.Repeat("$100\r\n"+val+"\r\n", n)
	got := make([]byte, len(want))
	if n, err := io.ReadFull(nc, got); err != nil {
		t.Fatalf("reading replies: got %d of %d bytes: %v; tail %q", n, len(want), err, got[max(0, n-200):n])
	}
	if string(got) != want {
		t.Fatal("replies out of order or corrupted")
	}
}

// TestPanicCostsOneConnection: a panic while serving a command (a bug in
// the backend, say) closes that connection; the server lives on.
func TestPanicCostsOneConnection(t *testing.T) {
	ts := startServer(t, nil)
	ts.be.mu.Lock()
	ts.be.fail = func(r *transport.Request) *transport.Response {
		if r.Key == "boom" {
			panic("backend bug")
		}
		return nil
	}
	ts.be.mu.Unlock()
	rc := ts.raw(t)
	rc.send(cmd("GET", "boom"))
	rc.expectClosed()
	rc = ts.raw(t)
	rc.send(cmd("PING"))
	rc.expect("+PONG")
}
