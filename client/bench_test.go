package client_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/starlingcache/starling/client"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

// The benchmarks run a 3-node cluster in the test process, so client and
// nodes share the machine's cores: read them as smart-versus-forwarded
// ratios, not as absolute capacity.

const benchKeys = 1024

func benchCluster(b *testing.B) (smart, forwarded *client.Client, keys []string) {
	b.Helper()
	nodes := nodetest.StartCluster(b, 3, nil)
	smart = newClient(b, nil, nodes[0].Addr())
	forwarded = newClient(b, func(c *client.Config) { c.Smart = false }, nodes[0].Addr())
	value := make([]byte, 100)
	for i := range benchKeys {
		keys = append(keys, fmt.Sprintf("key:%012d", i))
	}
	items := map[string][]byte{}
	for _, k := range keys {
		items[k] = value
	}
	if err := smart.SetMany(context.Background(), items, 0); err != nil {
		b.Fatal(err)
	}
	// Warm both clients' connections to every node.
	for _, cl := range []*client.Client{smart, forwarded} {
		if _, err := cl.GetMany(context.Background(), keys); err != nil {
			b.Fatal(err)
		}
	}
	return smart, forwarded, keys
}

// BenchmarkGet is one caller doing sequential GETs of 100-byte values:
// latency-bound, one round trip each (two when forwarded).
func BenchmarkGet(b *testing.B) {
	smart, forwarded, keys := benchCluster(b)
	for _, c := range []struct {
		name string
		cl   *client.Client
	}{{"smart", smart}, {"forwarded", forwarded}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.cl.Get(ctx, keys[i%benchKeys]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkSet is one caller doing sequential SETs of 100-byte values.
func BenchmarkSet(b *testing.B) {
	smart, forwarded, keys := benchCluster(b)
	value := make([]byte, 100)
	for _, c := range []struct {
		name string
		cl   *client.Client
	}{{"smart", smart}, {"forwarded", forwarded}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := c.cl.Set(ctx, keys[i%benchKeys], value, 0); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkGetParallel is 32 concurrent callers of sequential GETs: the
// transport pipelines them over each node's connections.
func BenchmarkGetParallel(b *testing.B) {
	smart, forwarded, keys := benchCluster(b)
	for _, c := range []struct {
		name string
		cl   *client.Client
	}{{"smart", smart}, {"forwarded", forwarded}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := c.cl.Get(ctx, keys[i%benchKeys]); err != nil {
						b.Error(err)
						return
					}
					i += 7
				}
			})
		})
	}
}

// BenchmarkDoPipeline16 is one caller sending pipelines of 16 GETs with
// Do; ns/op is per pipeline.
func BenchmarkDoPipeline16(b *testing.B) {
	smart, forwarded, keys := benchCluster(b)
	for _, c := range []struct {
		name string
		cl   *client.Client
	}{{"smart", smart}, {"forwarded", forwarded}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			reqs := make([]transport.Request, 16)
			ptrs := make([]*transport.Request, 16)
			resps := make([]*transport.Response, 16)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for j := range reqs {
					reqs[j] = transport.Request{Op: transport.OpGet, Key: keys[n%benchKeys]}
					ptrs[j] = &reqs[j]
					n++
				}
				if err := c.cl.Do(ctx, ptrs, resps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGetStubNode measures the client alone: one stub node that
// answers every GET with a fixed 100-byte value and no work, so allocs/op
// is the client's plus the transport's (compare transport's
// BenchmarkRoundTrip, which is the transport alone).
func BenchmarkGetStubNode(b *testing.B) {
	value := make([]byte, 100)
	stub := func(addr string) transport.Handler {
		return transport.HandlerFunc(func(_ context.Context, req *transport.Request, w transport.ResponseWriter) {
			resp := transport.Response{ID: req.ID, Value: value}
			if req.Op == transport.OpMembers {
				resp.Members = []transport.Member{{Name: "stub", DataAddr: addr}}
				resp.Value = nil
			}
			w.Reply(&resp)
		})
	}
	for _, smart := range []bool{true, false} {
		b.Run(fmt.Sprintf("smart=%v", smart), func(b *testing.B) {
			cl := newClient(b, func(c *client.Config) { c.Smart = smart }, startStub(b, stub))
			ctx := context.Background()
			if _, err := cl.Get(ctx, "warm"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cl.Get(ctx, "key:000000001234"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
