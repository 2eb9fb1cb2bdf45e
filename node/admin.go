package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/starlingcache/starling/gossip"
	"github.com/starlingcache/starling/node/admin"
	"github.com/starlingcache/starling/node/metrics"
	"github.com/starlingcache/starling/transport"
)

// startHTTP opens the operator's HTTP listener: metrics, health, the
// status page.
func (n *Node) startHTTP() error {
	ln, err := net.Listen("tcp", n.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("node: listen for HTTP on %s: %w", n.cfg.HTTP.Addr, err)
	}
	hcfg := n.cfg.HTTP
	hcfg.Logger = n.log.With("component", "http")
	srv, err := admin.NewServer(hcfg, adminSource{n}, n.rec)
	if err != nil {
		ln.Close()
		return fmt.Errorf("node: HTTP server: %w", err)
	}
	n.http = srv
	n.httpAddr = advertised(ln.Addr().String(), n.cfg.Advertise)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, admin.ErrServerClosed) {
			n.log.Error("HTTP server stopped", "err", err)
		}
	}()
	return nil
}

// HTTPAddr returns the address of the node's HTTP listener, or "" if it
// is disabled or the node has not started.
func (n *Node) HTTPAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.httpAddr
}

// record counts a finished batch's requests for metrics: one observation
// per request, all with the batch's latency (the requests of one pipeline
// finish together). Requests sent on to another owner count as forwarded.
func (b *batch) record() {
	rec := b.n.rec
	d := time.Since(b.start)
	var in, out int
	// Every request of a batch took d, so alike requests (a pipeline's
	// GETs that hit, say, served here or forwarded) are counted together:
	// one update of the counters per kind, not per request.
	type kind struct {
		op  transport.Op
		res metrics.Result
		fwd bool
		n   int
	}
	var kinds [4]kind
	nk := 0
	j := 0
	for i, req := range b.reqs {
		fwd := false
		for j < len(b.fwd) && b.fwd[j].i < i {
			j++
		}
		if j < len(b.fwd) && b.fwd[j].i == i {
			fwd = true
		}
		res := metrics.Error
		if r := b.resps[i]; r != nil {
			res = metrics.ResultOf(r.Code)
			out += len(r.Value)
		}
		in += len(req.Key) + len(req.Value)
		k := 0
		for k < nk && (kinds[k].op != req.Op || kinds[k].res != res || kinds[k].fwd != fwd) {
			k++
		}
		if k == len(kinds) { // a fifth kind: make room
			k = len(kinds) - 1
			rec.ObserveN(kinds[k].op, kinds[k].res, kinds[k].fwd, d, kinds[k].n)
			kinds[k].n = 0
		}
		if k == nk {
			nk++
		}
		kinds[k] = kind{op: req.Op, res: res, fwd: fwd, n: kinds[k].n + 1}
	}
	for _, k := range kinds[:nk] {
		rec.ObserveN(k.op, k.res, k.fwd, d, k.n)
	}
	rec.AddBytes(in, out)
}

// adminSource is what the HTTP server reports on. It is a separate type so
// that Node's own API does not grow admin's method names.
type adminSource struct{ n *Node }

var _ admin.Source = adminSource{}

// Ready says why the node should not get traffic yet, if it should not:
// still joining, not on its own ring, keys being handed over, or catching
// up after a pause.
func (s adminSource) Ready() error {
	n := s.n
	n.mu.Lock()
	started, shutdown := n.started, n.shutdown
	n.mu.Unlock()
	switch {
	case shutdown || n.leaving.Load():
		return errors.New("shutting down")
	case !started:
		return errors.New("not started")
	}
	select {
	case <-n.ready:
	default:
		return errors.New("joining the cluster")
	}
	v := n.view.Load()
	switch {
	case !v.ring.Contains(n.cfg.Name):
		return errors.New("this node is not on its ring yet")
	case n.passes.Load() > 0:
		return errors.New("handing keys over (rebalance running)")
	case n.resyncing():
		return errors.New("catching up after a process pause")
	}
	return nil
}

