//go:build !linux

package node

import "time"

// bootClock reports no suspend-aware clock on this platform: a suspended
// machine goes unnoticed by pause detection (gossip's rejoin and the
// hand-off still repair the node's copies, only later).
func bootClock() (time.Duration, bool) { return 0, false }
