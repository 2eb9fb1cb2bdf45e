package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
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
		contacted, candidates, err := g.joinSeeds(ctx, 0)
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
			level, msg := slog.LevelDebug, "no seed answered yet; retrying"
			if attempt == 1 || attempt%10 == 0 {
				level = slog.LevelInfo
				if keyMismatch(err) {
					// Not a seed that is still starting: a configuration
					// error that retrying will not fix.
					level, msg = slog.LevelWarn, "seeds refuse our gossip: their gossip key differs from ours (or one side has none); retrying"
				}
			}
			g.log.Log(ctx, level, msg, "attempt", attempt, "retry_in", backoff, "err", err)
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
	var unanswered rejoinLog
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		contacted, candidates, err := g.joinSeeds(ctx, rejoinFanout)
		if ctx.Err() != nil {
			return
		}
		unanswered.report(g.log, candidates > 0 && contacted == 0, contacted, candidates, err)
	}
}

// rejoinLog logs the re-join outcome without repeating itself: when every
// seed is gone (normal once the nodes first started have been replaced) a
// warning every RejoinInterval would say nothing new, so the warning comes
// once, when seeds stop answering, then at Debug until one answers again,
// which is logged at Info.
type rejoinLog struct {
	failing bool
	since   time.Time
}

// report logs one re-join attempt; failed says no seed answered.
func (r *rejoinLog) report(log *slog.Logger, failed bool, contacted, candidates int, err error) {
	switch {
	case failed && !r.failing:
		r.failing, r.since = true, time.Now()
		log.Warn("re-join: no seed answered; still in the cluster through its other members (repeats logged at debug)",
			"candidates", candidates, "err", err)
	case failed:
		log.Debug("re-join: no seed answered", "since", r.since, "candidates", candidates, "err", err)
	case r.failing:
		r.failing = false
		log.Info("re-join: seeds answer again", "seeds_contacted", contacted, "candidates", candidates,
			"unanswered_for", time.Since(r.since).Round(time.Second))
	default:
		log.Debug("re-joined seeds", "seeds_contacted", contacted, "candidates", candidates, "err", err)
	}
}

// How many seed addresses are joined at once, and how many a re-join picks
// (at random) from the resolved seeds. The first join tries every address,
// so that a node given a DNS name (a Kubernetes headless service, a compose
// service) reaches every node it names; a re-join only repairs, and a few
// addresses do that without every node syncing with every pod behind the
// name each RejoinInterval.
const (
	joinParallelism = 8
	rejoinFanout    = 3
)

// joinSeeds resolves the seeds and joins the addresses found, in parallel
// (each bounded by TCPTimeout, so one unreachable address does not hold up
// the others): all of them, or a random sample of at most limit if limit >
// 0. It returns how many answered, how many were tried, and the errors met.
func (g *Gossip) joinSeeds(ctx context.Context, limit int) (contacted, candidates int, err error) {
	addrs, rerr := g.resolveSeeds(ctx)
	if limit > 0 && len(addrs) > limit {
		rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		addrs = addrs[:limit]
	}
	if len(addrs) == 0 {
		return 0, 0, rerr
	}
	var (
		mu   sync.Mutex
		errs = []error{rerr}
		wg   sync.WaitGroup
		sem  = make(chan struct{}, joinParallelism)
	)
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			_, jerr := g.ml.Join([]string{a})
			mu.Lock()
			defer mu.Unlock()
			if jerr != nil {
				errs = append(errs, joinError(jerr))
			} else {
				contacted++
			}
		}()
	}
	wg.Wait()
	return contacted, len(addrs), errors.Join(errs...)
}

// joinError unwraps the one-item multierror memberlist's Join returns for a
// single address ("failed to join ADDR: reason"), which otherwise spans
// several lines in a log.
func joinError(err error) error {
	if m, ok := err.(interface{ WrappedErrors() []error }); ok && len(m.WrappedErrors()) == 1 {
		return m.WrappedErrors()[0]
	}
	return err
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

// keyMismatch reports whether a join failed because the two sides do not
// share a gossip key. memberlist says so only in its error text.
func keyMismatch(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, sign := range []string{
		"encryption is not configured",           // we have no key, they do
		"remote state is not encrypted",          // we have a key, they do not
		"no installed keys could decrypt",        // different keys
		"failed to decrypt", "Failed to decrypt", // older and other wordings
	} {
		if strings.Contains(s, sign) {
			return true
		}
	}
	return false
}
