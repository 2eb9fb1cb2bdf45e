package gossip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Leave announces a graceful departure, so the others drop this node at
// once (EventLeave with StateLeft) instead of after failure detection. It
// raises the leaving flag in this node's metadata, makes sure every known
// member has seen it (see pushLeaving), then broadcasts memberlist's leave
// message. It waits up to ctx's deadline (BroadcastTimeout if it has none),
// and for the leave message at most leaveRounds gossip intervals; past
// either, ErrBroadcastTimeout, and the leave still goes out. When no other
// member is staying (all leaving or gone, as when a whole cluster stops) it
// does not wait for the leave message at all, and returns nil: nobody is
// left to tell. Joining stops; call Shutdown next. A second Leave returns
// nil. A node that left cannot rejoin: start a new Gossip.
func (g *Gossip) Leave(ctx context.Context) error {
	return g.runOp(ctx, func(ctx context.Context, deadline time.Time) error {
		g.metaMu.Lock()
		if g.left {
			g.metaMu.Unlock()
			return nil
		}
		raw, err := encodeMeta(g.meta, true)
		if err == nil {
			g.leaving, g.metaRaw = true, raw
			g.leaveAcks = make(map[string]bool)
		}
		g.metaMu.Unlock()
		g.loopCancel()

		var errs []error
		if err != nil {
			// Cannot happen: encodeMeta reserves room for the flag.
			errs = append(errs, err)
		} else {
			// Raise the flag (a new incarnation) and queue its broadcast
			// without waiting for it: pushLeaving delivers the flag to
			// every known member, and that is what the leave waits for.
			// The "timeout waiting for update broadcast" is expected.
			_ = g.ml.UpdateNode(time.Millisecond)
			if err := g.pushLeaving(ctx, deadline); err != nil {
				errs = append(errs, err)
			}
		}

		g.metaMu.Lock()
		g.left = true
		g.leaveAcks = nil
		g.metaMu.Unlock()
		if err := g.leaveMemberlist(ctx, deadline); err != nil {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			g.log.Info("left the cluster")
		}
		return errors.Join(errs...)
	})
}

// leaveRounds bounds, in gossip intervals, how long memberlist's Leave may
// wait for its leave message to go out. The message needs RetransmitMult ×
// ⌈log10(n+1)⌉ transmissions, GossipNodes per interval: 4 intervals at 100
// members with the LAN preset. The bound is far above that, and it is what
// a leave costs when the members it was counting on leave meanwhile.
const leaveRounds = 50

// leaveMemberlist calls memberlist's Leave, which marks this node left,
// queues the leave message and waits until the message has gone out. It is
// called even past the deadline or with ctx ended: the message then goes
// out on its own.
//
// memberlist gossips only to members that have not left. When the others
// leave at the same moment (a whole cluster stopping), the message has
// nobody to go to and Leave would wait for its whole timeout: every
// member's shutdown took its full deadline. So a member with nobody staying
// (every other member left, or leaving, as far as this one knows) only
// queues the message; one that was counting on members which then left
// waits at most leaveRounds gossip intervals; and either way, a timeout
// with nobody left to tell is not an error.
func (g *Gossip) leaveMemberlist(ctx context.Context, deadline time.Time) error {
	wait := min(waitFor(deadline), leaveRounds*g.cfg.GossipInterval)
	if ctx.Err() != nil || !g.anyoneStaying() {
		wait = time.Millisecond
	}
	err := g.ml.Leave(wait)
	if err == nil || !g.anyoneStaying() {
		return nil
	}
	return fmt.Errorf("%w: leave: %v", ErrBroadcastTimeout, err)
}

// anyoneStaying reports whether some other member is alive and not leaving
// itself: someone the leave message is for.
func (g *Gossip) anyoneStaying() bool {
	g.viewMu.Lock()
	defer g.viewMu.Unlock()
	for name, m := range g.members {
		if name != g.cfg.Name && m.State == StateAlive {
			return true
		}
	}
	return false
}

// Pushing the leaving flag: how many members at once, and how many rounds
// before giving up on members that answer but never confirm.
const (
	leavePushParallelism = 8
	leavePushRounds      = 5
)

