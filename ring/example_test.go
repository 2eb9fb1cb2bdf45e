package ring_test

import (
	"fmt"

	"github.com/starlingcache/starling/ring"
)

// ExampleRing builds a ring from a membership list, in any order and with
// repeats, and asks it where keys live.
func ExampleRing() {
	r, err := ring.New(ring.DefaultConfig(), []string{"node-c", "node-a", "node-b", "node-a"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Len(), r.Members())
	fmt.Println(r.Owner("user:1"))
	fmt.Println(r.Owners("user:1", 2)) // owner first, then the next replica

	// A node keeps the ring it built and rebuilds on membership change;
	// Version tells whether anything changed.
	grown, _ := ring.New(ring.DefaultConfig(), []string{"node-a", "node-b", "node-c", "node-d"})
	fmt.Println(grown.Version() != r.Version())
	// Output:
	// 3 [node-a node-b node-c]
	// node-a
	// [node-a node-c]
	// true
}
