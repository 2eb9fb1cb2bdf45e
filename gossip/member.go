package gossip

import "strconv"

// State is a member's liveness as this node last heard it. node/ uses it to
// tell a member that will not come back (left) from one that may (dead).
type State uint8

// The member states. The first four values are fixed: append new ones.
const (
	// StateAlive is a member that answers probes.
	StateAlive State = iota
	// StateSuspect is a member that missed probes but is not yet declared
	// dead. memberlist v0.7.0 does not expose suspicion (its Node.State is
	// never filled in), so this package never reports it today; it is kept
	// so callers can handle it when memberlist does.
	StateSuspect
	// StateLeft is a member that announced a graceful leave.
	StateLeft
	// StateDead is a member declared failed by the failure detector.
	StateDead
	// StateLeaving is a member that announced it is about to leave and is
	// still reachable; its EventLeave (StateLeft) follows shortly.
	StateLeaving
)

// String returns the state's lower-case name, for logs.
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateLeft:
		return "left"
	case StateDead:
		return "dead"
	case StateLeaving:
		return "leaving"
	default:
		return "state(" + strconv.Itoa(int(s)) + ")"
	}
}

// Member is one node of the cluster as gossip knows it: what node/ needs to
// place it on the ring and reach it.
type Member struct {
	// Name is the node's unique name: its identity on the ring.
	Name string
	// GossipAddr is the host:port the node gossips on.
	GossipAddr string
	// Meta is what the node published. It is the zero Meta when the node's
	// metadata could not be decoded (logged as a warning when its event is
	// delivered), so such a member shows up with an empty DataAddr and
	// must be left out of the ring.
	Meta Meta
	// State is the member's liveness: StateAlive or StateLeaving in
	// Members(), and also StateLeft or StateDead in an EventLeave.
	State State
}

// EventKind says what happened to a member.
type EventKind uint8

// The event kinds. Append new ones.
const (
	// EventJoin: a member appeared (a new node, or a departed one that came
	// back). This node's own join is the first event delivered.
	EventJoin EventKind = iota
	// EventLeave: a member left gracefully (State StateLeft) or was declared
	// dead (StateDead).
	EventLeave
	// EventUpdate: a member published new metadata (including the leaving
	// flag, State StateLeaving).
	EventUpdate
)

// String returns the kind's lower-case name, for logs.
func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	default:
		return "event(" + strconv.Itoa(int(k)) + ")"
	}
}

// Event is one membership change, delivered in the order memberlist saw it.
// Member is the member as it was right after the change.
type Event struct {
	Kind   EventKind
	Member Member
}
