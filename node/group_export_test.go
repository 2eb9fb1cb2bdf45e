package node

// GroupKey is the store key of group's entry for key.
func GroupKey(group, key string) string { return groupKey(group, key) }

// LoadWaiters returns how many requests joined the load of group's key
// that n runs as the key's owner, after the one that started it.
func LoadWaiters(n *Node, group, key string) int {
	return n.readThrough().owner.Waiters(groupKey(group, key))
}
