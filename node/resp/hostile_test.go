package resp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hostile clients: each test runs a well-behaved client beside the hostile
// one and checks that it keeps being served.

// bystander starts a well-behaved client that sends SET and GET in a loop
// (at most 100,000 rounds, one per millisecond), each answered within a
// generous 10 s. The returned function waits for a few more rounds to
// complete and stops it; it fails the test if a command failed.
func bystander(t *testing.T, ts *testServer) (check func()) {
	t.Helper()
	rdb := ts.client(t, 2, func(o *redis.Options) {
		o.PoolSize = 1
		o.ReadTimeout = 10 * time.Second
		o.WriteTimeout = 10 * time.Second
	})
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("bystander: %v", err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	var rounds atomic.Int64
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := range 100000 {
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
			}
			if err := rdb.Set(ctx, "bystander", i, 0).Err(); err != nil {
				done <- fmt.Errorf("SET: %w", err)
				return
			}
			if v, err := rdb.Get(ctx, "bystander").Int(); err != nil || v != i {
				done <- fmt.Errorf("GET = %d, %v; want %d", v, err, i)
				return
			}
			rounds.Add(1)
		}
		done <- nil
	}()
	return func() {
		t.Helper()
		more := rounds.Load() + 3
		waitFor(t, func() bool { return rounds.Load() >= more || len(done) > 0 }, "the well-behaved client to be served")
		close(stop)
		if err := <-done; err != nil {
			t.Fatalf("well-behaved client beside the hostile one: %v", err)
		}
	}
}

// readAll reads what the server sends until it closes the connection; a
// reset counts as a close (the server closed with our bytes unread).
func (rc *rawConn) readAll() (out []byte, reset bool) {
	rc.t.Helper()
	out, err := io.ReadAll(rc.br)
	var ne net.Error
	switch {
	case err == nil:
		return out, false
	case errors.Is(err, syscall.ECONNRESET):
		return out, true
	case errors.As(err, &ne) && ne.Timeout():
		rc.t.Fatalf("the server did not close the connection (read %d bytes: %.200q)", len(out), out)
	default:
		rc.t.Fatalf("read: %v", err)
	}
	return nil, false
}

// TestHostileRandomBytes: arbitrary bytes get error replies (inline lines
// are unknown commands; malformed requests get a protocol error and a
// close), never anything else, and the connection ends at the latest when
// the client stops sending.
func TestHostileRandomBytes(t *testing.T) {
	ts := startServer(t, nil)
	check := bystander(t, ts)
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		data := make([]byte, 1+rng.IntN(64<<10))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		switch seed % 4 {
		case 1:
			data[0] = '*'
		case 2:
			copy(data, "*3\r\n$")
		case 3:
			// Printable words and line breaks: many inline commands.
			const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \t\r\n\n"
			for i := range data {
				data[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		rc := ts.raw(t)
		go func() {
			_, _ = rc.nc.Write(data)
			_ = rc.nc.(*net.TCPConn).CloseWrite()
		}()
		out, reset := rc.readAll()
		lines := strings.Split(string(out), "\r\n")
		if !reset && lines[len(lines)-1] != "" {
			t.Fatalf("seed %d: output does not end with a complete line: %.200q", seed, out)
		}
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasPrefix(l, "-ERR ") {
				t.Fatalf("seed %d: reply %.200q to random bytes, want an error", seed, l)
			}
		}
	}
	check()
}

// TestHostileHugeBulkLength: a bulk length beyond MaxBulkLen is refused on
// its header, with no buffer grown for it; one within the limit grows the
// buffer only as the bytes arrive.
func TestHostileHugeBulkLength(t *testing.T) {
	ts := startServer(t, nil)
	check := bystander(t, ts)
	rc := ts.raw(t)
	rc.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n")
	rc.expect("-ERR Protocol error: invalid bulk length")
	rc.expectClosed()
	check()

	cfg := DefaultConfig()
	for _, tc := range []struct {
		header string
		err    bool
	}{
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n", true},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + strconv.Itoa(cfg.MaxBulkLen) + "\r\nabc", false},
	} {
		rd := newReader(&memConn{chunks: [][]byte{[]byte(tc.header)}}, &cfg, nil)
		var err error
		for err == nil {
			if _, ok, perr := rd.next(); perr != nil || ok {
				err = perr
				break
			}
			err = rd.fill()
		}
		if tc.err != errors.Is(err, ErrProtocol) {
			t.Fatalf("%q: error %v", tc.header, err)
		}
		if len(rd.buf) != readBufSize {
			t.Fatalf("%q: read buffer grew to %d bytes on a length header", tc.header, len(rd.buf))
		}
	}
}

// TestHostileSlowloris: a client that trickles a command one byte at a
// time, fast enough never to be idle, is disconnected once CommandTimeout
// has passed since the command began. IdleTimeout alone would never close
// it (it is off here, so only CommandTimeout can). Clients whose commands
// arrive in pieces, or that send a complete command now and then for
// longer than CommandTimeout, are not affected.
func TestHostileSlowloris(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.CommandTimeout = time.Second; c.IdleTimeout = 0 })
	check := bystander(t, ts)

	// Complete commands every 20 ms for longer than CommandTimeout, and a
	// command in two pieces: all answered.
	rc := ts.raw(t)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := range 75 {
		<-tick.C
		rc.send(cmd("ECHO", strconv.Itoa(i)))
		rc.expect("$"+strconv.Itoa(len(strconv.Itoa(i))), strconv.Itoa(i))
	}
	whole := cmd("SET", "k", "v")
	rc.send(whole[:9])
	<-tick.C
	rc.send(whole[9:])
	rc.expect("+OK")

	// The slowloris: a SET whose 100,000-byte value comes one byte every
	// 20 ms (for at most 10 s).
	sl := ts.raw(t)
	sl.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n")
	trickled := make(chan int, 1)
	go func() {
		n := 0
		for range 500 {
			<-tick.C
			if _, err := sl.nc.Write([]byte{'x'}); err != nil {
				break
			}
			n++
		}
		trickled <- n
	}()
	out, _ := sl.readAll()
	if len(out) > 0 {
		t.Fatalf("slowloris got %q", out)
	}
	if n := <-trickled; n == 500 {
		t.Fatal("the slowloris trickled for 10 s without being disconnected")
	}
	waitFor(t, func() bool { return ts.srv.ConnectedClients() == 2 }, "the slowloris connection to be gone")
	check()
}

