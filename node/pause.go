package node

import (
	"time"
)

// A node whose process was paused — SIGSTOP, a debugger, a stall of the
// whole process, a host or VM that was suspended — wakes believing its
// store is current. It is not: while it slept its
// peers may have declared it dead and taken writes for its keys, or
// skipped it as a replica. Until the hand-off and hints that repair it
// have had time to arrive, serving a read from its own store would return
// stale data. So the node watches for pauses, and for ResyncWindow after
// one it answers every read of a key it owns only after asking the key's
// other owners for their copy (read repair: newest version wins).

// monotonic returns the time since the node was created, from the
// monotonic clock, which keeps counting while the process is stopped.
func (n *Node) monotonic() time.Duration { return time.Since(n.created) }

// pauseLoop ticks every quarter of PauseThreshold. A tick that arrives
// later than PauseThreshold means the process did not run for that long.
//
// A suspended machine is different: the monotonic clock stops with it, so
// the ticks look punctual. The boot clock (CLOCK_BOOTTIME on Linux) keeps
// counting through a suspend, so each tick also compares how far the two
// clocks moved since the last: the difference is how long the machine
// slept. Only this loop reads the boot clock (a system call), never the
// request path; a request served in the first quarter of PauseThreshold
// after a resume can still find the window not yet open.
func (n *Node) pauseLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.PauseThreshold / 4)
	defer t.Stop()
	lastMono := n.monotonic()
	lastBoot, haveBoot := n.bootClock()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.resyncing()
			mono := n.monotonic()
			boot, ok := n.bootClock()
			if slept := (boot - lastBoot) - (mono - lastMono); ok && haveBoot && slept > n.cfg.PauseThreshold {
				n.enterResync(mono, slept, "the machine was suspended")
			}
			// A failed read must not let the next one count the ticks in
			// between as sleep: compare only consecutive good reads.
			lastBoot, haveBoot = boot, ok
			lastMono = mono
			n.lastTick.Store(int64(mono))
		}
	}
}

// resyncing reports whether the node is within ResyncWindow of a pause,
// noticing the pause first if the ticker has not run since: after SIGCONT
// the requests queued in socket buffers may run before the ticker does.
// Requests only read lastTick, so the request path writes no shared
// memory here.
func (n *Node) resyncing() bool {
	now := n.monotonic()
	if last := time.Duration(n.lastTick.Load()); now-last > n.cfg.PauseThreshold {
		n.enterResync(now, now-last, "the process was paused")
	}
	return now < time.Duration(n.resyncUntil.Load())
}

// enterResync opens (or extends) the resync window after a pause of gap;
// what says what kind of pause, for the log.
func (n *Node) enterResync(now, gap time.Duration, what string) {
	until := now + n.cfg.ResyncWindow
	for {
		old := n.resyncUntil.Load()
		if time.Duration(old) >= until-n.cfg.PauseThreshold {
			return // already open for this pause
		}
		if n.resyncUntil.CompareAndSwap(old, int64(until)) {
			break
		}
	}
	n.noticed.Store(int64(now))
	n.stats.pauses.Add(1)
	n.log.Warn(what+"; reading through the other replicas until they have caught this node up",
		"paused", gap.Round(time.Millisecond), "window", n.cfg.ResyncWindow)
}

// justWoke reports whether a pause was noticed within twice PeerBackoff:
// the peers marked down then were marked by the calls that timed out while
// this node was stopped, and say nothing about the peers. Later marks are
// real again, and a resync that asked a peer that is really down would
// wait ReplicaTimeout on every read.
func (n *Node) justWoke() bool {
	noticed := time.Duration(n.noticed.Load())
	return noticed != 0 && n.monotonic()-noticed < 2*n.cfg.PeerBackoff
}
