package gossip

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// The adapters below are how memberlist calls back into a Gossip. memberlist
// may call them concurrently (Delegate) or under its node lock (the event
// delegate), so none of them blocks or calls into memberlist.
var (
	_ memberlist.Delegate      = (*metaDelegate)(nil)
	_ memberlist.EventDelegate = (*eventDelegate)(nil)
	_ memberlist.PingDelegate  = (*pingDelegate)(nil)
)

// metaDelegate hands memberlist this node's encoded metadata, the user
// state that confirms leaving flags (see pushLeaving), and the member-list
// digests of repair.go, the only user messages gossip sends.
type metaDelegate struct {
	g *Gossip
}

// NodeMeta returns the current encoded Meta. Its size was checked against
// MetaMaxSize when it was set (memberlist panics on more than limit).
func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.g.metaMu.Lock()
	defer d.g.metaMu.Unlock()
	if len(d.g.metaRaw) > limit {
		return nil // unreachable: encodeMeta checks MetaMaxSize
	}
	return d.g.metaRaw
}

// NotifyMsg reads a peer's member-list digest. Anything else, malformed
// or of a kind this version does not know, is ignored.
func (d *metaDelegate) NotifyMsg(b []byte) {
	if digest, age, name, err := decodeDigest(b); err == nil {
		d.g.checkPeer(name, "", digest, age)
	}
}

// GetBroadcasts adds this node's digest to the gossip it sends while its
// member list has recently settled (see digestMessage). memberlist calls it
// once per packet, so the digest rides along with memberlist's own
// broadcasts when there are any.
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	msg := d.g.digestMessage(true)
	if msg == nil || len(msg)+overhead > limit {
		return nil
	}
	return [][]byte{msg}
}

// LocalState returns the user state sent with every push/pull.
func (d *metaDelegate) LocalState(join bool) []byte { return d.g.localState() }

// MergeRemoteState reads the user state of a push/pull peer.
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool) { d.g.mergeUserState(buf) }

// eventDelegate forwards memberlist's membership callbacks to Gossip.observe,
// which only copies and queues.
type eventDelegate struct {
	g *Gossip
}

// NotifyJoin queues an EventJoin.
func (d *eventDelegate) NotifyJoin(n *memberlist.Node) { d.g.observe(EventJoin, n) }

// NotifyLeave queues an EventLeave.
func (d *eventDelegate) NotifyLeave(n *memberlist.Node) { d.g.observe(EventLeave, n) }

// NotifyUpdate queues an EventUpdate.
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) { d.g.observe(EventUpdate, n) }

// pingDelegate carries member-list digests on probe acks: every ack this
// node sends has its digest, and every ack it receives is compared with its
// own (see checkPeer), so lists are compared about once per ProbeInterval
// per node at no extra packets.
type pingDelegate struct {
	g *Gossip
}

// AckPayload returns this node's digest.
func (d *pingDelegate) AckPayload() []byte { return d.g.digestMessage(false) }

// NotifyPingComplete compares the digest in a probed member's ack. n is
// memberlist's and is not kept.
func (d *pingDelegate) NotifyPingComplete(n *memberlist.Node, _ time.Duration, payload []byte) {
	digest, age, name, err := decodeDigest(payload)
	if err != nil || name != n.Name {
		return
	}
	d.g.checkPeer(name, n.Address(), digest, age)
}