// pushLeaving makes sure every other member has seen this node's leaving
// flag before the leave message goes out. Gossip alone is not enough: a
// member that hears the leave message before the flag takes the leave for a
// crash, and then ignores the flag (same incarnation).
//
// Each round pushes this node's state to the members not yet confirmed, by a
// push/pull as a join does. A push/pull does not confirm the push: the
// remote replies before it merges. So every member's push/pull reply carries
// the names its view holds as leaving (see localState); a member that lists
// this node has merged the flag. The first round delivers, the second
// normally confirms. A member that cannot be reached is probably dead and is
// dropped; one still unconfirmed after the last round is logged. Waits end
// at deadline or when ctx ends; pushes still running then finish in the
// background (each bounded by TCPTimeout), and Shutdown waits for them.
func (g *Gossip) pushLeaving(ctx context.Context, deadline time.Time) error {
	targets := make(map[string]string) // name -> gossip address
	for _, m := range g.Members() {
		if m.Name != g.cfg.Name {
			targets[m.Name] = m.GossipAddr
		}
	}
	var (
		unreachableMu sync.Mutex
		unreachable   = make(map[string]bool)
	)
	pending := func() []string {
		g.metaMu.Lock()
		defer g.metaMu.Unlock()
		unreachableMu.Lock()
		defer unreachableMu.Unlock()
		var names []string
		for name := range targets {
			if !g.leaveAcks[name] && !unreachable[name] {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		return names
	}

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for round := 1; ; round++ {
		names := pending()
		if len(names) == 0 {
			return nil
		}
		if round > leavePushRounds {
			g.log.Warn("members did not confirm the leaving flag; they may report this node dead",
				"members", names)
			return nil
		}
		if round > 2 {
			// The remote merges right after replying; give a starved
			// one a moment before asking again.
			select {
			case <-time.After(g.cfg.GossipInterval):
			case <-timer.C:
				return fmt.Errorf("%w: leaving flag not confirmed by %v before the deadline", ErrBroadcastTimeout, names)
			case <-ctx.Done():
				return ctx.Err()
			}
		}

		sem := make(chan struct{}, leavePushParallelism)
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Add(1)
			g.wg.Add(1) // under opMu: before Shutdown can Wait
			go func() {
				defer g.wg.Done()
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				if time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				if _, err := g.ml.Join([]string{targets[name]}); err != nil {
					g.log.Debug("could not push the leaving flag", "member", name, "err", err)
					unreachableMu.Lock()
					unreachable[name] = true
					unreachableMu.Unlock()
				}
			}()
		}
		roundDone := make(chan struct{})
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			wg.Wait()
			close(roundDone)
		}()
		select {
		case <-roundDone:
		case <-timer.C:
			return fmt.Errorf("%w: leaving flag not confirmed by every member before the deadline", ErrBroadcastTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// userState is what every node adds to its push/pull replies (memberlist's
// user state): its name and the members its view holds as leaving. A leaving
// node reads it to learn who has seen its flag.
type userState struct {
	Name    string   `msgpack:"n"`
	Leaving []string `msgpack:"l"`
}

// maxUserState bounds the user state decoded from a peer: names of leaving
// members only, so far below this unless the peer misbehaves.
const maxUserState = 64 << 10

// localState returns this node's user state, or nil (nothing sent) when no
// member is leaving, which is nearly always.
func (g *Gossip) localState() []byte {
	g.viewMu.Lock()
	var leaving []string
	for name, m := range g.members {
		if m.State == StateLeaving {
			leaving = append(leaving, name)
		}
	}
	g.viewMu.Unlock()
	if len(leaving) == 0 {
		return nil
	}
	slices.Sort(leaving)
	b, err := msgpack.Marshal(&userState{Name: g.cfg.Name, Leaving: leaving})
	if err != nil {
		return nil
	}
	return b
}

// mergeUserState records, while this node is leaving, that the peer whose
// push/pull reply carried buf has seen its leaving flag. buf comes from the
// network: anything malformed is ignored.
func (g *Gossip) mergeUserState(buf []byte) {
	g.metaMu.Lock()
	leaving := g.leaveAcks != nil
	g.metaMu.Unlock()
	if !leaving || len(buf) == 0 || len(buf) > maxUserState {
		return
	}
	if _, err := checkLengths(buf); err != nil {
		return // lengths no real state has: do not let the decoder size by them
	}
	var us userState
	if err := msgpack.Unmarshal(buf, &us); err != nil || us.Name == "" {
		return
	}
	if !slices.Contains(us.Leaving, g.cfg.Name) {
		return
	}
	g.metaMu.Lock()
	if g.leaveAcks != nil {
		g.leaveAcks[us.Name] = true
	}
	g.metaMu.Unlock()
}
