package store

import (
	"strconv"

	"github.com/maypok86/otter/v2"
)

// The otter v2 (W-TinyLFU) comparison lives only in tests: otter is not a
// dependency of the store itself.

type otterCache struct {
	c    *otter.Cache[string, []byte]
	keys []string
	val  []byte
}

func (o *otterCache) key(id int32) string {
	for int(id) >= len(o.keys) {
		o.keys = append(o.keys, "k"+strconv.Itoa(len(o.keys)))
	}
	return o.keys[id]
}

func (o *otterCache) access(id int32) bool {
	k := o.key(id)
	if _, ok := o.c.GetIfPresent(k); ok {
		return true
	}
	o.c.Set(k, o.val)
	return false
}

func init() {
	otterFactory = func(capacity int) cachePolicy {
		return &otterCache{c: otter.Must(&otter.Options[string, []byte]{MaximumSize: capacity}), val: make([]byte, 100)}
	}
}
