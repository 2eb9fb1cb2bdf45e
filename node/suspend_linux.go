package node

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootClock returns CLOCK_BOOTTIME: like the monotonic clock, but it keeps
// counting while the machine is suspended, so the difference between the
// two is time the machine spent asleep (see pauseLoop).
func bootClock() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
