package resp

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/starlingcache/starling/transport"
)

// loopConn serves the same pipelined payload n times, one payload per
// Read, then io.EOF; replies are discarded.
type loopConn struct {
	memConn
	payload []byte
	n       int
}

func (l *loopConn) Read(p []byte) (int, error) {
	if l.n == 0 {
		return 0, io.EOF
	}
	l.n--
	return copy(p, l.payload), nil
}

func (l *loopConn) Write(p []byte) (int, error) { return len(p), nil }

// nopBackend answers every request with a fixed response, so that the
// benchmark measures the RESP layer alone.
type nopBackend struct {
	get, set transport.Response
}

func (b *nopBackend) Do(_ context.Context, reqs []*transport.Request, resps []*transport.Response) {
	for i, r := range reqs {
		if r.Op == transport.OpGet {
			resps[i] = &b.get
		} else {
			resps[i] = &b.set
		}
	}
}

func (b *nopBackend) Broadcast(context.Context, *transport.Request) []*transport.Response { return nil }
func (b *nopBackend) Members() []transport.Member                                         { return nil }
func (b *nopBackend) Scan(context.Context, uint64, string, int) ([]string, uint64, error) {
	return nil, 0, nil
}
func (b *nopBackend) Stats() transport.Stats { return transport.Stats{} }

// pipeline16 is 8 SETs and 8 GETs of 100-byte values, as redis-benchmark
// -P 16 -d 100 sends them.
func pipeline16() []byte {
	var b strings.Builder
	val := strings.Repeat("x", 100)
	for i := range 8 {
		b.WriteString(cmd("SET", fmt.Sprintf("key:%012d", i), val))
	}
	for i := range 8 {
		b.WriteString(cmd("GET", fmt.Sprintf("key:%012d", i)))
	}
	return []byte(b.String())
}

// BenchmarkPipeline16 parses, translates, dispatches and answers one
// 16-command pipeline per op. ns/cmd and allocs/cmd are per command.
func BenchmarkPipeline16(b *testing.B) {
	payload := pipeline16()
	backends := map[string]func() Backend{
		"nop": func() Backend {
			return &nopBackend{get: transport.Response{Value: []byte(strings.Repeat("x", 100))}}
		},
		"map": func() Backend { return newFakeBackend(newFakeClock().Now) },
	}
	for _, name := range []string{"nop", "map"} {
		b.Run(name, func(b *testing.B) {
			s, err := NewServer(DefaultConfig(), backends[name]())
			if err != nil {
				b.Fatal(err)
			}
			lc := &loopConn{payload: payload}
			c := newConn(s, lc, lc)
			lc.n = 1 // warm the connection's buffers up
			c.serve()
			b.ReportAllocs()
			b.ResetTimer()
			lc.n = b.N
			c.serve()
			b.StopTimer()
			if fb, ok := s.backend.(*fakeBackend); ok {
				if got := len(fb.batchSizes()); got != b.N+1 {
					b.Fatalf("%d Do calls for %d pipelines", got, b.N+1)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(16*b.N), "ns/cmd")
		})
	}
}

// BenchmarkParse measures the parser alone on the same pipeline.
func BenchmarkParse(b *testing.B) {
	payload := pipeline16()
	cfg := DefaultConfig()
	lc := &loopConn{payload: payload}
	rd := newReader(lc, &cfg, nil)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	lc.n = b.N
	for {
		for {
			_, ok, err := rd.next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
		if rd.fill() != nil {
			break
		}
	}
}

// BenchmarkRoundTrip sends one command and waits for its reply, over
// loopback TCP, as a client that does not pipeline does: every command
// finds the connection idle. The client reuses its buffers, so allocs/op
// are the server's (and the fake backend's, for "map").
func BenchmarkRoundTrip(b *testing.B) {
	val := strings.Repeat("x", 100)
	for _, tc := range []struct{ name, req, reply string }{
		{"get", cmd("GET", "key:000000000001"), "$100\r\n" + val + "\r\n"},
		{"set", cmd("SET", "key:000000000001", val), "+OK\r\n"},
		{"ping", cmd("PING"), "+PONG\r\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ts := startServer(b, nil)
			ts.be.data["key:000000000001"] = &fakeEntry{val: []byte(val)}
			rc := ts.raw(b)
			_ = rc.nc.SetDeadline(time.Time{})
			req, reply := []byte(tc.req), make([]byte, len(tc.reply))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := rc.nc.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rc.nc, reply); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if string(reply) != tc.reply {
				b.Fatalf("reply %q, want %q", reply, tc.reply)
			}
		})
	}
}
