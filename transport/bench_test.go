package transport

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// benchValue is what the benchmark handler returns: a GET of a 100-byte
// value, the shape redis-benchmark -d 100 uses.
var benchValue = bytes.Repeat([]byte{'v'}, 100)

var benchHandler = HandlerFunc(func(_ context.Context, req *Request, w ResponseWriter) {
	resp := Response{ID: req.ID, Value: benchValue, TTL: 1000}
	w.Reply(&resp)
})

func benchSetup(b *testing.B) (*Client, string) {
	c, addr, _ := benchSetupCounting(b)
	return c, addr
}

// benchSetupCounting is benchSetup over a network that counts writes, so
// a benchmark can report how well writes coalesce.
func benchSetupCounting(b *testing.B) (*Client, string, *countingNetwork) {
	cfg := DefaultConfig()
	cn := &countingNetwork{Network: TCPNetwork{}}
	cfg.Network = cn
	_, addr := startServer(b, cfg, benchHandler)
	c, err := NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	// Warm the pool: dial every connection before timing.
	dialPool(b, c, addr)
	if _, err := c.Call(context.Background(), addr, &Request{Op: OpPing}); err != nil {
		b.Fatal(err)
	}
	return c, addr, cn
}

// BenchmarkRoundTrip is one caller doing sequential GETs over TCP loopback:
// latency-bound, one write and one read syscall each way per request.
func BenchmarkRoundTrip(b *testing.B) {
	c, addr := benchSetup(b)
	ctx := context.Background()
	req := &Request{Op: OpGet, Key: "key:000000001234"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, addr, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTripParallel64 is 64 concurrent callers on one client, so
// requests pipeline and writes coalesce on the pooled connections: it
// reports client and server writes per request (1 would be no coalescing).
func BenchmarkRoundTripParallel64(b *testing.B) {
	c, addr, cn := benchSetupCounting(b)
	ctx := context.Background()
	b.ReportAllocs()
	cw, sw := cn.clientWrites.Load(), cn.serverWrites.Load()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		req := &Request{Op: OpGet, Key: "key:000000001234"}
		for pb.Next() {
			if _, err := c.Call(ctx, addr, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cn.clientWrites.Load()-cw)/float64(b.N), "client-writes/op")
	b.ReportMetric(float64(cn.serverWrites.Load()-sw)/float64(b.N), "server-writes/op")
}

// BenchmarkCallBatch16 forwards 16 pipelined commands as one batch;
// ns/op is per batch.
func BenchmarkCallBatch16(b *testing.B) {
	c, addr := benchSetup(b)
	ctx := context.Background()
	reqs := make([]*Request, 16)
	for i := range reqs {
		reqs[i] = &Request{Op: OpGet, Key: "key:000000001234"}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CallBatch(ctx, addr, reqs); err != nil {
			b.Fatal(err)
		}
	}
}

var benchReq = Request{ID: 123456, Op: OpSet, Flags: FlagForwarded, Key: "key:000000001234", Value: benchValue, TTL: 60000}

func BenchmarkEncodeRequest(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRequest(buf[:0], &benchReq)
	}
}

// BenchmarkDecodeRequest decodes a 100-byte SET as a server's read loop
// does (shared: key and value copied into the connection's KeyChunk) and
// with a copy of each of its own.
func BenchmarkDecodeRequest(b *testing.B) {
	data := appendRequest(nil, &benchReq)
	for _, shared := range []bool{true, false} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			var keys *KeyChunk
			if shared {
				keys = new(KeyChunk)
			}
			b.ReportAllocs()
			for b.Loop() {
				var r Request
				if err := decodeRequest(data, &r, false, keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The library, reused encoder/decoder, for comparison.
func BenchmarkEncodeRequestLibrary(b *testing.B) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := enc.Encode(&benchReq); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequestLibrary(b *testing.B) {
	data, _ := msgpack.Marshal(&benchReq)
	rd := bytes.NewReader(data)
	dec := msgpack.NewDecoder(rd)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(data)
		dec.Reset(rd)
		var r Request
		if err := dec.Decode(&r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPeerParallel is the lookup every call and flight starts with,
// from every core at once: it must not write memory the cores share. The
// lookup never dials, so no server is needed.
func BenchmarkPeerParallel(b *testing.B) {
	c, err := NewClient(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	for i := range 9 { // a cluster's worth of peers in the map
		if _, err := c.peer(fmt.Sprintf("127.0.0.1:%d", 7001+i)); err != nil {
			b.Fatal(err)
		}
	}
	const addr = "127.0.0.1:7005"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if p, err := c.peer(addr); p == nil || err != nil {
				b.Error("no peer", err)
				return
			}
		}
	})
}
