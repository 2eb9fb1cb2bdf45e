package node_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/starlingcache/starling/node"
	"github.com/starlingcache/starling/node/nodetest"
	"github.com/starlingcache/starling/transport"
)

// BenchmarkDo measures the node's request path without any network: a
// pipeline of GETs or SETs handed to Node.Do, as the RESP front end does.
// With one node every key is local, so allocations per op here are the
// request path's own.
func BenchmarkDo(b *testing.B) {
	nd := preloaded(b, 1)
	ctx := context.Background()
	for _, op := range []transport.Op{transport.OpGet, transport.OpSet} {
		for _, depth := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/P%d", op, depth), func(b *testing.B) {
				reqs, resps := pipeline(op, depth)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					nd.Do(ctx, reqs, resps)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*depth), "ns/req")
			})
			// The RESP front end's path: answers built in a reused arena.
			b.Run(fmt.Sprintf("%s/P%d/arena", op, depth), func(b *testing.B) {
				reqs, resps := pipeline(op, depth)
				var a node.Arena
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					nd.DoArena(ctx, reqs, resps, &a)
					a.Reset()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*depth), "ns/req")
			})
		}
	}
}

// BenchmarkDoForwarded is BenchmarkDo on a three-node cluster: about two
// thirds of the keys are owned elsewhere and go through one forwarding
// round trip per owner per pipeline, over loopback TCP.
func BenchmarkDoForwarded(b *testing.B) {
	nd := preloaded(b, 3)
	ctx := context.Background()
	for _, op := range []transport.Op{transport.OpGet, transport.OpSet} {
		for _, depth := range []int{1, 16} {
			// arena: the RESP front end's path. What it allocates per
			// forwarded request is the value decoded from the owner's reply
			// and, on the owner, the key decoded from the request.
			for _, arena := range []bool{false, true} {
				name := fmt.Sprintf("%s/P%d", op, depth)
				if arena {
					name += "/arena"
				}
				b.Run(name, func(b *testing.B) {
					b.SetParallelism(8)
					b.ReportAllocs()
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						reqs, resps := pipeline(op, depth)
						var a node.Arena
						for pb.Next() {
							if arena {
								nd.DoArena(ctx, reqs, resps, &a)
								a.Reset()
							} else {
								nd.Do(ctx, reqs, resps)
							}
						}
					})
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*depth), "ns/req")
				})
			}
		}
	}
}

// BenchmarkServeRequest measures one request arriving from the msgpack
// transport and answered by this node: the path smart clients use. Its
// allocations per op should be zero for a GET and a SET.
func BenchmarkServeRequest(b *testing.B) {
	nodes := nodetest.StartCluster(b, 1, func(c *node.Config) { c.Replicas = 1 })
	nd := nodes[0]
	val := make([]byte, 100)
	ctx := context.Background()
	if resp := nd.Handle(ctx, &transport.Request{Op: transport.OpSet, Key: "k", Value: val}); resp.Code != transport.CodeOK {
		b.Fatalf("set: %+v", resp)
	}
	var w discardWriter
	for _, op := range []transport.Op{transport.OpGet, transport.OpSet} {
		b.Run(op.String(), func(b *testing.B) {
			req := &transport.Request{Op: op, Key: "k", Value: val}
			b.ReportAllocs()
			for b.Loop() {
				nd.ServeRequest(ctx, req, &w)
			}
			if w.last.Code != transport.CodeOK {
				b.Fatalf("%s: %+v", op, w.last)
			}
		})
	}
}

// discardWriter is a transport.ResponseWriter that keeps a copy of the
// last reply, as the transport's encoder would read it.
type discardWriter struct{ last transport.Response }

func (w *discardWriter) Reply(resp *transport.Response) { w.last = *resp }

func (w *discardWriter) ReplyAll(resps []*transport.Response) {
	for _, r := range resps {
		w.Reply(r)
	}
}

// benchKeys is how many keys preloaded writes.
const benchKeys = 1024

// preloaded starts an n-node cluster (one copy of each key) and writes
// benchKeys 100-byte values through its first node, which it returns.
func preloaded(b *testing.B, n int) *node.Node {
	nodes := nodetest.StartCluster(b, n, func(c *node.Config) { c.Replicas = 1 })
	nd := nodes[0]
	for i := range benchKeys {
		resp := nd.Handle(context.Background(), &transport.Request{Op: transport.OpSet, Key: fmt.Sprintf("key:%d", i), Value: make([]byte, 100)})
		if resp.Code != transport.CodeOK {
			b.Fatalf("set: %+v", resp)
		}
	}
	return nd
}

// pipeline returns depth requests of op over preloaded keys, and room for
// their answers.
func pipeline(op transport.Op, depth int) ([]*transport.Request, []*transport.Response) {
	reqs := make([]*transport.Request, depth)
	for i := range reqs {
		reqs[i] = &transport.Request{Op: op, Key: fmt.Sprintf("key:%d", i*37%benchKeys)}
		if op == transport.OpSet {
			reqs[i].Value = make([]byte, 100) // a GET carries none, as from RESP
		}
	}
	return reqs, make([]*transport.Response, depth)
}
