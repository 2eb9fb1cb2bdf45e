package node

import (
	"testing"
	"time"
)

// The boot clock exists on Linux and moves with the monotonic clock while
// the machine is awake, so pauseLoop reads no sleep where there was none.
// The bounds are one-sided, so that the test being descheduled between two
// reads cannot fail it.
func TestBootClockTracksMonotonic(t *testing.T) {
	outer := time.Now()
	b0, ok := bootClock()
	if !ok {
		t.Fatal("CLOCK_BOOTTIME unavailable")
	}
	inner := time.Now()
	for time.Since(inner) < 20*time.Millisecond {
		// Let the monotonic clock move on; bounded by the condition.
	}
	b1, _ := bootClock()
	atMost, atLeast := time.Since(outer), 20*time.Millisecond
	const slack = 100 * time.Microsecond // the two clocks' reads are not one instant
	if moved := b1 - b0; moved < atLeast-slack || moved > atMost+slack {
		t.Errorf("boot clock moved %v while the monotonic clock moved between %v and %v", moved, atLeast, atMost)
	}
}