// TestHostileUnreadReplies: a client that pipelines GETs and never reads
// the replies makes the server buffer at most about MaxReplyBuffer for it
// and then stop reading its commands (its writes stall); other clients are
// served meanwhile, and once it reads, it gets every reply in order.
func TestHostileUnreadReplies(t *testing.T) {
	const maxReply = 256 << 10
	s, be := newMemServer(t, func(c *Config) { c.MaxReplyBuffer = maxReply })
	val := strings.Repeat("v", 1024)
	be.data["k"] = &fakeEntry{val: []byte(val)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(smallBufListener{ln}) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	ts := &testServer{srv: s, be: be, addr: ln.Addr().String()}
	check := bystander(t, ts)

	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.(*net.TCPConn).SetReadBuffer(64 << 10)
	_ = nc.(*net.TCPConn).SetWriteBuffer(64 << 10)
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	const n = 20000
	pipeline := bytes.Repeat([]byte(cmd("GET", "k")), n)
	wrote := make(chan error, 1)
	go func() {
		_, err := nc.Write(pipeline)
		wrote <- err
	}()

	// The server blocks once more than MaxReplyBuffer is queued.
	pending := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		most := 0
		for c := range s.conns {
			c.out.mu.Lock()
			most = max(most, c.out.pending)
			c.out.mu.Unlock()
		}
		return most
	}
	waitFor(t, func() bool { return pending() > maxReply }, "the server to queue MaxReplyBuffer of replies")
	if p, bound := pending(), maxReply+flushAt+2*len(val)+64; p > bound {
		t.Fatalf("%d bytes of replies queued, bound %d", p, bound)
	}
	select {
	case err := <-wrote:
		t.Fatalf("the whole pipeline was accepted (%v): the server did not stop reading", err)
	default:
	}
	check()

	want := "$1024\r\n" + val + "\r\n"
	got := make([]byte, len(want))
	for i := range n {
		if _, err := io.ReadFull(nc, got); err != nil || string(got) != want {
			t.Fatalf("reply %d: %.40q, %v", i, got, err)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("writing the pipeline: %v", err)
	}
}

// TestHostileTooManyClients: beyond MaxConns, connections get Redis's
// error and are closed, while the connected clients carry on.
func TestHostileTooManyClients(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConns = 3 })
	check := bystander(t, ts)
	a, b := ts.raw(t), ts.raw(t)
	a.send(cmd("PING"))
	a.expect("+PONG")
	for range 20 {
		rc := ts.raw(t)
		rc.expect("-ERR max number of clients reached")
		rc.expectClosed()
	}
	b.send(cmd("PING"))
	b.expect("+PONG")
	if got := ts.srv.rejected.Load(); got != 20 {
		t.Fatalf("%d connections rejected, want 20", got)
	}
	check()
}

// TestHostileUnknownCommands: a flood of unknown commands gets one clear
// error each, and the connection stays usable.
func TestHostileUnknownCommands(t *testing.T) {
	ts := startServer(t, nil)
	check := bystander(t, ts)
	rc := ts.raw(t)
	const n = 10000
	var in strings.Builder
	for i := range n {
		in.WriteString(cmd("NOPE"+strconv.Itoa(i), "arg"))
	}
	go func() { _, _ = io.WriteString(rc.nc, in.String()) }()
	for i := range n {
		rc.expect("-ERR unknown command 'NOPE" + strconv.Itoa(i) + "', with args beginning with: 'arg' ")
	}
	rc.send(cmd("SET", "k", "v") + cmd("GET", "k"))
	rc.expect("+OK", "$1", "v")
	check()
}