// Status reports this node's view, from local state only.
func (s adminSource) Status(ctx context.Context) (admin.Status, error) {
	n := s.n
	v := n.view.Load()
	st := admin.Status{
		Name:      n.cfg.Name,
		Version:   Version,
		StartedAt: n.created,
		DataAddr:  n.Addr(),
		RESPAddr:  n.RESPAddr(),
		HTTPAddr:  n.HTTPAddr(),
	}
	if g, err := n.gossipOrErr(); err == nil {
		st.GossipAddr = g.Addr()
		st.GossipHealth = g.HealthScore()
	}
	for _, m := range v.members {
		st.Members = append(st.Members, adminMember(m))
	}
	slices.SortFunc(st.Members, func(a, b admin.Member) int { return strings.Compare(a.Name, b.Name) })
	st.Ring.Version = v.ring.Version()
	shares := v.ring.Shares()
	for _, name := range v.ring.Members() {
		st.Ring.Shares = append(st.Ring.Shares, admin.Share{Name: name, Fraction: shares[name], VNodes: v.ring.VNodes()})
	}
	ss := n.store.Stats()
	st.Store = admin.Store{Entries: ss.Entries, Tombstones: ss.Tombstones, Bytes: ss.Bytes, MaxMemory: ss.MaxMemory,
		Hits: ss.Hits, Misses: ss.Misses, Evictions: ss.Evictions, Expirations: ss.Expirations}
	st.Rebalance = admin.Rebalance{
		KeysMoved:       n.stats.keysMoved.Load(),
		BytesMoved:      n.stats.bytesMoved.Load(),
		Replicated:      n.stats.replicated.Load(),
		FallbackHits:    n.stats.fallbackHits.Load(),
		UnderReplicated: int64(n.hints.pending()),
		Running:         n.passes.Load(),
		LastHandoff:     time.Duration(n.stats.lastHandoff.Load()),
	}
	return st, nil
}

func adminMember(m gossip.Member) admin.Member {
	return admin.Member{Name: m.Name, State: m.State.String(), DataAddr: m.Meta.DataAddr,
		RESPAddr: m.Meta.RespAddr, HTTPAddr: m.Meta.HTTPAddr, GossipAddr: m.GossipAddr}
}

// ClusterStatus asks every member for its counters, in parallel; a member
// that does not answer is reported with its error.
func (s adminSource) ClusterStatus(ctx context.Context) ([]admin.NodeStatus, error) {
	n := s.n
	v := n.view.Load()
	names := v.ring.Members()
	out := make([]admin.NodeStatus, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		addr := v.addrs[name]
		if name == n.cfg.Name {
			st := n.Stats()
			out[i] = admin.NodeStatusFromStats(name, addr, &st)
			continue
		}
		wg.Go(func() {
			resp, err := n.client.Call(ctx, addr, &transport.Request{Op: transport.OpStats})
			switch {
			case err != nil:
				out[i] = admin.NodeStatus{Name: name, Addr: addr, Error: err.Error()}
			case resp.Code != transport.CodeOK:
				out[i] = admin.NodeStatus{Name: name, Addr: addr, Error: resp.Err}
			default:
				out[i] = admin.NodeStatusFromStats(name, addr, resp.Stats)
			}
		})
	}
	wg.Wait()
	return out, nil
}

// warnInsecure logs, loudly, every listener bound beyond loopback with
// nothing to keep strangers out: anyone who can reach such a port can read
// and overwrite the whole cache, or join the cluster.
func (n *Node) warnInsecure() {
	exposed := func(addr string) bool {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return false
		}
		ip := net.ParseIP(host)
		return host != "localhost" && (ip == nil || !ip.IsLoopback())
	}
	if exposed(n.cfg.Addr) && len(n.cfg.Transport.Secret) == 0 && n.cfg.ServerTLS == nil {
		n.log.Warn("INSECURE: the data port is reachable beyond this machine and accepts anyone; set a cluster secret and/or TLS",
			"addr", n.cfg.Addr)
	}
	if n.cfg.RESP.Addr != "" && exposed(n.cfg.RESP.Addr) && n.cfg.RESP.RequirePass == "" {
		n.log.Warn("INSECURE: the RESP port is reachable beyond this machine without a password; set requirepass",
			"addr", n.cfg.RESP.Addr)
	}
	if exposed(n.cfg.Gossip.BindAddr) && len(n.cfg.Gossip.SecretKey) == 0 {
		n.log.Warn("INSECURE: gossip is reachable beyond this machine unencrypted; anyone can join the cluster; set a gossip key",
			"addr", n.cfg.Gossip.BindAddr)
	}
}
