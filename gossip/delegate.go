package gossip

import "github.com/hashicorp/memberlist"

// The adapters below are how memberlist calls back into a Gossip. memberlist
// may call them concurrently (Delegate) or under its node lock (the event
// delegate), so none of them blocks or calls into memberlist.
var (
	_ memberlist.Delegate      = (*metaDelegate)(nil)
	_ memberlist.EventDelegate = (*eventDelegate)(nil)
)

// metaDelegate hands memberlist this node's encoded metadata, and the user
// state that confirms leaving flags (see pushLeaving). Gossip sends no user
// messages or broadcasts.
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

// NotifyMsg ignores user messages; gossip sends none.
func (d *metaDelegate) NotifyMsg([]byte) {}

// GetBroadcasts has no user broadcasts to add.
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

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
