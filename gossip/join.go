package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// joinLoop joins the seeds, retrying with jittered exponential backoff until
// this node is part of a cluster, then re-joins them every RejoinInterval
// until Leave or Shutdown. Each join is a full state sync with every seed
// reached, which repairs missed events and merges healed partitions.
func (g *Gossip) joinLoop() {
	defer g.wg.Done()
	ctx := g.loopCtx
	backoff := g.cfg.JoinRetryMin
	for attempt := 1; !g.isJoined(); attempt++ {
		contacted, candidates, err := g.joinSeeds(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case contacted > 0:
			g.log.Info("joined cluster", "seeds_contacted", contacted, "attempt", attempt, "members", g.NumMembers())
			g.markJoined()
		case candidates == 0 && err == nil:
			// Every seed is this node itself: it is the cluster.
			g.log.Info("every seed is this node; starting a new cluster")
			g.markJoined()
		case g.isJoined():
			g.log.Info("joined cluster: another member joined this node")
		default:
			level := slog.LevelDebug
			if attempt == 1 || attempt%10 == 0 {
				level = slog.LevelInfo
			}
			g.log.Log(ctx, level, "no seed answered yet; retrying", "attempt", attempt, "retry_in", backoff, "err", err)
			t := time.NewTimer(jitter(backoff))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-g.joined:
			case <-t.C:
			}
			t.Stop()
			backoff = min(2*backoff, g.cfg.JoinRetryMax)
		}
	}

	if g.cfg.RejoinInterval <= 0 {
		return
	}
	tick := time.NewTicker(g.cfg.RejoinInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		contacted, candidates, err := g.joinSeeds(ctx)
		if ctx.Err() != nil {
			return
		}
		if candidates > 0 && contacted == 0 {
			g.log.Warn("re-join: no seed answered", "err", err)
		} else {
			g.log.Debug("re-joined seeds", "seeds_contacted", contacted, "candidates", candidates, "err", err)
		}
	}
}

// joinSeeds resolves the seeds and joins every address found. It returns
// how many answered, how many were tried, and the errors met.
func (g *Gossip) joinSeeds(ctx context.Context) (contacted, candidates int, err error) {
	addrs, rerr := g.resolveSeeds(ctx)
	if len(addrs) == 0 {
		return 0, 0, rerr
	}
	n, jerr := g.ml.Join(addrs)
	if jerr != nil {
		jerr = fmt.Errorf("join: %w", jerr)
	}
	return n, len(addrs), errors.Join(rerr, jerr)
}

// resolveSeeds turns the configured seeds into IP:port addresses: a DNS name
// contributes every address it resolves to. Duplicates and this node's own
// address are dropped. Names that fail to resolve are reported in err and
// skipped.
func (g *Gossip) resolveSeeds(ctx context.Context) ([]string, error) {
	var (
		out  []string
		errs []error
		seen = make(map[string]bool)
	)
	for _, s := range g.cfg.Seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("seed %q: %w", s, err))
			continue
		}
		var ips []netip.Addr
		if ip, perr := netip.ParseAddr(host); perr == nil {
			ips = []netip.Addr{ip}
		} else {
			lctx, cancel := context.WithTimeout(ctx, g.cfg.TCPTimeout)
			ips, err = g.resolver.LookupNetIP(lctx, "ip", host)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("resolve seed %q: %w", s, err))
				continue
			}
		}
		for _, ip := range ips {
			a := net.JoinHostPort(ip.Unmap().String(), port)
			if seen[a] || g.isSelf(ip.Unmap(), port) {
				continue
			}
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, errors.Join(errs...)
}

// isSelf reports whether ip:port reaches this node: its advertised or bound
// address, or, when bound to every interface, a loopback address on the
// bound port.
func (g *Gossip) isSelf(ip netip.Addr, port string) bool {
	a := net.JoinHostPort(ip.String(), port)
	if a == g.advertise || a == g.addr {
		return true
	}
	_, boundPort, _ := net.SplitHostPort(g.addr)
	return g.bindIP.IsUnspecified() && ip.IsLoopback() && port == boundPort
}

// jitter returns a duration in [d/2, d), so that nodes started together do
// not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}
