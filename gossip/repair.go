package gossip

import (
	"encoding/binary"
	"errors"
	"time"
)

// Member-list repair.
//
// memberlist spreads a join or a departure by gossip over UDP, and now and
// then a member misses it: at 100 nodes, 1-3 of them typically keep an
// outdated list until their next push/pull, which memberlist spaces out as
// the cluster grows (30 s at 100 nodes with the LAN preset). memberlist has
// no "push/pull now", but a Join against one address is exactly that: a
// full two-way state exchange after which each side has merged the other's
// list.
//
// So every node keeps a digest of its member list (a hash of the names and
// their count, updated as events are observed) and shows it to its peers
// two ways: appended to every probe ack (AckPayload; the prober compares),
// and, for a short while after its own list changed and settled, as a small
// user message in its gossip (GetBroadcasts), which reaches a few random
// members every GossipInterval. A node that finds a peer's digest different
// from its own, both lists having been unchanged for RepairDelay, joins that
// peer: whichever side was behind catches up. The delay keeps nodes from
// syncing while an event is still spreading normally; after each repair
// that does not change its list, a node waits twice as long before the next
// (up to PushPullInterval), so a difference that a sync cannot fix (a
// crashed member that one side still suspects) costs a few push/pulls, not a
// storm.

// digestMsg is the first byte of a digest message, so other user messages
// can be added later (append-only, like memberlist's message types).
const digestMsg byte = 1

// digestLen is the fixed part of a digest message: type, hash, member count
// and the age of the sender's list in milliseconds. The sender's name
// follows.
const digestLen = 1 + 8 + 4 + 4

// viewDigest summarises a member list. It covers the names only, so a
// metadata update does not change it.
type viewDigest struct {
	sum   uint64 // sum of nameHash over the members: order-free, O(1) to update
	count uint32
}

// add records a member that appeared.
func (d *viewDigest) add(name string) {
	d.sum += nameHash(name)
	d.count++
}

// remove records a member that departed.
func (d *viewDigest) remove(name string) {
	d.sum -= nameHash(name)
	d.count--
}

// nameHash is 64-bit FNV-1a: the same on every node and every version,
// unlike hash/maphash, whose seed is per process.
func nameHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// errBadDigest is any malformed digest message; such a message is ignored.
var errBadDigest = errors.New("gossip: malformed digest message")

// encodeDigest builds a digest message.
func encodeDigest(d viewDigest, age time.Duration, name string) []byte {
	b := make([]byte, digestLen, digestLen+len(name))
	b[0] = digestMsg
	binary.BigEndian.PutUint64(b[1:], d.sum)
	binary.BigEndian.PutUint32(b[9:], d.count)
	binary.BigEndian.PutUint32(b[13:], uint32(min(age.Milliseconds(), 1<<32-1)))
	return append(b, name...)
}

// decodeDigest parses a digest message from the network.
func decodeDigest(b []byte) (d viewDigest, age time.Duration, name string, err error) {
	if len(b) <= digestLen || len(b) > digestLen+255 || b[0] != digestMsg {
		return viewDigest{}, 0, "", errBadDigest
	}
	d.sum = binary.BigEndian.Uint64(b[1:])
	d.count = binary.BigEndian.Uint32(b[9:])
	age = time.Duration(binary.BigEndian.Uint32(b[13:])) * time.Millisecond
	return d, age, string(b[digestLen:]), nil
}

// repairRequest asks the repair loop to sync with a peer.
type repairRequest struct {
	peer, addr  string
	mine, yours viewDigest
}

// viewState returns this node's digest and how long ago its list last
// changed.
func (g *Gossip) viewState() (viewDigest, time.Duration) {
	g.viewMu.Lock()
	defer g.viewMu.Unlock()
	return g.digest, time.Since(g.viewChanged)
}

// digestMessage returns this node's digest message, or nil when repair is
// off or the node is leaving. For gossip (forGossip) it is sent only from
// RepairDelay after the list last changed, when peers will act on it, for
// digestWindow; acks carry it always.
func (g *Gossip) digestMessage(forGossip bool) []byte {
	delay := g.cfg.RepairDelay
	if delay <= 0 || g.loopCtx.Err() != nil {
		return nil
	}
	d, age := g.viewState()
	if forGossip && (age < delay || age >= delay+g.digestWindow()) {
		return nil
	}
	return encodeDigest(d, age, g.cfg.Name)
}

// digestWindow is how long a node gossips its digest once its list has
// settled: at least five gossip rounds, so that when most of the cluster has
// heard of an event and one member has not, that member hears a digest
// within a round or two.
func (g *Gossip) digestWindow() time.Duration {
	return max(g.cfg.RepairDelay, 5*g.cfg.GossipInterval)
}

// checkPeer compares a peer's digest with this node's and, if both lists
// are settled and differ, asks the repair loop to sync with the peer. addr
// is the peer's gossip address, or "" to look it up in this node's list (a
// peer this node does not list is left to the others). It runs on
// memberlist's goroutines: it never blocks.
func (g *Gossip) checkPeer(peer, addr string, yours viewDigest, yourAge time.Duration) {
	delay := g.cfg.RepairDelay
	if delay <= 0 || peer == g.cfg.Name || yourAge < delay {
		return
	}
	g.viewMu.Lock()
	mine, myAge := g.digest, time.Since(g.viewChanged)
	if addr == "" {
		addr = g.members[peer].GossipAddr
	}
	g.viewMu.Unlock()
	if mine == yours || myAge < delay || addr == "" {
		return
	}

	now := time.Now()
	g.repairMu.Lock()
	if mine == g.repairedFrom && now.Before(g.repairNext) {
		g.repairMu.Unlock()
		return
	}
	if mine == g.repairedFrom {
		// The last repair did not change this node's list: back off.
		g.repairBackoff = min(2*g.repairBackoff, max(g.cfg.PushPullInterval, delay))
	} else {
		g.repairBackoff = delay
	}
	g.repairedFrom, g.repairNext = mine, now.Add(g.repairBackoff)
	g.repairMu.Unlock()

	select {
	case g.repairCh <- repairRequest{peer: peer, addr: addr, mine: mine, yours: yours}:
	default: // a repair is running; it will do
	}
}

// repairLoop runs the syncs checkPeer asks for, one at a time, until Leave
// or Shutdown.
func (g *Gossip) repairLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.loopCtx.Done():
			return
		case r := <-g.repairCh:
			g.repairs.Add(1)
			g.log.Debug("member list differs from a peer's; syncing with it",
				"peer", r.peer, "members", r.mine.count, "peer_members", r.yours.count)
			if _, err := g.ml.Join([]string{r.addr}); err != nil && g.loopCtx.Err() == nil {
				g.log.Debug("member-list repair failed", "peer", r.peer, "err", joinError(err))
			}
		}
	}
}
