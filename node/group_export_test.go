package node

// GroupKey is the store key of group's entry for key.
func GroupKey(group, key string) string { return groupKey(group, key) }

// LoadWaiters returns how many requests joined the load of group's key
// that n runs as the key's owner, after the one that started it.
func LoadWaiters(n *Node, group, key string) int {
	return n.readThrough().owner.Waiters(groupKey(group, key))
}

// FirstHost is the member n asks first to load key of group for it.
func FirstHost(n *Node, group, key string) string {
	v := n.view.Load()
	if h := n.groupHosts(v, group, groupKey(group, key)); len(h) > 0 {
		return h[0]
	}
	return ""
}
